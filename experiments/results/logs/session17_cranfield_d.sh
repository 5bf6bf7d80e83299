#!/bin/bash
# Session 17, rule D's cranfield confirmation (experiments/results/pool_depth_rule_session16.txt). Session 16's
# cranfield head and its half-searched pool did not outlive that session's machine, so the head is retrained at
# this commit with the recipe (experiments/configs/rerank_head.py, search cut to one query) and the pool is the
# exact top 300 (what zsum300 needs; zsum100 is the same pool's best 100, so both rows come from one head).
# The pair: zsum300 vs zsum100 of this head, compare_runs, p < 0.05.
cd /work/wt/s17
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s17
c=cranfield
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=/work/runs/${c}_head17 --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head17 --collection $c --depths 100,300 --prior-weight 0.5 --save-candidates --name pool300_${c}_head17
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head17 --collection $c --candidates experiments/results/runs/pool300_${c}_head17.candidates.npz --depths 100,300 --baseline zsum100 --name mix300_${c}_head17
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
