#!/bin/bash
cd /work/main
export ZEROGR_DATA=/work/shared/data
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
.venv/bin/python experiments/bench_search_stage.py --workdir /work/runs/demo_med17 --collection med --code beam30=/work/wt/before --code exact=/work/wt/s19 --args 'beam30=--strategy beam --beam-width 30' --rounds 2 --name bench_search_stage_beam30_vs_exact_s19 -- --strategy exact --prior-weight 0.5 --num-docids 10
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
