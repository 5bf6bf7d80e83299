#!/bin/bash
# The queue left by session 26, in order (one job at a time on the 2-core CPU); each command resumes where it stopped:
#   1. rule N on med (its queries stage or training, then the pool and the paired test);
#   2. rule M on cisi (rule M's med row, 0.605 against 0.555, sends it on to cisi);
#   3. rule N on cisi, if rule N's med row is not worse than 0.555 by more than 0.01.
# Results land in the worktrees' experiments/results (/work/wt/s30 for N, /work/wt/s28 for M); copy them into main
# with the worktree path cut out of each JSON.
L=/work/main/experiments/results/logs
COLLECTIONS=med bash $L/session26_rule_n.sh >> $L/session27_rule_n_med.txt 2>&1
COLLECTIONS=cisi bash $L/session25_rule_m.sh >> $L/session27_rule_m_cisi.txt 2>&1
n=$(python3 -c "import json; print(json.load(open('/work/wt/s30/experiments/results/compare_med_s4r1q4t6_vs_s4r1_zsum300.json'))['results']['experiments/results/runs/mix300_med_head_s4r1q4t6_zsum300.trec']['nDCG@10']['diff'])")
if python3 -c "import sys; sys.exit(0 if $n >= -0.01 else 1)"; then
  COLLECTIONS=cisi bash $L/session26_rule_n.sh >> $L/session27_rule_n_cisi.txt 2>&1
else
  echo "rule N ends on med: diff $n"
fi
