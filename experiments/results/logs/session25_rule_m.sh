#!/bin/bash
# Session 25, rule M (experiments/results/pseudo_query_rule_session25.txt): the recipe with B = 4 LM pseudo-queries per
# document, paired against rule G's rows mix300_<c>_head_s4r1_zsum300 (med 0.555, cisi 0.250, cranfield 0.299).
WORKTREE=/work/wt/s28 NAME=head_s4r1q4 COLLECTIONS=${COLLECTIONS:-med} exec bash /work/wt/s28/experiments/rule_job.sh --set index.num_queries=4
