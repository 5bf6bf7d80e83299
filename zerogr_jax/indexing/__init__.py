"""Corpus indexing: docids (LM keywords and ablation schemes), instructed pseudo-queries, the resumable builder."""
