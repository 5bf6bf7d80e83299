"""experiments/subset_collection.py: a subset keeps its queries' judged documents and is a loadable BEIR directory."""


import pytest

from zerogr_jax.data import beir

from experiments import subset_collection


def make(tmp_path):
    docs = [beir.Document(f"d{i}", f"title {i}", f"text {i}") for i in range(20)]
    queries = [beir.Query(f"q{i}", f"query {i}") for i in range(5)]
    qrels = {"q0": {"d3": 1, "d7": 2}, "q1": {"d7": 1, "d12": 0}, "q3": {"d19": 1}}  # q2, q4 unjudged
    return beir.load_beir(beir.write_beir(tmp_path / "full", docs, queries, qrels))


def test_subset_keeps_judged_documents_and_fills_with_others(tmp_path):
    data = make(tmp_path)
    corpus, queries, qrels, judged = subset_collection.cut(data, num_queries=2, num_docs=6, seed=1)
    assert [q.query_id for q in queries] == ["q0", "q1"]  # the first judged queries, file order
    assert qrels == {"q0": {"d3": 1, "d7": 2}, "q1": {"d7": 1, "d12": 0}}
    ids = [d.doc_id for d in corpus]
    assert judged == 3 and len(ids) == 6 and {"d3", "d7", "d12"} <= set(ids)
    assert ids == sorted(ids, key=lambda d: int(d[1:]))  # the source's order
    again, *_ = subset_collection.cut(data, num_queries=2, num_docs=6, seed=1)
    assert [d.doc_id for d in again] == ids  # seeded
    sub = beir.load_beir(beir.write_beir(tmp_path / "sub", corpus, queries, qrels))
    assert set(sub.corpus) == set(ids) and sub.qrels == qrels


def test_subset_too_small_for_the_judged_documents_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="judge 4 documents"):
        subset_collection.cut(make(tmp_path), num_queries=3, num_docs=3)
