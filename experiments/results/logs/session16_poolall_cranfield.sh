#!/bin/bash
# Session 16, rule D (experiments/results/pool_depth_rule_session16.txt): cranfield, the confirmation. Started beside
# cisi's selection run so that it can end in time; nothing of it is read before the choice on med and cisi is made.
# Resumable: rerank_rows.py keeps each block of 16 queries under /work/runs/cranfield_head/rows/poolall_cranfield_head.
cd /work/wt/s16
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s16
c=cranfield
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head --collection $c --depths 100,all --prior-weight 0.5 --save-candidates --name poolall_${c}_head
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head --collection $c --candidates experiments/results/runs/poolall_${c}_head.candidates.npz --depths 100,300,all --baseline zsum100 --name mixall_${c}_head
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
