"""Metrics interface: hand-computed values, trec_eval conventions, an independent implementation on random runs,
and TREC run files."""

import math
import random

import pytest

from zerogr_jax.evaluation.metrics import evaluate, trec_order
from zerogr_jax.evaluation.runfile import RunFormatError, read_run, write_run


def log2(x):
    return math.log2(x)


def test_graded_ndcg_by_hand():
    qrels = {"q": {"d1": 3, "d2": 2, "d3": 1, "d4": 0}}
    run = {"q": {"d3": 0.9, "d1": 0.8, "x": 0.7, "d2": 0.6, "d4": 0.5}}
    # trec_eval: gain = grade, discount log2(rank + 1); ideal = grades sorted descending.
    dcg = 1 / log2(2) + 3 / log2(3) + 0 + 2 / log2(5)
    idcg = 3 / log2(2) + 2 / log2(3) + 1 / log2(4)
    m = evaluate(qrels, run).metrics
    assert m["nDCG@10"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert m["Acc@1"] == 1.0  # d3 has grade 1 >= relevance_level 1
    assert m["MRR@10"] == 1.0
    assert m["Recall@100"] == 1.0
    assert m["MAP"] == pytest.approx((1 / 1 + 2 / 2 + 3 / 4) / 3)
    strict = evaluate(qrels, run, relevance_level=2).metrics
    assert strict["Acc@1"] == 0.0 and strict["MRR@10"] == pytest.approx(1 / 2)
    assert strict["nDCG@10"] == pytest.approx(dcg / idcg)  # the gains do not depend on the threshold


def test_ndcg_cut_ignores_documents_below_k():
    qrels = {"q": {"rel": 1}}
    run = {"q": {f"n{i:02d}": 100.0 - i for i in range(10)} | {"rel": 1.0}}  # rel at rank 11
    m = evaluate(qrels, run).metrics
    assert m["nDCG@10"] == 0.0 and m["Recall@100"] == 1.0 and m["MAP"] == pytest.approx(1 / 11)


@pytest.mark.parametrize("rank, mrr10", [(1, 1.0), (3, 1 / 3), (10, 1 / 10), (11, 0.0), (50, 0.0)])
def test_mrr_is_cut_at_10(rank, mrr10):
    run = {"q": {f"n{i:03d}": 1000.0 - i for i in range(1, 100) if i != rank} | {"rel": 1000.0 - rank}}
    m = evaluate({"q": {"rel": 1}}, run).metrics
    assert m["MRR@10"] == pytest.approx(mrr10)
    assert m["MAP"] == pytest.approx(1 / rank)  # full-depth recip rank = AP with one relevant doc


def test_ties_are_broken_by_doc_id_descending():
    qrels = {"q": {"a": 1}}
    assert evaluate(qrels, {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}).metrics["MRR@10"] == pytest.approx(1 / 3)
    assert evaluate({"q": {"c": 1}}, {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}).metrics["Acc@1"] == 1.0
    # The MRR cut keeps the same 10 documents trec_eval would rank first.
    run = {"q": {f"d{i:02d}": 1.0 for i in range(20)}}
    assert evaluate({"q": {"d10": 1}}, run).metrics["MRR@10"] == pytest.approx(1 / 10)
    assert evaluate({"q": {"d09": 1}}, run).metrics["MRR@10"] == 0.0
    assert [d for d, _ in trec_order({"a": 1.0, "b": 2.0, "c": 1.0})] == ["b", "c", "a"]


def test_missing_empty_and_unjudged_queries(caplog):
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}}
    run = {"q1": {"d1": 1.0}, "q2": {}, "q9": {"d1": 1.0}, "q4": {"d4": 2.0, "ghost": 1.0}}
    r = evaluate(qrels, run, corpus_ids={"d1", "d2", "d3", "d4"})
    assert r.metrics["Acc@1"] == pytest.approx(2 / 4)  # q2 (empty) and q3 (missing) count as 0
    assert r.per_query["q2"]["nDCG@10"] == r.per_query["q3"]["MAP"] == 0.0
    assert set(r.per_query) == set(qrels)
    rep = r.report
    assert (rep.num_queries, rep.scored_queries, rep.missing_queries, rep.empty_rankings, rep.unjudged_queries) \
        == (4, 2, 1, 1, 1)
    assert (rep.unknown_doc_ids, rep.queries_with_unknown_docs) == (1, 1)
    assert rep.examples == {"empty_rankings": ["q2"], "unjudged_queries": ["q9"], "unknown_doc_ids": ["ghost"],
                            "missing_queries": ["q3"]}
    assert "no run entry" in caplog.text and "outside the corpus" in caplog.text


def test_all_empty_run_scores_zero():
    r = evaluate({"q": {"d": 1}}, {})
    assert set(r.metrics.values()) == {0.0} and r.report.missing_queries == 1


def test_ignore_identical_ids():
    qrels = {"arg1": {"counter1": 1}}
    run = {"arg1": {"arg1": 0.99, "counter1": 0.5, "other": 0.1}}
    assert evaluate(qrels, run).metrics["Acc@1"] == 0.0
    r = evaluate(qrels, run, ignore_identical_ids=True)
    assert r.metrics["Acc@1"] == 1.0 and r.report.identical_ids_removed == 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="must be finite"):
        evaluate({"q": {"d": 1}}, {"q": {"d": float("nan")}})
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate({}, {"q": {"d": 1.0}})


