#!/bin/bash
cd /work/wt/head
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/head
time /work/main/.venv/bin/zerogr run --config experiments/configs/demo_med.py --set collection=cranfield --set workdir=/work/runs/cranfield_head --set 'train_overrides=train.epochs=1,data.negatives=7,train.rank_every=1,train.rank_batch_size=16,train.rank_score=head' --set search.rerank_depth=30 --set baselines=bm25 --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
