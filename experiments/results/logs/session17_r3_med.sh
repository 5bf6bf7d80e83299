#!/bin/bash
# Session 17, rule E as amended (experiments/results/random_negatives_rule_session17.txt): the head with 4 BM25 + 3
# uniform negatives per group on med, then a pool of 300 and its orderings. cisi (the other selection collection) is
# the next session's.
cd /work/wt/s17e
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s17e
c=med
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=/work/runs/${c}_head_r3 --set 'train_overrides=train.epochs=1,data.negatives=7,data.negatives_random=3,train.rank_every=1,train.rank_batch_size=16,train.rank_score=head' --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head_r3 --collection $c --depths 100,300 --prior-weight 0.5 --save-candidates --name pool300_${c}_head_r3
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head_r3 --collection $c --candidates experiments/results/runs/pool300_${c}_head_r3.candidates.npz --depths 100,300 --baseline zsum100 --name mix300_${c}_head_r3
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
