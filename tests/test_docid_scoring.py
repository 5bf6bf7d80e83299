"""Teacher-forced docid scoring equals brute-force constrained log-probabilities (whole sequence, no cache) and the
exact beam's scores; the prior rescoring re-ranks a candidate pool by log p(d | q) - w log p(d | no query), and the
rerank head's scores equal a plain forward pass's reserved-token logit after each docid."""

import dataclasses

import jax
import numpy as np
import pytest

from forward_reference import plain_forward
from zerogr_jax.config import ConfigError
from zerogr_jax.retrieval import decoding
from zerogr_jax.retrieval.docid_scoring import docid_paths, score_all_docids
from zerogr_jax.models import llama
from zerogr_jax.retrieval.search import Candidates, SearchConfig, pool_order
from zerogr_jax.tokenization import left_pad
from zerogr_jax.retrieval.trie import build_trie

V, EOS = 24, 1
CFG = llama.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                        num_kv_heads=2, head_dim=8, tie_word_embeddings=True, max_position_embeddings=64)


def corpus(n=40, seed=3):
    rng = np.random.default_rng(seed)
    seqs = {tuple(rng.integers(2, V, rng.integers(1, 6)).tolist()) + (EOS,) for _ in range(n)}
    return [list(s) for s in sorted(seqs)]


def brute_force(params, prompt, host):
    """Per docid: the whole prompt + docid run without a cache, each token's log-softmax over the node's children."""
    children, child = {}, {}  # a node's child tokens; (node, token) -> child
    for c in range(1, host.num_nodes):
        node, token = int(host.parent[c]), int(host.node_token[c])
        children.setdefault(node, []).append(token)
        child[node, token] = c
    docids = [host.docid_tokens(u) for u in range(host.num_docids)]
    out = []
    for tokens, logits in zip(docids, plain_forward(params, CFG, [prompt + t for t in docids])):
        node, total = 0, 0.0
        for j, t in enumerate(tokens):
            row = logits[len(prompt) - 1 + j]
            allowed = children[node]
            total += row[t] - np.log(np.exp(row[allowed] - row[allowed].max()).sum()) - row[allowed].max()
            node = child[node, t]
        out.append(total)
    return np.asarray(out)


def test_docid_paths_walk_every_docid():
    host = build_trie(corpus(), eos_id=EOS, vocab_size=V, width=3)
    nodes, from_nodes = docid_paths(host)
    for u in range(host.num_docids):
        real = nodes[u][nodes[u] >= 0]
        assert host.node_token[real].tolist() == host.docid_tokens(u)
        assert real[-1] == host.docid_leaf[u] and from_nodes[u][0] == 0
        assert from_nodes[u][1:len(real)].tolist() == real[:-1].tolist()


def test_teacher_forced_scores_equal_brute_force_and_the_exact_beam():
    params = llama.init_params(CFG, jax.random.key(0))
    params["embedding"] = params["embedding"] * 20.0  # spread the logits
    host = build_trie(corpus(), eos_id=EOS, vocab_size=V, width=3)  # width 3: the root uses a bitmask row
    assert host.bitmask.shape[0] >= 1
    prompt = [5, 9, 2, 17]
    model = decoding.LlamaStepModel(CFG)
    got = score_all_docids(model, params, prompt, host, host.to_device(), chunk=16)  # 16: a padded last chunk
    np.testing.assert_allclose(got, brute_force(params, prompt, host), rtol=1e-4, atol=1e-4)

    tokens, mask = left_pad([prompt], 0, multiple_of=32)
    exact = jax.device_get(decoding.decode_docids(model, params, tokens, mask, host.to_device(), host.num_docids,
                                                  jax.random.key(0), decoding.BeamSearch(host.num_docids)))
    np.testing.assert_allclose(got[exact.docids[0]], exact.logprobs[0], rtol=1e-4, atol=1e-4)


