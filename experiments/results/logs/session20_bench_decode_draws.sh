#!/bin/bash
# Session 20, issue 18: the decode loop's draws among a node's children against the dense draws (the loop before
# session 20), side by side in one process on an otherwise idle machine (started when rule I's med job had ended),
# batch 256, K = 10, scifact title trie, the untrained embedded model; the reference over the first 4 queries.
cd /work/main
while ! grep -q "^compare rc" /work/wt/s20/job.log; do sleep 20; done
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
ZEROGR_DATA=/work/shared/data .venv/bin/python experiments/bench_decode.py --data-dir /work/shared/data --k 10 --num-queries 256 --batch 256 --ref-queries 4 --skip-batch1 --independent-rows --dense-draws --skip-overhead --out experiments/results/bench_decode_b256_k10_draws.json
echo "topk rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
ZEROGR_DATA=/work/shared/data .venv/bin/python experiments/bench_decode.py --data-dir /work/shared/data --k 10 --batch 256 --num-queries 256 --only-overhead --out experiments/results/bench_decode_b256_k10_step.json
echo "step rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
