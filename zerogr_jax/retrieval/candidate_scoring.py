"""The generative retriever as a scorer of given candidates: log p(docid(d) | query) for each candidate document d.

Decoding finds the docids a retriever likes best; this scores the docids of documents chosen elsewhere (BM25's top
N, a dense retriever's), exactly, by teacher forcing every candidate's docid after the query's prompt
(`docid_scoring.score_docids`: the constrained log-probability beam search ranks by, with no pruning). With the
docid prior (log p(docid | the instruction and an empty query), scored once) the score is the pointwise mutual
information-style

    s(d, q) = log p(docid(d) | q) - prior_weight * log p(docid(d) | empty query),

which removes the retriever's preference for docids it likes for every query. Used by the fusion rows
(`evaluation/fusion.py`): the candidates come from BM25, so these rows are never pure generative retrieval.

`head_candidates` scores them by the rerank head instead (`rerank_head`), for a retriever trained with it.

Cost: one prompt pass plus N docids x L tokens of the model per query (about N / U of exact scoring over all U
docids). Documents sharing a docid get the same score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from zerogr_jax import tokenization
from zerogr_jax.models import llama
from zerogr_jax.retrieval.docid_scoring import ROWS, docid_paths, head_scores, score_all_docids, score_docids
from zerogr_jax.retrieval.trie import TrieHost
from zerogr_jax.retrieval_contract import PromptBuilder


@dataclasses.dataclass(frozen=True)
class CandidateScores:
    """Per query, each candidate's constrained docid log-probability; the docid prior per document."""

    logprobs: dict[str, dict[str, float]]  # {query id: {doc id: log p(docid(d) | query)}}
    prior: dict[str, float]  # {doc id: log p(docid(d) | empty query)} for every candidate document

    def scores(self, prior_weight: float) -> dict[str, dict[str, float]]:
        """{query id: {doc id: log p(docid | q) - prior_weight * log p(docid | empty)}} (a run: higher is better)."""
        return {q: {d: lp - prior_weight * self.prior[d] for d, lp in docs.items()}
                for q, docs in self.logprobs.items()}


def document_docids(trie: TrieHost) -> np.ndarray:
    """[num_docs] the docid index of each document (the inverse of the trie's docid -> documents CSR)."""
    out = np.full(trie.num_documents, -1, np.int64)
    for u in range(trie.num_docids):
        out[trie.doc_ids[trie.doc_indptr[u]:trie.doc_indptr[u + 1]]] = u
    return out


def score_candidates(cfg: llama.LlamaConfig, params, tokenizer, trie: TrieHost, doc_ids: Sequence[str],
                     queries: Mapping[str, str], instruction: str, candidates: Mapping[str, Sequence[str]], *,
                     restrict_head: bool = True, chunk: int = ROWS, progress: bool = True) -> CandidateScores:
    """Scores each query's candidate documents (ids of `doc_ids`) by their docids' constrained log-probability.

    `trie` and `doc_ids` are the index's (`search.build_index_trie`); unknown candidate ids are an error."""
    m = _ScoringModel.make(cfg, params, tokenizer, trie, restrict_head)
    device_trie = m.trie.to_device()
    prior_all = score_all_docids(m.model, m.params, m.prompt(instruction, ""), m.trie, device_trie, pad_id=m.pad,
                                 chunk=chunk)
    prior = {}

    def score(qid: str, docs: list[str], u: np.ndarray, unique: np.ndarray) -> np.ndarray:
        prior.update({d: float(prior_all[v]) for d, v in zip(docs, u)})
        return score_docids(m.model, m.params, m.prompt(instruction, queries[qid]), m.trie, device_trie, unique,
                            chunk=chunk, pad_id=m.pad, paths=m.paths)

    logprobs = _per_candidate(trie, doc_ids, queries, candidates, score, progress, "score candidates")
    return CandidateScores(logprobs, prior)


def head_candidates(cfg: llama.LlamaConfig, params, tokenizer, trie: TrieHost, doc_ids: Sequence[str],
                    queries: Mapping[str, str], instruction: str, candidates: Mapping[str, Sequence[str]],
                    head_token: str, *, restrict_head: bool = True, chunk: int = ROWS, progress: bool = True
                    ) -> dict[str, dict[str, float]]:
    """{query id: {doc id: the rerank head's score}} of each query's candidate documents (`rerank_head`: the logit
    of `head_token` after prompt(query) + docid(d) + EOS; a retriever trained with train.rank_score=head)."""
    from zerogr_jax import rerank_head

    m = _ScoringModel.make(cfg, params, tokenizer, trie, restrict_head)
    token = rerank_head.token_id(tokenizer, head_token)
    device_trie = m.trie.to_device()
    return _per_candidate(trie, doc_ids, queries, candidates, lambda qid, docs, u, unique: head_scores(
        m.model, m.params, m.prompt(instruction, queries[qid]), m.trie, unique, token, chunk=chunk, pad_id=m.pad,
        paths=m.paths, trie=device_trie), progress, "head scores")


@dataclasses.dataclass(frozen=True)
class _ScoringModel:
    """What teacher-forced scoring of a query's docids needs: the decode-step model over the (compact) trie."""

    trie: TrieHost  # the scored trie (compact vocabulary when the head is restricted)
    model: Any
    params: Any
    paths: Any  # docid_paths(trie)
    builder: PromptBuilder
    pad: int

    @classmethod
    def make(cls, cfg: llama.LlamaConfig, params, tokenizer, trie: TrieHost, restrict_head: bool) -> "_ScoringModel":
        from zerogr_jax.retrieval.search import step_model

        scored_trie, model, model_params = step_model(cfg, params, trie, restrict_head)
        return cls(scored_trie, model, model_params, docid_paths(scored_trie), PromptBuilder(tokenizer),
                   tokenization.pad_id_of(tokenizer))

    def prompt(self, instruction: str, query: str) -> list[int]:
        return self.builder.ids(instruction, [query])[0]


def _per_candidate(trie: TrieHost, doc_ids: Sequence[str], queries: Mapping[str, str],
                   candidates: Mapping[str, Sequence[str]], score, progress: bool, desc: str
                   ) -> dict[str, dict[str, float]]:
    """{query id: {doc id: score}}: `score(qid, docs, u, unique) -> [len(unique)]` over each query's distinct
    candidate documents `docs`, their docid indices `u` and those indices' distinct values `unique` (documents
    sharing a docid are scored once and share the score)."""
    from tqdm.auto import tqdm

    position = {d: i for i, d in enumerate(doc_ids)}
    docid_of = document_docids(trie)
    out = {}
    for qid in tqdm(list(queries), desc=desc, unit="q", disable=not progress):
        docs = list(dict.fromkeys(candidates.get(qid, ())))
        unknown = [d for d in docs if d not in position]
        if unknown:
            raise KeyError(f"query {qid}: candidate documents not in the index: {unknown[:5]}")
        if not docs:
            out[qid] = {}
            continue
        u = docid_of[[position[d] for d in docs]]
        unique, inverse = np.unique(u, return_inverse=True)
        got = np.asarray(score(qid, docs, u, unique))[inverse]
        out[qid] = {d: float(s) for d, s in zip(docs, got)}
    return out