def test_pool_order_sorts_by_the_corrected_score_then_reranks_the_top_by_the_head():
    docids = np.array([[3, 0, 2, -1], [1, 2, 0, 3]])
    logprobs = np.array([[-1.0, -2.0, -2.5, -np.inf], [-0.5, -0.6, -3.0, -4.0]])
    prior = np.array([-1.0, -3.0, -0.5, -9.0])
    c = Candidates(["a", "b"], docids, logprobs, prior)
    ordered = lambda cfg: np.take_along_axis(docids, pool_order(c, cfg), axis=1).tolist()  # noqa: E731
    # row 0: 3 -> 8.0, 0 -> -1.0, 2 -> -2.0; row 1: 1 -> 2.5, 2 -> -0.1, 0 -> -2.0, 3 -> 5.0
    assert ordered(SearchConfig(strategy="exact", prior_weight=1.0)) == [[3, 0, 2, -1], [3, 1, 2, 0]]
    assert ordered(SearchConfig()) == docids.tolist()
    # the head re-orders the corrected order's first 3 (row 0: its 3 real docids; row 1: 3, 1, 2), the rest stays
    head = np.array([[0.1, 0.9, 0.5, np.nan], [0.2, 0.7, np.nan, 0.3]], np.float32)
    c = Candidates(["a", "b"], docids, logprobs, prior, head)
    assert ordered(SearchConfig(strategy="exact", prior_weight=1.0, rerank_depth=3)) == [[0, 2, 3, -1], [2, 3, 1, 0]]
    with pytest.raises(ValueError, match="rerank"):
        pool_order(Candidates(["a"], docids[:1], logprobs[:1], prior), SearchConfig(rerank_depth=2))


def test_rerank_mix_orders_the_top_by_the_zscore_sum_or_rrf_of_head_and_generative_score(tmp_path):
    """search.rerank_mix: "zsum" re-orders the pool's best N by z(head) + z(corrected generative score) over the N,
    "rrf" by 1/(60 + generative rank) + 1/(60 + head rank); checked against a per-query brute force, with padding
    rows; and a pool saved to .npz loads back equal (what rerank_rows --save-candidates writes)."""
    rng = np.random.default_rng(0)
    q, n, depth = 5, 12, 8
    docids = np.stack([rng.permutation(20)[:n] for _ in range(q)]).astype(np.int32)
    docids[1, 6:] = -1  # a query with only 6 docids: fewer than the depth
    logprobs = np.where(docids >= 0, -rng.gamma(2.0, 2.0, (q, n)), -np.inf).astype(np.float32)
    prior = -rng.gamma(2.0, 2.0, 20).astype(np.float32)
    head = rng.normal(size=(q, n)).astype(np.float32)
    c = Candidates([f"q{i}" for i in range(q)], docids, logprobs, prior, head)
    c.save(tmp_path / "pool.npz")
    back = Candidates.load(tmp_path / "pool.npz")
    assert back.qids == c.qids
    for a, b in [(back.docids, docids), (back.logprobs, logprobs), (back.prior, prior), (back.rerank, head)]:
        np.testing.assert_array_equal(a, b)
    for mix in ["zsum", "rrf"]:
        cfg = SearchConfig(strategy="exact", prior_weight=0.5, rerank_depth=depth, rerank_mix=mix)
        got = np.take_along_axis(docids, pool_order(back, cfg), axis=1)
        for i in range(q):
            g = {int(d): float(lp - 0.5 * prior[d]) for d, lp in zip(docids[i], logprobs[i]) if d >= 0}
            h = {int(d): float(s) for d, s in zip(docids[i], head[i]) if d >= 0}
            by_g = sorted(g, key=lambda d: -g[d])
            top = by_g[:depth]
            if mix == "zsum":
                z = lambda v: (np.array(v) - np.mean(v)) / np.std(v)  # noqa: E731
                score = dict(zip(top, z([h[d] for d in top]) + z([g[d] for d in top])))
            else:
                by_h = sorted(top, key=lambda d: -h[d])
                score = {d: 1 / (60 + top.index(d) + 1) + 1 / (60 + by_h.index(d) + 1) for d in top}
            want = sorted(top, key=lambda d: -score[d]) + by_g[depth:]
            assert got[i, :len(want)].tolist() == want, (mix, i)
    # query blocks of one search join back into it (rerank_rows' resumable blocks); blocks of two searches do not
    blocks = [Candidates(c.qids[a:b], docids[a:b], logprobs[a:b], prior, head[a:b]) for a, b in [(0, 2), (2, 5)]]
    joined = Candidates.concat(blocks)
    assert joined.qids == c.qids
    for a, b in [(joined.docids, docids), (joined.logprobs, logprobs), (joined.prior, prior), (joined.rerank, head)]:
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="overlap"):
        Candidates.concat([blocks[0], blocks[0]])
    with pytest.raises(ValueError, match="priors differ"):
        Candidates.concat([blocks[0], dataclasses.replace(blocks[1], prior=prior + 1)])
    with pytest.raises(ValueError, match="head differ"):
        Candidates.concat([blocks[0], dataclasses.replace(blocks[1], rerank=None)])
    with pytest.raises(ConfigError, match="rerank_mix"):
        SearchConfig(rerank_mix="mean")
    with pytest.raises(ValueError, match="missing"):
        np.savez(tmp_path / "other.npz", x=np.zeros(2))
        Candidates.load(tmp_path / "other.npz")


