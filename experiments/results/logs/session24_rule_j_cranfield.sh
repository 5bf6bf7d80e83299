#!/bin/bash
# Session 24, rule J's confirmation on cranfield (experiments/results/free_rule_session21.txt): zfree was selected on
# med (+0.0047) and cisi (+0.0061), mean +0.0054 > 0.005. Rule G's cranfield retriever (lost with /work/runs in
# session 22) is retrained with session 19's command from session 19's commit, checked against the committed pool on
# its first 4 queries (experiments/pool_check.py), then free_rows.py orders that committed pool; zfree must beat zsum
# (0.299) with p < 0.05.
export ZEROGR_DATA=/work/shared/data
c=cranfield w=/work/runs/cranfield_head_s4r1
cd /work/wt/s19 && export PYTHONPATH=/work/wt/s19
echo "start train $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=$w --set index.span_queries=4 --set 'train_overrides=train.epochs=1,data.negatives=7,train.rank_every=1,train.rank_batch_size=16,train.rank_score=head' --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
cd /work/wt/s25 && export PYTHONPATH=/work/wt/s25
echo "pool check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/pool_check.py --workdir $w --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1.candidates.npz --queries 4 || { echo "pool check failed: the retrained model is not rule G's; rows not computed"; exit 1; }
echo "free_rows $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/python experiments/free_rows.py --workdir $w --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1.candidates.npz --baseline-run experiments/results/runs/mix300_${c}_head_s4r1_zsum300.trec --name free300_${c}_head_s4r1
echo "free_rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
