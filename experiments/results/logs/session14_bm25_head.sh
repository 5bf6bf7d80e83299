#!/bin/bash
cd /work/wt/s14
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s14
for c in med cisi; do
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/python experiments/bm25_rescoring.py --workdir /work/runs/${c}_head --collection $c --depth 100 --prior-weights '' --head --name bm25_head_$c --no-progress
echo "end $c rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
