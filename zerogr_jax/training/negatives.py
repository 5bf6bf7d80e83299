"""Negative documents for the ranking loss: for each training query, other documents that look like its answer.

The reference trains a ranking signal over 1 positive and 7 BM25-mined negatives per query, with BM25 run over its
pseudo-queries. Here BM25 runs over the index's own rows: each document is represented by its query-like rows joined
(its document-as-query opening, spans, keyphrases, pseudo-queries), so the train stage mines negatives from the index
directory alone (no corpus), and a negative is a document whose training rows look like this query.

Sources (`PairsConfig.negatives_source`):

* ``"bm25"``: `num` documents drawn without replacement from BM25's top `depth` for the query, the query's own
  document left out. Drawing from the top `depth` rather than taking the very top ones is deliberate: on
  topic-clustered collections the nearest neighbours of a document are often relevant to the same real queries, and
  pushing exactly those down teaches distinctions no query asks for. A query that matches fewer than `num` other
  documents is topped up with uniformly drawn ones (counted as `topped_up`).
* ``"random"``: `num` documents drawn uniformly from the others (the control: the same loss without hard negatives).

With ``"bm25"``, `num_random` of the `num` are drawn uniformly from the documents not already chosen instead: a head
trained on BM25's neighbours alone never sees a document unlike its query, and scores some such documents high when
it ranks a whole collection (RESULTS.md, session 16, rule D: the head alone over every cisi docid, 0.067).

Everything is seeded: the same index, settings and seed give the same negatives.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np

NegativesSource = Literal["bm25", "random"]


@dataclasses.dataclass
class NegativesStats:
    queries: int = 0
    topped_up: int = 0  # queries whose BM25 list held fewer than `num` other documents (filled uniformly)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def mine_negatives(doc_texts: Sequence[str], queries: Sequence[str], positives: Sequence[int], num: int, *,
                   source: NegativesSource = "bm25", depth: int = 20, seed: int = 0, num_random: int = 0,
                   stats: NegativesStats | None = None) -> np.ndarray:
    """[Q, num] int64 document rows (indices into `doc_texts`): negatives for query q, never `positives[q]`,
    distinct within a row, BM25's first and the `num_random` uniform ones last. Needs at least num + 1 documents.
    With num_random = 0 the draws are those of earlier versions (same seed, same negatives)."""
    n_docs = len(doc_texts)
    if num < 1:
        raise ValueError(f"num={num}: at least one negative per query")
    if n_docs < num + 1:
        raise ValueError(f"{num} negatives per query need at least {num + 1} documents, the index has {n_docs}")
    if len(queries) != len(positives):
        raise ValueError(f"{len(queries)} queries but {len(positives)} positives")
    if source not in ("bm25", "random"):
        raise ValueError(f"negatives source {source!r}: expected 'bm25' or 'random'")
    if not 0 <= num_random <= num:
        raise ValueError(f"num_random={num_random}: between 0 and the {num} negatives")
    stats = stats if stats is not None else NegativesStats()
    rng = np.random.Generator(np.random.PCG64(seed))
    from_bm25 = num - num_random if source == "bm25" else 0
    candidates = _bm25_candidates(doc_texts, queries, depth) if from_bm25 else [[] for _ in queries]
    out = np.zeros((len(queries), num), np.int64)
    for q, (pos, ranked) in enumerate(zip(positives, candidates)):
        pool = [d for d in ranked if d != pos]
        if from_bm25 and len(pool) >= from_bm25:
            chosen = np.asarray(pool)[np.sort(rng.choice(len(pool), size=from_bm25, replace=False))].tolist()
        else:
            chosen = pool  # fewer than asked: all of them, the rest uniform
            stats.topped_up += bool(from_bm25)
        if len(chosen) < num:
            rest = np.setdiff1d(np.arange(n_docs), np.asarray(chosen + [pos], np.int64))
            chosen = chosen + rng.choice(rest, size=num - len(chosen), replace=False).tolist()
        out[q] = chosen
    stats.queries += len(queries)
    return out


def _bm25_candidates(doc_texts: Sequence[str], queries: Sequence[str], depth: int) -> list[list[int]]:
    """Per query, the rows of BM25's top `depth` + 1 documents (scores > 0), best first."""
    from zerogr_jax.data.beir import Document
    from zerogr_jax.evaluation.bm25 import bm25_search, build_bm25_index

    index = build_bm25_index(Document(str(i), "", t) for i, t in enumerate(doc_texts))
    run = bm25_search(index, {str(q): text for q, text in enumerate(queries)}, k=depth + 1)
    return [[int(d) for d in run[str(q)]] for q in range(len(queries))]
