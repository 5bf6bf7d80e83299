#!/bin/bash
# Session 26's queue: rule N on med once rule M's med job (rule_job.sh from /work/wt/s28) has ended.
while pgrep -f "wt/s28/experiments/rule_job.sh" > /dev/null; do sleep 30; done
COLLECTIONS=med bash /work/main/experiments/results/logs/session26_rule_n.sh > /work/main/experiments/results/logs/session26_rule_n_med.txt 2>&1
