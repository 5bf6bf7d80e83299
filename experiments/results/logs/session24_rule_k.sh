#!/bin/bash
# Session 24, rule K (experiments/results/keyphrase_rule_session24.txt): the recipe with 4 keyphrase queries per
# document, paired against rule G's rows mix300_<c>_head_s4r1_zsum300 (med 0.555, cisi 0.250, cranfield 0.299).
WORKTREE=/work/wt/s24 NAME=head_s4r1kp4 COLLECTIONS=${COLLECTIONS:-med} exec bash /work/wt/s24/experiments/rule_job.sh --set index.keyphrase_queries=4
