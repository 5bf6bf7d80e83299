#!/bin/bash
cd /work/wt/rows
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/rows
time /work/main/.venv/bin/python experiments/bench_row_advance.py --data-dir /work/shared/data --k 10 --num-queries 16 --batch 16 --rounds 3
echo "rc $? end $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
