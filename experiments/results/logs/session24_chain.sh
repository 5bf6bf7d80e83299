#!/bin/bash
# Session 24: after rule G's cisi retrain (session18_rule_g_cisi.sh) ends, rule J's cisi rows, then rule K's med run.
while kill -0 25428 2>/dev/null; do sleep 20; done
echo "retrain ended $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
cd /work/main
/work/main/.venv/bin/python - <<'PY'
import numpy as np
a = np.load('/work/main/experiments/results/runs/pool300_cisi_head_s4r1.candidates.npz')
b = np.load('/work/wt/s18/experiments/results/runs/pool300_cisi_head_s4r1.candidates.npz')
for k in a.files:
    x, y = a[k], b[k]
    same = x.shape == y.shape and (np.array_equal(x, y) if x.dtype.kind in 'OUSi' else bool(np.allclose(x, y, atol=1e-4)))
    diff = '' if x.dtype.kind in 'OUSi' or x.shape != y.shape else f' max |diff| {np.nanmax(np.abs(x - y)):.2e}'
    print('pool check', k, 'same' if same else 'DIFFERENT', diff)
PY
echo "start free_rows cisi $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/main time /work/main/.venv/bin/python experiments/free_rows.py --workdir /work/runs/cisi_head_s4r1 --collection cisi --candidates experiments/results/runs/pool300_cisi_head_s4r1.candidates.npz --baseline-run experiments/results/runs/mix300_cisi_head_s4r1_zsum300.trec --name free300_cisi_head_s4r1
echo "free_rows rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
COLLECTIONS=med bash /work/main/experiments/results/logs/session24_rule_k.sh
