#!/bin/bash
cd /work/main
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
.venv/bin/python experiments/bench_decode.py --data-dir /work/shared/data --k 10 --num-queries 256 --batch 256 --ref-queries 4 --skip-batch1 --skip-overhead --independent-rows --out experiments/results/bench_decode_b256_k10.json
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
