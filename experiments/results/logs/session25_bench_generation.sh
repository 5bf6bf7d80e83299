#!/bin/bash
# Session 25: pseudo-query generation at 8 and 32 documents per call (B = 4, 32 and 128 rows), side by side, with the
# queued training job paused (SIGSTOP) so the benchmark has the machine; load logged every 2 minutes.
cd /work/wt/s27 && export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s27
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
( while sleep 120; do echo "load $(date -u +%T) $(cat /proc/loadavg)"; done ) & L=$!
time /work/main/.venv/bin/python experiments/bench_query_generation.py --docs 32 --docs-per-call 8 32 --paths shared_prefix_stop_at_newline --name bench_query_generation_batch
echo "rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
kill $L
