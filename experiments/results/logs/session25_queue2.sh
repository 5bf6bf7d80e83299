#!/bin/bash
# Session 25: rule M on med goes before rule K's cisi run. session25_chain.sh (pgid given as $1) ends with rule K on
# cisi; when it reaches that step (its log appears), the chain is stopped and this queue runs rule M on med, then rule
# K on cisi (both resume from their workdirs when run again).
L=/work/main/experiments/results/logs
until [ -e $L/session25_rule_k_cisi.txt ]; do sleep 15; done
kill -- -$1; sleep 5
echo "chain stopped at rule K's start $(date -u +%FT%TZ)" > $L/session25_queue2.txt
COLLECTIONS=med bash $L/session25_rule_m.sh > $L/session25_rule_m_med.txt 2>&1
COLLECTIONS=cisi bash $L/session24_rule_k.sh > $L/session25_rule_k_cisi.txt 2>&1
