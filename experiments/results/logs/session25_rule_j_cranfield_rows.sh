#!/bin/bash
# Session 25: rule J's cranfield rows. session24_rule_j_cranfield.sh retrained rule G's cranfield retriever, and its
# pool_check (the position-by-position comparison) failed on one pair of docids that traded places; pool_check at
# 3abc861 matches each docid to its own scores and finds the same model (session25_pool_check_cranfield.txt), so
# free_rows.py runs here, as that script's last step, from the same worktree (s25, 989e84f).
export ZEROGR_DATA=/work/shared/data
c=cranfield w=/work/runs/cranfield_head_s4r1
cd /work/wt/s25 && export PYTHONPATH=/work/wt/s25
echo "free_rows $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg) (beside rule L's med training)"
time /work/main/.venv/bin/python experiments/free_rows.py --workdir $w --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1.candidates.npz --baseline-run experiments/results/runs/mix300_${c}_head_s4r1_zsum300.trec --name free300_${c}_head_s4r1
echo "free_rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
