#!/bin/bash
# Session 17, rule D's cranfield confirmation, part 2 (part 1: cranfield_d.sh at 9db32f8 trained the head and searched
# blocks 0-1 of the pool, then was stopped at 03:12 UTC). The rest of the pool is searched from a worktree at 59aaa70,
# whose exact search packs docids as prefix trees (docid_scoring.score_tree): the same scores up to float rounding
# (bench_tree_rows_cranfield_k10.json: the prior over every docid within 2.3e-5 of the row layout), ~1.3x less
# search. rerank_rows.py resumes from the kept blocks (same config, queries and block size). Same commands otherwise.
cd /work/wt/s17t
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s17t
c=cranfield
echo "start part 2 $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head17 --collection $c --depths 100,300 --prior-weight 0.5 --save-candidates --name pool300_${c}_head17
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head17 --collection $c --candidates experiments/results/runs/pool300_${c}_head17.candidates.npz --depths 100,300 --baseline zsum100 --name mix300_${c}_head17
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
