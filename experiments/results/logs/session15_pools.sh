#!/bin/bash
# Session 15: exact pools of 100 (w = 0.5) with the head's scores on all 100, saved for the mixing rule
# (experiments/results/score_mix_rule_session15.txt); then cranfield's head-scored BM25 pool for the fusion rule.
cd /work/wt/s15
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s15
PY=/work/main/.venv/bin/python
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
for c in med cisi cranfield; do
  echo "rows $c start $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
  $PY experiments/rerank_rows.py --workdir /work/runs/${c}_head --collection $c --depths 30,100 --prior-weight 0.5 --save-candidates --name pool100_${c}_head
  echo "rows $c rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
echo "bm25 cranfield start $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
$PY experiments/bm25_rescoring.py --workdir /work/runs/cranfield_head --collection cranfield --depth 100 --prior-weights '' --head --name bm25_head_cranfield --no-progress
echo "bm25 cranfield rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
