#!/bin/bash
# Session 16, rule D (experiments/results/pool_depth_rule_session16.txt): a pool of every docid per query on the
# session-13 head retrievers, med then cisi (the selection); cranfield follows only as the rule's confirmation.
cd /work/wt/s16
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s16
for c in med cisi; do
  echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
  /work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head --collection $c --depths 100,all --prior-weight 0.5 --save-candidates --name poolall_${c}_head
  echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
  /work/main/.venv/bin/python experiments/mix_rows.py --workdir /work/runs/${c}_head --collection $c --candidates experiments/results/runs/poolall_${c}_head.candidates.npz --depths 100,300,all --baseline zsum100 --name mixall_${c}_head
  echo "mix rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
