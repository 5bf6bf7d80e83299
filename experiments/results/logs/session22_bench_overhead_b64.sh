#!/bin/bash
# Session 22: the step's constraint overhead and roofline at batch 64 (the faster batch at K = 100), idle machine.
(while sleep 60; do echo "load $(date -u +%T) $(cat /proc/loadavg)"; done) & TICK=$!
cd /work/wt/s22
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
PYTHONPATH=/work/wt/s22 /work/main/.venv/bin/python experiments/bench_decode.py --only-overhead --k 100 --batch 64 --num-queries 64 --dtypes float32 --data-dir /work/shared/data --out /work/main/experiments/results/bench_decode_session22_overhead_b64.json
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
kill $TICK
