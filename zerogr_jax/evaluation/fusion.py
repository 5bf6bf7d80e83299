"""Rank fusion of TREC runs: generative retrieval beside BM25, always reported in rows of its own.

Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): a document's fused score is

    sum over runs r of  w_r / (k + rank_r(d)),   rank from 1 in trec_eval's order, absent documents add nothing,

with k = 60 as in the paper. It uses ranks only, which suits a generative run whose scores are 1 / (rank + 1) and a
BM25 run whose scores live on another scale. A run's weight says how much its ranks count; the pipeline's default
weights are equal (the paper's RRF), so no weight is fitted to the collection being scored.

Score fusion (CombSUM of standardised scores, Montague & Aslam, CIKM 2001's "z-score" normalisation) for runs whose
scores mean something, e.g. BM25's and the rerank head's over the same candidates:

    sum over runs r of  w_r * (s_r(d) - mean_r) / sd_r,   over the query's top `depth` documents of r;

a document missing from a run takes that run's lowest standardised score for the query (ranked last, not zero).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

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


def zscore_fusion(runs: Sequence[Run], *, weights: Sequence[float] | None = None, depth: int = 100
                  ) -> dict[str, dict[str, float]]:
    """The weighted sum of each run's per-query standardised scores over the union of the runs' top `depth`."""
    if not runs:
        raise ValueError("zscore_fusion needs at least one run")
    weights = [1.0] * len(runs) if weights is None else list(weights)
    if len(weights) != len(runs) or any(w < 0 for w in weights):
        raise ValueError(f"need one non-negative weight per run, got {weights} for {len(runs)} runs")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    standardised = []
    for run in runs:
        per_query = {}
        for qid, ranking in run.items():
            top = trec_order(ranking)[:depth]
            scores = np.array([s for _, s in top], np.float64)
            sd = scores.std() if len(scores) else 0.0
            z = (scores - scores.mean()) / sd if sd > 0 else np.zeros_like(scores)
            per_query[qid] = {d: float(v) for (d, _), v in zip(top, z)}
        standardised.append(per_query)
    fused: dict[str, dict[str, float]] = {}
    for qid in dict.fromkeys(q for run in standardised for q in run):  # first-seen order: the same file every run
        docs = dict.fromkeys(d for run in standardised for d in run.get(qid, {}))
        out = fused[qid] = dict.fromkeys(docs, 0.0)
        for run, w in zip(standardised, weights):
            z = run.get(qid, {})
            floor = min(z.values(), default=0.0)
            for d in docs:
                out[d] += w * z.get(d, floor)
    return fused
