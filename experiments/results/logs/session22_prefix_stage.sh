#!/bin/bash
# Session 22: the main job's search stage, exact search (24df775, /work/wt/s22) against the same with the prompts'
# shared prefix run once (its commit in /work/wt/s22c; the first try, 6e570b2 in /work/wt/s22b, padded rests to multiples of 64 and compiled a second program set: bench_search_stage_exact22_prefix22_try1.json), fresh processes alternating, machine otherwise idle.
cd /work/main
export ZEROGR_DATA=/work/shared/data
echo "start $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
.venv/bin/python experiments/bench_search_stage.py --workdir /work/main/runs/demo_med --collection med --code exact22=/work/wt/s22 --code prefix22=/work/wt/s22c --rounds 3 --name bench_search_stage_exact22_prefix22c -- --strategy exact --prior-weight 0.5 --num-docids 10
echo "end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
