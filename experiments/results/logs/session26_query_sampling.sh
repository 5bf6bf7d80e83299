cd /work/main
export ZEROGR_DATA=/work/shared/data PYTHONPATH=/work/main
for c in med cisi; do
  for tp in "1.0 1.0" "0.6 0.9"; do
    set -- $tp
    echo "start $c T=$1 top_p=$2 $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
    nice -n 10 .venv/bin/python experiments/bench_query_generation.py --collection $c --docs 16 --docs-per-call 8 \
      --paths shared_prefix_stop_at_newline --temperature $1 --top-p $2 --name query_sampling_${c}_t$1_p$2 2>&1 | grep -v Warn | tail -3
  done
done
echo "end $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"