def test_head_scores_equal_the_reserved_tokens_logit_after_each_docid():
    """docid_scoring.head_scores (prompt once, docids as rows after its cache, padded chunks) equals a plain forward
    pass over prompt + docid + EOS: the last hidden state dotted with the token's (tied) output row."""
    from zerogr_jax.retrieval.docid_scoring import head_scores

    params = llama.init_params(CFG, jax.random.key(4))
    host = build_trie(corpus(), eos_id=EOS, vocab_size=V, width=3)
    prompt, token = [5, 9, 2, 17, 8], 0
    hidden = plain_forward(params, CFG, [prompt + host.docid_tokens(u) for u in range(host.num_docids)],
                           return_hidden=True)
    want = [float(h[-1] @ np.asarray(params["embedding"])[token]) for h in hidden]
    subset = np.asarray([3, 0, 3, host.num_docids - 1, 7])
    got = head_scores(decoding.LlamaStepModel(CFG), params, prompt, host, subset, token, chunk=4)
    np.testing.assert_allclose(got, np.asarray(want)[subset], rtol=1e-4, atol=1e-4)


def test_scoring_a_subset_equals_scoring_all():
    from zerogr_jax.retrieval.docid_scoring import score_docids

    params = llama.init_params(CFG, jax.random.key(1))
    host = build_trie(corpus(), eos_id=EOS, vocab_size=V, width=3)
    model, prompt = decoding.LlamaStepModel(CFG), [7, 3, 11]
    every = score_all_docids(model, params, prompt, host, host.to_device(), chunk=8)
    subset = np.asarray([5, 0, 5, host.num_docids - 1, 2])  # any order, repeats
    got = score_docids(model, params, prompt, host, host.to_device(), subset, chunk=3)
    np.testing.assert_allclose(got, every[subset], rtol=1e-5, atol=1e-5)


def test_branch_and_bound_top_docids_equal_the_top_of_scoring_every_docid():
    """`top_docids` (prefix bounds, then docids in full in bound order) returns exactly the k best of scoring every
    docid — with and without the prior, at bound depths 1-3, k from 1 to every docid — and on a peaked model it
    scores fewer than all of them in full."""
    from zerogr_jax.retrieval.docid_scoring import top_docids

    params = llama.init_params(CFG, jax.random.key(4))
    params["embedding"] = params["embedding"] * 20.0  # peaked logits: the bounds prune
    host = build_trie(corpus(n=60, seed=5), eos_id=EOS, vocab_size=V, width=3)
    dev, model = host.to_device(), decoding.LlamaStepModel(CFG)
    prior = score_all_docids(model, params, [4], host, dev)
    scored_in_full = []
    for prompt in ([5, 9, 2, 17], [8, 8, 3]):
        every = score_all_docids(model, params, prompt, host, dev)
        for weight in (0.0, 0.5):
            corrected = every - weight * prior
            for k in (1, 3, 10, host.num_docids):
                want = np.lexsort((np.arange(host.num_docids), -corrected))[:k]
                for depth in (1, 2, 3):
                    ids, lps, n, _ = top_docids(model, params, prompt, host, dev, k, prior=prior,
                                                prior_weight=weight, bound_depth=depth, chunk=4)
                    assert ids.tolist() == want.tolist(), (prompt, weight, k, depth)
                    np.testing.assert_allclose(lps, every[want], rtol=1e-5, atol=1e-5)
                    if k == 3:
                        scored_in_full.append(n)
    assert min(scored_in_full) < host.num_docids


