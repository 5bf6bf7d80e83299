#!/bin/bash
cd /work/wt/bench
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
( while true; do echo "load $(date -u +%T) $(cat /proc/loadavg)"; sleep 120; done ) &
LP=$!
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/bench
time /work/main/.venv/bin/python experiments/bench_decode.py --k 100 10 --num-queries 16 --batch 16 --ref-queries 4 --dtypes float32 --data-dir /work/shared/data --out /work/runs/s13/bench_decode.json
echo "rc $? end $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
kill $LP
