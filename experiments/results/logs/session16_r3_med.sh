#!/bin/bash
# Session 16, rule E (experiments/results/random_negatives_rule_session16.txt): the head with 4 BM25 + 3 uniform
# negatives per group on med. Started at the end of session 16 for its training checkpoints (every 100 steps); the
# session's end stops it, and the next session reruns this script, which resumes from the last checkpoint.
cd /work/wt/s16e
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s16e
c=med
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=/work/runs/${c}_head_r3 --set 'train_overrides=train.epochs=1,data.negatives=7,data.negatives_random=3,train.rank_every=1,train.rank_batch_size=16,train.rank_score=head' --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head_r3 --collection $c --depths 100,all --prior-weight 0.5 --save-candidates --name poolall_${c}_head_r3
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head_r3 --collection $c --candidates experiments/results/runs/poolall_${c}_head_r3.candidates.npz --depths 100,300,all --baseline zsum100 --name mixall_${c}_head_r3
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
