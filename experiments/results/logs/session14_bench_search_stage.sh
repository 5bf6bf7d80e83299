#!/bin/bash
cd /work/main
echo "start $(date -u +%FT%TZ) before=7fadc29 after=$(git -C /work/wt/s14 rev-parse --short HEAD) load: $(cat /proc/loadavg)"
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/main
time /work/main/.venv/bin/python experiments/bench_search_stage.py --workdir /work/runs/demo_med_exact --collection med --code before=/work/wt/before --code after=/work/wt/s14 --rounds 2 -- --strategy exact --prior-weight 0.5 --num-docids 10
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
