#!/bin/bash
# Session 24, rule K (experiments/results/keyphrase_rule_session24.txt): the recipe with 4 keyphrase queries per document
# paired against rule G's rows mix300_${c}_head_s4r1_zsum300 (med 0.555, cisi 0.250, cranfield 0.299).
cd /work/wt/s24
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s24
for c in ${COLLECTIONS:-med}; do
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=/work/runs/${c}_head_s4r1kp4 --set index.keyphrase_queries=4 --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head_s4r1kp4 --collection $c --depths 100,300 --prior-weight 0.5 --save-candidates --name pool300_${c}_head_s4r1kp4
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head_s4r1kp4 --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1kp4.candidates.npz --depths 100,300 --baseline zsum100 --name mix300_${c}_head_s4r1kp4
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/compare_runs.py --collection $c --baseline experiments/results/runs/mix300_${c}_head_s4r1_zsum300.trec --runs experiments/results/runs/mix300_${c}_head_s4r1kp4_zsum300.trec --name compare_${c}_s4r1kp4_vs_s4r1_zsum300
echo "compare rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
