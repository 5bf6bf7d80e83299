#!/bin/bash
# Session 22: reverse annealing at K = 100 at a wider batch (64 queries per call) against the reference over 4
# queries, alternating as bench_decode does, machine otherwise idle (after the fresh-clone CI run ended).
while ! grep -q "^ci end" /tmp/ci.log; do sleep 15; done
(while sleep 120; do echo "load $(date -u +%T) $(cat /proc/loadavg)"; done) & TICK=$!
cd /work/wt/s22
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
PYTHONPATH=/work/wt/s22 /work/main/.venv/bin/python experiments/bench_decode.py --k 100 --num-queries 64 --batch 64 --ref-queries 4 --dtypes float32 --independent-rows --skip-batch1 --skip-overhead --data-dir /work/shared/data --out /work/main/experiments/results/bench_decode_session22_b64.json
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
kill $TICK
