#!/bin/bash
# Session 22, issue 18, on an otherwise idle machine: cisi's rule-I job (process group $1) is paused (SIGSTOP) for
# the whole script and resumed at its end. Waits for `make demo` (its retriever is the search stage's workdir).
# 1. The main job's search stage: the 30-wide beam (7fadc29, the search when issue 18 was filed) against exact search
#    today (/work/wt/s22), fresh processes alternating, 2 rounds.
# 2. bench_decode at K = 100 and 10 (scifact titles, reference over 4 queries), rows advancing independently,
#    with the loop before session 22 (every docid token fed) alternating chunk by chunk.
PGID=$1
while ! grep -q "^end rc" /tmp/demo.log; do sleep 20; done
kill -STOP -- -$PGID
sleep 30
(while sleep 120; do echo "load $(date -u +%T) $(cat /proc/loadavg)"; done) & TICK=$!
export ZEROGR_DATA=/work/shared/data
cd /work/main
echo "stage start $(date -u +%FT%TZ) commit $(git -C /work/wt/s22 rev-parse --short HEAD) load: $(cat /proc/loadavg)"
.venv/bin/python experiments/bench_search_stage.py --workdir /work/main/runs/demo_med --collection med --code beam30=/work/wt/before --code exact22=/work/wt/s22 --args 'beam30=--strategy beam --beam-width 30' --rounds 2 --name bench_search_stage_beam30_exact22 -- --strategy exact --prior-weight 0.5 --num-docids 10
echo "stage end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
cd /work/wt/s22
echo "decode start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
PYTHONPATH=/work/wt/s22 /work/main/.venv/bin/python experiments/bench_decode.py --k 100 10 --num-queries 16 --batch 16 --ref-queries 4 --dtypes float32 --independent-rows --full-docids --data-dir /work/shared/data --out /work/main/experiments/results/bench_decode_session22.json
echo "decode end rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
kill $TICK
kill -CONT -- -$PGID
echo "resumed $PGID $(date -u +%FT%TZ)"
