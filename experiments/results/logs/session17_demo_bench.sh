#!/bin/bash
# Session 17: the main job's retriever (experiments/configs/demo_med.py, search cut to one query), then exact search on
# med's 30 judged queries with the main job's settings (K = 10, w = 0.5) in both docid layouts, alternating.
cd /work/wt/s17e
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s17e
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/zerogr run --config experiments/configs/demo_med.py --set workdir=/work/runs/demo_med17 --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/bench_tree_rows.py --workdir /work/runs/demo_med17 --collection med --queries 30 --k 10 --name bench_tree_rows_med_main_job
echo "bench rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