def _reference(qrels, ranking, k_ndcg=10, k_rec=100, k_mrr=10):
    """Straightforward textbook implementations (trec_eval's definitions) to check the pytrec_eval wiring."""
    order = [d for d, _ in sorted(ranking.items(), key=lambda x: (x[1], x[0]), reverse=True)]
    rel = {d for d, g in qrels.items() if g >= 1}
    dcg = sum(qrels.get(d, 0) / log2(i + 2) for i, d in enumerate(order[:k_ndcg]) if qrels.get(d, 0) > 0)
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k_ndcg]
    idcg = sum(g / log2(i + 2) for i, g in enumerate(ideal))
    hits, ap = 0, 0.0
    for i, d in enumerate(order):
        if d in rel:
            hits += 1
            ap += hits / (i + 1)
    first = next((i + 1 for i, d in enumerate(order[:k_mrr]) if d in rel), None)
    return {"nDCG@10": dcg / idcg if idcg else 0.0,
            "Recall@100": len(rel & set(order[:k_rec])) / len(rel) if rel else 0.0,
            "Acc@1": float(bool(order) and order[0] in rel), "MRR@10": 1 / first if first else 0.0,
            "MAP": ap / len(rel) if rel else 0.0}


def test_random_runs_match_a_reference_implementation():
    rng = random.Random(0)
    docs = [f"d{i}" for i in range(300)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 15))}
        # coarse scores so that ties happen; trec order breaks them by doc id
        run[qid] = {d: float(rng.randint(0, 40)) for d in rng.sample(docs, rng.randint(5, 200))}
    r = evaluate(qrels, run)
    for qid in qrels:
        want = _reference(qrels[qid], run[qid])
        for name, value in want.items():
            assert r.per_query[qid][name] == pytest.approx(value, abs=1e-9), (qid, name)
    for name in r.metrics:
        assert r.metrics[name] == pytest.approx(sum(v[name] for v in r.per_query.values()) / 40)


# ----------------------------------------------------------------------------------------------------------- run files

def test_runfile_round_trip(tmp_path):
    run = {"q1": {"a": 0.1, "b": 1 / 3, "c": 1 / 3}, "q 2".replace(" ", "_"): {"z": -2.5e-8}}
    path = tmp_path / "run.trec"
    assert write_run(path, run, tag="bm25") == 4
    assert read_run(path) == run
    lines = path.read_text().splitlines()
    assert lines[0] == f"q1 Q0 c 1 {1 / 3!r} bm25" and lines[1].startswith("q1 Q0 b 2 ")  # trec order and ranks
    gz = tmp_path / "run.trec.gz"
    write_run(gz, run, depth=1)
    assert read_run(gz) == {"q1": {"c": 1 / 3}, "q_2": {"z": -2.5e-8}}


@pytest.mark.parametrize("line, why", [
    ("q1 Q0 d1 1 0.5", "expected 6 fields"),
    ("q1 Q0 d1 one 0.5 t", "rank must be an integer"),
    ("q1 Q0 d1 1 high t", "score must be a number"),
    ("q1 Q0 d1 1 nan t", "score must be finite"),
    ("q1 Q0 d0 1 0.5 t", "document 'd0' appears twice for query 'q1'"),
])
def test_bad_runfile_line_names_file_and_line(tmp_path, line, why):
    path = tmp_path / "bad.run"
    path.write_text(f"q1 Q0 d0 1 0.9 t\n\n{line}\n")
    with pytest.raises(RunFormatError, match=rf"bad\.run:3: {why}"):
        read_run(path)


def test_write_run_rejects_bad_ids(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_run(tmp_path / "r", {"q 1": {"d": 1.0}})
    assert not (tmp_path / "r").exists()


def test_paired_test_says_nothing_for_equal_runs_and_finds_a_consistent_gain():
    import numpy as np

    from zerogr_jax.evaluation.significance import paired_test

    rng = np.random.default_rng(0)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 40))}
    same = paired_test(a, dict(a))
    assert same["diff"] == 0 and same["p_randomization"] == 1.0 and same["p_ttest"] == 1.0
    better = paired_test(a, {q: v + 0.05 + 0.01 * rng.standard_normal() for q, v in a.items()}, resamples=2000)
    assert better["diff"] > 0.03 and better["b_better"] >= 38
    assert better["p_randomization"] < 0.01 and better["p_ttest"] < 0.001
    noise = paired_test(a, {q: v + 0.3 * rng.standard_normal() for q, v in a.items()}, resamples=2000)
    assert noise["p_randomization"] > better["p_randomization"]
    with pytest.raises(ValueError, match="different queries"):
        paired_test(a, {"q0": 1.0})


def test_paired_randomization_p_equals_the_exact_sign_flip_enumeration():
    """With 2^n <= resamples, the randomization p-value is the exact one: the share of all 2^n sign flips of the
    per-query differences whose mean is at least as far from 0 as the observed mean."""
    import itertools

    import numpy as np

    from zerogr_jax.evaluation.significance import paired_test

    rng = np.random.default_rng(3)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 10))}
    b = {q: v + 0.1 + 0.2 * rng.standard_normal() for q, v in a.items()}
    d = np.array([b[q] - a[q] for q in sorted(a)])
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    exact = float(np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean()) - 1e-12))
    assert 0.001 < exact < 0.5  # a case where the p-value is neither trivial nor saturated
    assert paired_test(a, b, resamples=5000)["p_randomization"] == pytest.approx(exact, abs=1e-9)
