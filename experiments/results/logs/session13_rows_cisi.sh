#!/bin/bash
cd /work/wt/head
echo "start $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/head
time /work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/cisi_head --collection cisi --depths 10,30 --prior-weight 0.5 --name rerank_cisi_head
echo "rows rc $? end $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
