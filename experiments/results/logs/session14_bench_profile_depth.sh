#!/bin/bash
while ! grep -q "^end rc" /work/runs/s14/bench_stage.log; do sleep 10; done
cd /work/main
echo "start bench2 $(date -u +%FT%TZ) beam30=7fadc29 exact=$(git -C /work/wt/s14 rev-parse --short HEAD) load: $(cat /proc/loadavg)"
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/main
time /work/main/.venv/bin/python experiments/bench_search_stage.py --workdir /work/runs/demo_med_exact --collection med --code beam30=/work/wt/before --code exact=/work/wt/s14 --args beam30='--strategy beam --beam-width 30' --rounds 2 --name bench_search_stage_beam30_vs_exact -- --strategy exact --prior-weight 0.5 --num-docids 10
echo "end bench2 rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
for v in before s14; do
echo "start profile $v $(date -u +%FT%TZ) commit $(git -C /work/wt/$v rev-parse --short HEAD) load: $(cat /proc/loadavg)"
PYTHONPATH=/work/wt/$v /work/main/.venv/bin/python /work/main/experiments/profile_exact_search.py --workdir /work/runs/demo_med_exact --collection med --queries 12 --name profile_exact_search_$v 2>&1 | grep -v WARN | tail -3
echo "end profile $v $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
cd /work/wt/s14
export PYTHONPATH=/work/wt/s14
for c in med cisi; do
echo "start $c $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cat /proc/loadavg)"
time /work/main/.venv/bin/python experiments/rerank_rows.py --workdir /work/runs/${c}_head --collection $c --depths 30,100 --prior-weight 0.5 --name rerank_depth_${c}_head
echo "end $c rc $? $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
done
