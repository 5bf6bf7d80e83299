"""Retrieval metrics with trec_eval semantics, computed by `pytrec_eval` (trec_eval's own C code) behind a small API.

Definitions (trec_eval measure in brackets; "relevant" means a judged grade >= `relevance_level`, default 1):

- nDCG@k [`ndcg_cut.k`]: gain = the judged grade itself (graded, linear), discount = log2(rank + 1), ideal ranking
  from all judged grades of the query; grades <= 0 add nothing.
- Recall@k [`recall.k`]: relevant documents in the top k / all relevant documents of the query.
- Acc@1 [`P.1`]: 1 if the top-ranked document is relevant, else 0 (precision at 1 with binary labels).
- MRR@k [`recip_rank` on the run cut to its top k]: trec_eval's `recip_rank` has no cutoff, so each query's ranking
  is first cut to its k best documents, ordered as trec_eval orders them, then scored: 1/rank of the first
  relevant document in the top k, else 0.
- MAP [`map`]: mean average precision over the whole run.

Ordering and ties: trec_eval ignores the run's ranks and sorts each query's documents by score, descending, then
by document id, descending (string order); we keep that, and the MRR cut uses the same order.

Which queries count: the means are over every query in the qrels (as `trec_eval -c`). A judged query with no run
entry, or with an empty ranking, scores 0 on every metric. A judged query with no relevant document scores 0 too
(trec_eval's value). Run queries that have no judgements are ignored. All of these are counted in an
`EvalReport` and logged; nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Collection, Mapping

import pytrec_eval

logger = logging.getLogger(__name__)

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]  # query id -> doc id -> score (higher is better)

_EXAMPLES = 5


@dataclasses.dataclass
class EvalReport:
    """What `evaluate` found in the run besides the scores."""

    num_queries: int = 0  # judged queries: the denominator of every mean
    scored_queries: int = 0  # judged queries with a non-empty ranking
    missing_queries: int = 0  # judged queries without a run entry (scored 0)
    empty_rankings: int = 0  # run entries with no documents (judged ones scored 0)
    unjudged_queries: int = 0  # run queries absent from the qrels (ignored)
    unknown_doc_ids: int = 0  # run entries naming a document outside `corpus_ids` (kept: they score as non-relevant)
    queries_with_unknown_docs: int = 0
    identical_ids_removed: int = 0  # entries whose doc id equals the query id (with ignore_identical_ids)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def messages(self) -> list[str]:
        out = []
        if self.missing_queries:
            out.append(f"{self.missing_queries} of {self.num_queries} judged queries have no run entry "
                       f"(scored 0), e.g. {self.examples.get('missing_queries')}")
        if self.empty_rankings:
            out.append(f"{self.empty_rankings} run entries are empty, e.g. {self.examples.get('empty_rankings')}")
        if self.unjudged_queries:
            out.append(f"{self.unjudged_queries} run queries have no judgements (ignored), "
                       f"e.g. {self.examples.get('unjudged_queries')}")
        if self.unknown_doc_ids:
            out.append(f"{self.unknown_doc_ids} run entries in {self.queries_with_unknown_docs} queries name "
                       f"documents outside the corpus, e.g. {self.examples.get('unknown_doc_ids')}")
        return out

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]  # name -> mean over the judged queries
    per_query: dict[str, dict[str, float]]  # query id -> name -> value (every judged query)
    report: EvalReport

    def as_dict(self) -> dict:
        return {"metrics": self.metrics, "per_query": self.per_query, "report": self.report.as_dict()}


def metric_names(ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10) -> tuple[str, ...]:
    return (f"nDCG@{ndcg_k}", f"Recall@{recall_k}", "Acc@1", f"MRR@{mrr_k}", "MAP")


def trec_order(ranking: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) pairs in trec_eval's order: score descending, then doc id descending."""
    return sorted(ranking.items(), key=lambda item: (item[1], item[0]), reverse=True)


def evaluate(qrels: Qrels, run: Run, *, ignore_identical_ids: bool = False,
             corpus_ids: Collection[str] | None = None, ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10,
             relevance_level: int = 1) -> EvalResult:
    """Scores `run` against `qrels` (see the module docstring for the exact definitions)."""
    if not qrels:
        raise ValueError("qrels are empty: nothing to evaluate against")
    for k in (ndcg_k, recall_k, mrr_k):
        if not (isinstance(k, int) and k > 0):
            raise ValueError(f"cutoffs must be positive integers, got {k!r}")
    report = EvalReport(num_queries=len(qrels))
    corpus_ids = set(corpus_ids) if corpus_ids is not None else None
    examples: dict[str, list[str]] = {}

    def example(kind: str, value: str) -> None:
        bucket = examples.setdefault(kind, [])
        if len(bucket) < _EXAMPLES:
            bucket.append(value)

    cleaned: dict[str, dict[str, float]] = {}
    for qid, ranking in run.items():
        scores: dict[str, float] = {}
        unknown_here = 0
        for did, score in ranking.items():
            score = float(score)
            if not math.isfinite(score):
                raise ValueError(f"run score for query {qid!r}, document {did!r} is {score}: scores must be finite")
            if ignore_identical_ids and did == qid:
                report.identical_ids_removed += 1
                continue
            if corpus_ids is not None and did not in corpus_ids:
                unknown_here += 1
                example("unknown_doc_ids", did)
            scores[did] = score
        report.unknown_doc_ids += unknown_here
        report.queries_with_unknown_docs += unknown_here > 0
        if qid not in qrels:
            report.unjudged_queries += 1
            example("unjudged_queries", qid)
            continue
        if not scores:
            report.empty_rankings += 1
            example("empty_rankings", qid)
            continue
        cleaned[qid] = scores
    for qid in qrels:
        if qid not in run:
            report.missing_queries += 1
            example("missing_queries", qid)
    report.scored_queries = len(cleaned)
    report.examples = examples

    names = metric_names(ndcg_k, recall_k, mrr_k)
    qrels_plain = {q: {d: int(r) for d, r in judged.items()} for q, judged in qrels.items()}
    per_query = {qid: dict.fromkeys(names, 0.0) for qid in qrels}
    if cleaned:
        main = pytrec_eval.RelevanceEvaluator(
            qrels_plain, {f"ndcg_cut.{ndcg_k}", f"recall.{recall_k}", "P.1", "map"},
            relevance_level=relevance_level).evaluate(cleaned)
        cut = {qid: dict(trec_order(scores)[:mrr_k]) for qid, scores in cleaned.items()}
        mrr = pytrec_eval.RelevanceEvaluator(qrels_plain, {"recip_rank"},
                                             relevance_level=relevance_level).evaluate(cut)
        for qid, values in main.items():
            per_query[qid].update({names[0]: values[f"ndcg_cut_{ndcg_k}"], names[1]: values[f"recall_{recall_k}"],
                                   names[2]: values["P_1"], names[3]: mrr[qid]["recip_rank"],
                                   names[4]: values["map"]})
    metrics = {name: sum(v[name] for v in per_query.values()) / len(per_query) for name in names}
    for message in report.messages():
        logger.warning("evaluate: %s", message)
    return EvalResult(metrics=metrics, per_query=per_query, report=report)
