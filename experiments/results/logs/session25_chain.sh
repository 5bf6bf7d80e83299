#!/bin/bash
# Session 25's queue, one job after another (2 cores): rule J's cranfield confirmation, then rule L on med (rule G's
# med retriever retrained with session 18's command from session 18's commit and checked with pool_check.py), then
# rule L on cranfield (the retriever from the first job), then rule K on cisi (resumable; it may run past the session).
L=/work/main/experiments/results/logs
bash $L/session24_rule_j_cranfield.sh > $L/session25_rule_j_cranfield.txt 2>&1
export ZEROGR_DATA=/work/shared/data
c=med w=/work/runs/med_head_s4r1
(
cd /work/wt/s18 && export PYTHONPATH=/work/wt/s18
echo "start train $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/zerogr run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=$w --set index.span_queries=4 --set 'train_overrides=train.epochs=1,data.negatives=7,train.rank_every=1,train.rank_batch_size=16,train.rank_score=head' --set max_queries=1 --set baselines= --set fusion= --no-progress
echo "run rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
cd /work/wt/s25 && export PYTHONPATH=/work/wt/s25
echo "pool check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/pool_check.py --workdir $w --collection $c --candidates experiments/results/runs/pool300_${c}_head_s4r1.candidates.npz --queries 4 || { echo "pool check failed: the retrained model is not rule G's; rule L's med rows not computed"; exit 1; }
COLLECTION=med bash $L/session24_rule_l_cisi.sh
) > $L/session25_rule_l_med.txt 2>&1
if grep -q "free_rows rc 0" $L/session25_rule_j_cranfield.txt; then
  COLLECTION=cranfield bash $L/session24_rule_l_cisi.sh > $L/session25_rule_l_cranfield.txt 2>&1
fi
COLLECTIONS=cisi bash $L/session24_rule_k.sh > $L/session25_rule_k_cisi.txt 2>&1