def test_top_docids_scores_the_head_in_the_same_pass_and_every_docid_without_bounds():
    """With head_token, `top_docids` gives each answer's rerank head score from its scoring pass: equal to the
    separate head pass (`head_scores`), with the same docids and log-probabilities as without it. With k at or
    above the docid count every docid is scored in full, in the order of scoring them all."""
    from zerogr_jax.retrieval.docid_scoring import head_scores, top_docids

    params = llama.init_params(CFG, jax.random.key(4))
    params["embedding"] = params["embedding"] * 20.0
    host = build_trie(corpus(n=60, seed=5), eos_id=EOS, vocab_size=V, width=3)
    dev, model = host.to_device(), decoding.LlamaStepModel(CFG)
    prior = score_all_docids(model, params, [4], host, dev)
    prompt, token = [5, 9, 2, 17], 0
    for k in (3, 10, host.num_docids, host.num_docids + 5):
        plain = top_docids(model, params, prompt, host, dev, k, prior=prior, prior_weight=0.5, chunk=4)
        got = top_docids(model, params, prompt, host, dev, k, prior=prior, prior_weight=0.5, chunk=4, head_token=token)
        assert plain.head is None and got.ids.tolist() == plain.ids.tolist()
        np.testing.assert_allclose(got.logprobs, plain.logprobs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.head, head_scores(model, params, prompt, host, got.ids, token),
                                   rtol=1e-4, atol=1e-4)
        if k >= host.num_docids:
            every = score_all_docids(model, params, prompt, host, dev) - 0.5 * prior
            assert got.scored == host.num_docids
            assert got.ids.tolist() == np.lexsort((np.arange(host.num_docids), -every)).tolist()


@pytest.mark.parametrize("layout", ["tree", "rows"])
def test_exact_search_compiles_a_fixed_program_set_whatever_the_prompts(layout):
    """Shapes are fixed by design (rows per call, prompt width, length buckets or tree rows of fixed width in
    power-of-two calls), so prompts of different lengths and row counts that differ from query to query reuse the
    programs compiled for the first query: after it (with every bound depth reached), further queries compile
    nothing. (Before, each new row count, prompt width and bucket compiled a program: ~40 % of the main job's search
    stage.)"""
    from zerogr_jax.retrieval import docid_scoring
    from zerogr_jax.retrieval.docid_scoring import TREE_ROWS, length_bucket, top_docids

    params = llama.init_params(CFG, jax.random.key(4))
    params["embedding"] = params["embedding"] * 20.0
    host = build_trie(corpus(n=60, seed=5), eos_id=EOS, vocab_size=V, width=3)
    dev, model = host.to_device(), decoding.LlamaStepModel(CFG)
    scoring = docid_scoring._score_tree_rows if layout == "tree" else docid_scoring._score_rows
    programs = (docid_scoring._prompt_pass, scoring, docid_scoring._next_logprobs, docid_scoring._tree_next_logprobs)
    start = [p._cache_size() for p in programs]  # the caches are per process: other tests may have filled them
    prior = score_all_docids(model, params, [4], host, dev, layout=layout)
    for k in (1, 5, host.num_docids):  # the first query, every bound depth reached
        top_docids(model, params, [5, 9, 2, 17], host, dev, k, prior=prior, prior_weight=0.5, chunk=4,
                   layout=layout)
    # the prior scored every docid: one program per length bucket (rows) or per power-of-two row count (tree)
    buckets = {length_bucket(len(host.docid_tokens(u))) for u in range(host.num_docids)}
    limit = len(buckets) if layout == "rows" else TREE_ROWS.bit_length()
    assert scoring._cache_size() - start[1] <= limit
    assert docid_scoring._tree_next_logprobs._cache_size() - start[3] <= (TREE_ROWS.bit_length() if layout == "tree"
                                                                         else 0)
    assert docid_scoring._prompt_pass._cache_size() - start[0] <= 1
    before = [p._cache_size() for p in programs]
    for prompt in ([8, 8, 3], [2] * 11, [7, 3, 5, 9, 11, 13, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 2, 3, 5, 7, 11]):
        for k in (1, 5, host.num_docids):
            top_docids(model, params, prompt, host, dev, k, prior=prior, prior_weight=0.5, chunk=4, layout=layout)
    assert [p._cache_size() for p in programs] == before
