#!/bin/bash
# Session 26, rule N (experiments/results/pseudo_query_sampling_rule_session26.txt): rule M's run with pseudo-queries
# drawn at temperature 0.6, top-p 0.9, paired against rule G's rows mix300_<c>_head_s4r1_zsum300.
WORKTREE=/work/wt/s30 NAME=head_s4r1q4t6 COLLECTIONS=${COLLECTIONS:-med} exec bash /work/wt/s30/experiments/rule_job.sh \
  --set index.num_queries=4 --set index.query_temperature=0.6 --set index.query_top_p=0.9
