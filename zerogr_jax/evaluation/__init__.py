"""Scoring runs with trec_eval semantics, TREC run files, and the BM25 / dense baselines.

The baselines live in `bm25.py` and `dense.py` and are imported from there (they pull in bm25s and torch).
"""

from zerogr_jax.evaluation.metrics import EvalReport, EvalResult, evaluate
from zerogr_jax.evaluation.runfile import read_run, write_run

__all__ = ["EvalReport", "EvalResult", "evaluate", "read_run", "write_run"]
