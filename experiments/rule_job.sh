#!/bin/bash
# One selection rule's job (RESULTS.md, rules E-K), collection by collection: the recipe's pipeline with the rule's
# overrides (index, train, one query), the exact pool of 300 scored by the head (rerank_rows.py), the mixed rows
# (mix_rows.py), and the paired test of its zsum300 against the recipe's committed row mix300_<c>_<baseline>_zsum300.
#
#   WORKTREE=/work/wt/s24 NAME=head_s4r1kp4 COLLECTIONS="med cisi" bash experiments/rule_job.sh --set index.keyphrase_queries=4
#
# Runs from WORKTREE (a git worktree at a fixed commit, so edits elsewhere do not change a running job), with the
# virtual environment of VENV (default /work/main/.venv); workdirs are $RUNS/<c>_<NAME> (default RUNS=/work/runs);
# rows and runs are written under WORKTREE's experiments/results. Each stage resumes (training from its last
# checkpoint) when the same command runs again. Every step logs its exit code, the UTC time and the load.
set -u
: "${WORKTREE:?a worktree to run from}" "${NAME:?a row name, e.g. head_s4r1kp4}"
VENV=${VENV:-/work/main/.venv} RUNS=${RUNS:-/work/runs} BASELINE=${BASELINE:-head_s4r1}
cd "$WORKTREE" || exit 1
export ZEROGR_DATA=${ZEROGR_DATA:-/work/shared/data} PYTHONPATH=$WORKTREE
stamp() { echo "$1 $(date -u +%FT%TZ) load: $(cat /proc/loadavg)"; }
for c in ${COLLECTIONS:-med}; do
  w=$RUNS/${c}_$NAME
  stamp "start $c commit $(git rev-parse --short HEAD)"
  time "$VENV/bin/zerogr" run --config experiments/configs/rerank_head.py --set collection=$c --set workdir=$w \
    "$@" --set max_queries=1 --set baselines= --set fusion= --no-progress
  stamp "run rc $?"
  "$VENV/bin/python" experiments/rerank_rows.py --workdir $w --collection $c --depths 100,300 --prior-weight 0.5 \
    --save-candidates --name pool300_${c}_$NAME
  stamp "rows rc $?"
  "$VENV/bin/python" experiments/mix_rows.py --workdir $w --collection $c \
    --candidates experiments/results/runs/pool300_${c}_$NAME.candidates.npz --depths 100,300 --baseline zsum100 \
    --name mix300_${c}_$NAME
  stamp "mix rc $?"
  "$VENV/bin/python" experiments/compare_runs.py --collection $c \
    --baseline experiments/results/runs/mix300_${c}_${BASELINE}_zsum300.trec \
    --runs experiments/results/runs/mix300_${c}_${NAME}_zsum300.trec --name compare_${c}_${NAME#head_}_vs_${BASELINE#head_}_zsum300
  stamp "compare rc $?"
done
