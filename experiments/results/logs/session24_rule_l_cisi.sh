#!/bin/bash
# Session 24, rule L (experiments/results/fusion_rule_session24.txt) on cisi: BM25's top 100 scored by rule G's cisi
# retriever (retrained this session, its pool identical to the committed one), then the fusion rows against BM25.
cd /work/wt/s26 && export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/wt/s26
c=${COLLECTION:-cisi}
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/bm25_rescoring.py --workdir /work/runs/${c}_head_s4r1 --collection $c --depth 100 --prior-weights 0.5 --head --no-progress --name bm25_head_${c}_s4r1
echo "scores rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
/work/main/.venv/bin/python experiments/head_fusion_rows.py --collection $c --bm25-run experiments/results/runs/bm25_head_${c}_s4r1_bm25.trec --head-scores experiments/results/runs/bm25_head_${c}_s4r1.head_scores.json --gen-run experiments/results/runs/bm25_head_${c}_s4r1_rerank_w0.5.trec --betas 0.25 --name fusion_${c}_s4r1_scores
echo "rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
