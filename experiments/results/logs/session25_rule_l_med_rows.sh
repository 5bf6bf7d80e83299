#!/bin/bash
# Session 25: rule L's med rows. session25_chain.sh retrained rule G's med retriever (session 18's command from
# 835b9a2); its position-by-position pool_check failed on 2 positions. pool_check at 3abc861 (each docid matched to its
# own scores) decides; if it passes, rule L's scores and rows run as on cisi.
export ZEROGR_DATA=/work/shared/data
c=med w=/work/runs/med_head_s4r1
cd /work/wt/s29 && export PYTHONPATH=/work/wt/s29
echo "pool check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/pool_check.py --workdir $w --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1.candidates.npz --queries 4 || { echo "pool check failed: rule L's med rows not computed"; exit 1; }
COLLECTION=med bash /work/main/experiments/results/logs/session24_rule_l_cisi.sh
