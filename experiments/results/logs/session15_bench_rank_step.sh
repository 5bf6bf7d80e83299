#!/bin/bash
# Session 15: the ranking-step benchmark on the idle machine, after the pools job.
while pgrep -f pools.sh > /dev/null; do sleep 20; done
cd /work/wt/s15b
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s15b
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/bench_rank_step.py --index /work/runs/med_head/index --steps 6 --rounds 3 --name bench_rank_step
echo "rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
