#!/bin/bash
# Session 15, rule C (experiments/results/head_groups_rule_session15.txt): the head recipe with 4 groups per ranking
# step (rank_batch_size=32) on cisi (started at the end of session 15; cranfield is the next run). Waits for the ranking-step benchmark to finish.

cd /work/wt/s15c
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s15c
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=cisi --set workdir=/work/runs/cisi_head_g4 --set 'train_overrides=train.epochs=1,data.negatives=7,train.rank_every=1,train.rank_batch_size=32,train.rank_score=head' --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/cisi_head_g4 --collection cisi --depths 30,100 --prior-weight 0.5 --save-candidates --name pool100_cisi_head_g4
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/cisi_head_g4 --collection cisi --candidates experiments/results/runs/pool100_cisi_head_g4.candidates.npz --name mix_cisi_head_g4
echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
