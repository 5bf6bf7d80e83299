#!/bin/bash
# Session 19, rule G (cranfield confirmation) (experiments/results/span_rows_rank_every1_rule_session18.txt): the head recipe with 4 spans per document
# and a ranking step after every docid step; cranfield confirms (selected on med 0.555 vs 0.532 and cisi 0.250 vs 0.211); paired against the recipe row mix300_cranfield_head17_zsum300 (0.257), p < 0.05.
cd /work/wt/s19
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s19
for c in ${COLLECTIONS:-cranfield}; do
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=/work/runs/${c}_head_s4r1 --set index.span_queries=4 --set 'train_overrides=train.epochs=1,data.negatives=7,train.rank_every=1,train.rank_batch_size=16,train.rank_score=head' --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head_s4r1 --collection $c --depths 100,300 --prior-weight 0.5 --save-candidates --name pool300_${c}_head_s4r1
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head_s4r1 --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1.candidates.npz --depths 100,300 --baseline zsum100 --name mix300_${c}_head_s4r1
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/compare_runs.py --collection $c --baseline experiments/results/runs/mix300_${c}_head17_zsum300.trec --runs experiments/results/runs/mix300_${c}_head_s4r1_zsum300.trec --name compare_${c}_s4r1_vs_head_zsum300
echo "compare rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
