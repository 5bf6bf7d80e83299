"""Rank fusion of TREC runs: generative retrieval beside BM25, always reported in rows of its own.

Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): a document's fused score is

    sum over runs r of  w_r / (k + rank_r(d)),   rank from 1 in trec_eval's order, absent documents add nothing,

with k = 60 as in the paper. It uses ranks only, which suits a generative run whose scores are 1 / (rank + 1) and a
BM25 run whose scores live on another scale. A run's weight says how much its ranks count; the pipeline's default
weights are equal (the paper's RRF), so no weight is fitted to the collection being scored.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from zerogr_jax.evaluation.metrics import trec_order

Run = Mapping[str, Mapping[str, float]]


def reciprocal_rank_fusion(runs: Sequence[Run], *, weights: Sequence[float] | None = None, k: float = 60.0,
                           depth: int = 100) -> dict[str, dict[str, float]]:
    """The RRF run of `runs` over the union of their queries; each run's top `depth` documents take part."""
    if not runs:
        raise ValueError("reciprocal_rank_fusion needs at least one run")
    weights = [1.0] * len(runs) if weights is None else list(weights)
    if len(weights) != len(runs) or any(w < 0 for w in weights):
        raise ValueError(f"need one non-negative weight per run, got {weights} for {len(runs)} runs")
    if k < 0 or depth < 1:
        raise ValueError(f"k must be >= 0 and depth >= 1, got k={k}, depth={depth}")
    fused: dict[str, dict[str, float]] = {}
    for run, w in zip(runs, weights):
        for qid, ranking in run.items():
            out = fused.setdefault(qid, {})
            for rank, (doc_id, _) in enumerate(trec_order(ranking)[:depth], 1):
                out[doc_id] = out.get(doc_id, 0.0) + w / (k + rank)
    return fused
