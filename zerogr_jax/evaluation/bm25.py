"""BM25 baseline with `bm25s`: title + text, lowercased, English stop words removed, Snowball English stemming.

Scoring is bm25s' "lucene" variant (k1 = 1.5, b = 0.75 by default). Documents that share no term with the query
score 0 and are left out of the ranking (bm25s would fill the top k with them in arbitrary order), so a ranking may
hold fewer than k documents; a query with no indexed term gets an empty ranking. Both are counted.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, Mapping

import bm25s
import numpy as np
import Stemmer

from zerogr_jax.data.beir import Document

logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its logger to DEBUG when imported


@dataclasses.dataclass(frozen=True)
class BM25Config:
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str = "en"
    stemmer_language: str | None = "english"  # PyStemmer (Snowball) language; None: no stemming


@dataclasses.dataclass(frozen=True)
class BM25Index:
    retriever: bm25s.BM25
    doc_ids: tuple[str, ...]  # row i of the index is doc_ids[i]
    config: BM25Config


@dataclasses.dataclass
class BM25SearchStats:
    queries: int = 0
    empty_queries: int = 0  # no term of the query is in the index: empty ranking
    short_rankings: int = 0  # fewer than k documents matched any query term


def _stemmer(cfg: BM25Config):
    return Stemmer.Stemmer(cfg.stemmer_language) if cfg.stemmer_language else None


def _tokenize(texts: list[str], cfg: BM25Config, **kwargs):
    return bm25s.tokenize(texts, lower=True, stopwords=cfg.stopwords, stemmer=_stemmer(cfg), show_progress=False,
                          **kwargs)


def build_bm25_index(docs: Iterable[Document], config: BM25Config = BM25Config()) -> BM25Index:
    """Indexes `Document.contents()` (title + text) of every document."""
    docs = list(docs)
    if not docs:
        raise ValueError("cannot build a BM25 index over an empty corpus")
    retriever = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    retriever.index(_tokenize([d.contents() for d in docs], config), show_progress=False)
    return BM25Index(retriever=retriever, doc_ids=tuple(d.doc_id for d in docs), config=config)


def bm25_search(index: BM25Index, queries: Mapping[str, str], k: int = 1000,
                stats: BM25SearchStats | None = None) -> dict[str, dict[str, float]]:
    """{query id: {doc id: BM25 score}} with at most `k` documents per query (only documents with score > 0)."""
    stats = stats if stats is not None else BM25SearchStats()
    k = min(k, len(index.doc_ids))
    qids = list(queries)
    tokens = _tokenize([queries[q] for q in qids], index.config, return_ids=False)  # list[list[str]]
    vocab = index.retriever.vocab_dict
    run: dict[str, dict[str, float]] = {q: {} for q in qids}
    # bm25s stands "" in for an empty text; it matches no document.
    searchable = [i for i, toks in enumerate(tokens) if any(t and t in vocab for t in toks)]
    stats.queries += len(qids)
    stats.empty_queries += len(qids) - len(searchable)
    if searchable:
        docs, scores = index.retriever.retrieve([tokens[i] for i in searchable], k=k, show_progress=False)
        # docs, scores: [num_searchable, k]
        for row, i in enumerate(searchable):
            keep = scores[row] > 0
            run[qids[i]] = {index.doc_ids[d]: float(s) for d, s in zip(docs[row][keep], scores[row][keep])}
            stats.short_rankings += int(np.count_nonzero(keep) < k)
    return run
