#!/bin/bash
# Session 21: the main job's search stage, the one issue 18 measured (30-wide beam, 7fadc29), session 19's exact
# search (f64ff22) and exact search on informative paths (/work/wt/s21), fresh processes alternating.
cd /work/main
export ZEROGR_DATA=/work/shared/data
echo "start $(date -u +%FT%TZ) commit $(git -C /work/wt/s21 rev-parse --short HEAD) load: $(cat /proc/loadavg)"
.venv/bin/python experiments/bench_search_stage.py --workdir /work/runs/demo_med17 --collection med --code beam30=/work/wt/before --code exact19=/work/wt/s19 --code exact21=/work/wt/s21 --args 'beam30=--strategy beam --beam-width 30' --rounds 2 --name bench_search_stage_beam30_exact19_exact21 -- --strategy exact --prior-weight 0.5 --num-docids 10
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
