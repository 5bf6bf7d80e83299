"""Docids packed as prefix trees (`retrieval/tree_rows.py`): every path is whole in one row, each node of a row is
fed once, slots see exactly their ancestors; scores from tree rows equal brute force and the one-row-per-docid
layout, the head's too, and exact search returns the same docids in both layouts while feeding fewer slots."""

import jax
import numpy as np
import pytest

from forward_reference import plain_forward
from test_docid_scoring import CFG, EOS, V, brute_force, corpus
from zerogr_jax.models import llama
from zerogr_jax.retrieval import decoding, docid_scoring, tree_rows
from zerogr_jax.retrieval.docid_scoring import (docid_paths, encode_prompt, next_logprobs, path_tokens, score_tree,
                                                top_docids, tree_next_logprobs)
from zerogr_jax.retrieval.trie import build_trie


def _host(n=60, seed=5):
    return build_trie(corpus(n=n, seed=seed), eos_id=EOS, vocab_size=V, width=3)


@pytest.mark.parametrize("feed_leaves", [False, True])
@pytest.mark.parametrize("width", [6, 9, 64])
def test_pack_keeps_each_path_whole_and_each_node_once_per_row(width, feed_leaves):
    host = _host()
    nodes = docid_paths(host)[0]
    rng = np.random.default_rng(0)
    sel = rng.permutation(host.num_docids)[:40]
    rows = tree_rows.pack(host, nodes[sel], width, feed_leaves=feed_leaves)
    assert rows.tokens.shape[1] == width
    for r in range(len(rows.tokens)):
        filled = rows.tokens[r] >= 0
        members = rows.node[r][filled]
        assert len(set(members.tolist())) == len(members)  # a node once per row
        assert filled.tolist() == sorted(filled.tolist(), reverse=True)  # slots fill from the left
        for s in np.flatnonzero(filled):
            # the slot sees exactly its ancestors in the row and itself; its depth is its node's depth
            up, chain = s, set()
            while up >= 0:
                chain.add(int(up))
                parent = host.parent[rows.node[r, up]]
                up = rows.parent_slot[r, up]
                assert (up < 0 and parent == 0) or rows.node[r, up] == parent
            assert set(np.flatnonzero(rows.visible[r, s]).tolist()) == chain
            assert rows.depth[r, s] == len(chain) - 1
    for i, u in enumerate(sel):
        path = nodes[u][nodes[u] >= 0]
        fed = rows.slots[i][rows.slots[i] >= 0]
        assert rows.node[rows.row[i], fed].tolist() == path[:len(fed)].tolist()
        leaf_fed = len(fed) == len(path)
        assert leaf_fed == feed_leaves
        assert (rows.read[i] < 0) == leaf_fed
        if not leaf_fed:  # the last token is read at its parent's slot (-1: after the prompt)
            r, m = rows.row[i], rows.read[i]
            assert rows.read_slot[r, m] == (fed[-1] if len(fed) else -1)
            assert rows.read_token[r, m] == host.node_token[path[-1]] == EOS
    with pytest.raises(ValueError, match="cannot hold"):
        tree_rows.pack(host, nodes, 2)


def test_tree_rows_feed_fewer_slots_than_rows_for_docids_that_share_prefixes():
    host = _host(n=200, seed=1)
    nodes = docid_paths(host)[0]
    lengths = (nodes >= 0).sum(1)
    internal = len({int(x) for u in range(len(nodes)) for x in nodes[u, :lengths[u] - 1]})
    one_row = tree_rows.pack(host, nodes, int(lengths.sum()))  # every internal node fed exactly once
    assert len(one_row.tokens) == 1 and one_row.num_slots == internal
    rows = tree_rows.pack(host, nodes, 64)  # a prefix split over two rows is fed in both
    assert one_row.num_slots <= rows.num_slots < (lengths - 1).sum()


@pytest.mark.parametrize("width,rows", [(6, 3), (64, 8)])
def test_tree_scores_equal_brute_force_and_the_row_layout_head_included(width, rows):
    params = llama.init_params(CFG, jax.random.key(0))
    params["embedding"] = params["embedding"] * 20.0
    host = build_trie(corpus(), eos_id=EOS, vocab_size=V, width=3)  # the root's children as a bitmask row
    model, dev = decoding.LlamaStepModel(CFG), host.to_device()
    prompt, token = [5, 9, 2, 17], 7
    encoded = encode_prompt(model, params, prompt)
    nodes = docid_paths(host)[0]
    want = brute_force(params, prompt, host)
    got = score_tree(model, params, encoded, host, dev, nodes, width=width, rows=rows)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    both = score_tree(model, params, encoded, host, dev, nodes, width=width, rows=rows, head_token=token)
    np.testing.assert_allclose(both[:, 0], want, rtol=1e-4, atol=1e-4)
    head_rows = docid_scoring.head_scores(model, params, prompt, host, np.arange(host.num_docids), token,
                                          layout="rows")
    np.testing.assert_allclose(both[:, 1], head_rows, rtol=1e-4, atol=1e-4)
    sub = np.asarray([3, 0, 3, 7])  # any order, repeats
    np.testing.assert_allclose(score_tree(model, params, encoded, host, dev, nodes[sub], width=width, rows=rows),
                               want[sub], rtol=1e-4, atol=1e-4)
    assert score_tree(model, params, encoded, host, dev, nodes[:0]).shape == (0,)


def test_exact_search_returns_the_same_docids_in_both_layouts():
    params = llama.init_params(CFG, jax.random.key(4))
    params["embedding"] = params["embedding"] * 20.0
    host = _host()
    dev, model = host.to_device(), decoding.LlamaStepModel(CFG)
    prior = docid_scoring.score_all_docids(model, params, [4], host, dev)
    np.testing.assert_allclose(prior, docid_scoring.score_all_docids(model, params, [4], host, dev, layout="rows"),
                               rtol=1e-5, atol=1e-5)
    for prompt in ([5, 9, 2, 17], [8, 8, 3]):
        for k in (3, 10, host.num_docids):
            tree = top_docids(model, params, prompt, host, dev, k, prior=prior, prior_weight=0.5, chunk=4,
                              head_token=0)
            rows = top_docids(model, params, prompt, host, dev, k, prior=prior, prior_weight=0.5, chunk=4,
                              head_token=0, layout="rows")
            assert tree.ids.tolist() == rows.ids.tolist() and tree.scored == rows.scored
            np.testing.assert_allclose(tree.logprobs, rows.logprobs, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(tree.head, rows.head, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="layout"):
        top_docids(model, params, [5], host, dev, 3, layout="packed")


def test_tree_next_logprobs_equal_one_row_per_prefix():
    """The bound rows of exact search as prefix trees give each prefix's next-token distribution, constrained to
    its node's children, as one row per prefix does."""
    params = llama.init_params(CFG, jax.random.key(1))
    params["embedding"] = params["embedding"] * 20.0
    host = _host()
    model, dev = decoding.LlamaStepModel(CFG), host.to_device()
    encoded = encode_prompt(model, params, [5, 9, 2, 17])
    paths = docid_paths(host)
    lengths = (paths[0] >= 0).sum(1)
    for m in (1, 2, 3):
        docids = np.flatnonzero(lengths > m)
        _, first = np.unique(paths[0][docids, m - 1], return_index=True)
        prefixes = paths[0][docids[first], :m]
        want = next_logprobs(model, params, encoded, dev, path_tokens(host, paths, docids[first])[0][:, :m],
                             prefixes[:, -1], chunk=8)
        for width in (m, 16):
            got = tree_next_logprobs(model, params, encoded, host, dev, prefixes, width=width, rows=2)
            np.testing.assert_allclose(np.where(np.isfinite(want), got, 0), np.where(np.isfinite(want), want, 0),
                                       rtol=1e-4, atol=1e-4)
            assert (np.isfinite(got) == np.isfinite(want)).all()


def test_a_docids_first_informative_tokens_carry_its_whole_score_for_fewer_slots():
    """Past a docid's last token drawn at a node with two or more children every node has one child (masked
    log-softmax exactly 0): its informative prefix scores as the whole docid (brute force), fed in fewer slots, also
    when a row's reads run out first."""
    params = llama.init_params(CFG, jax.random.key(2))
    params["embedding"] = params["embedding"] * 20.0
    host = _host(n=80, seed=7)
    paths = docid_paths(host)
    nodes = paths[0]
    lengths, cut = (nodes >= 0).sum(1), docid_scoring.informative_lengths(host, paths)
    assert (cut <= lengths).all() and (cut < lengths).mean() > 0.5  # the test corpus has forced tails
    for u in range(host.num_docids):
        tail = nodes[u, cut[u]:lengths[u]]
        assert (host.fanout[host.parent[tail]] == 1).all()  # every token after the cut is forced
        before = nodes[u, cut[u] - 1]
        assert host.fanout[host.parent[before]] > 1 or cut[u] == 1  # and the last one kept was not
    short = docid_scoring.informative_nodes(host, paths)
    assert ((short >= 0).sum(1) == cut).all() and (np.where(short >= 0, short, nodes) == nodes).all()
    model, dev = decoding.LlamaStepModel(CFG), host.to_device()
    prompt = [5, 9, 2, 17]
    want = brute_force(params, prompt, host)
    encoded = encode_prompt(model, params, prompt)
    for reads in (None, 2):
        packed = tree_rows.pack(host, short, 64, reads=reads)
        assert packed.num_slots < tree_rows.pack(host, nodes, 64).num_slots / 2
        assert (packed.read_token >= 0).sum(1).max() <= (reads or 256)
    np.testing.assert_allclose(score_tree(model, params, encoded, host, dev, short), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(docid_scoring.score_all_docids(model, params, prompt, host, dev), want, rtol=1e-4,
                               atol=1e-4)


def test_unconstrained_scores_of_whole_docids_equal_a_plain_forward_pass():
    """score_tree(free=True): each docid's log-likelihood over the whole vocabulary (no trie mask), beside the
    constrained score and the head, equals the sum of log_softmax over a plain forward pass of prompt + docid."""
    params = llama.init_params(CFG, jax.random.key(3))
    params["embedding"] = params["embedding"] * 20.0
    host = _host(n=30, seed=2)
    model, dev = decoding.LlamaStepModel(CFG), host.to_device()
    prompt = [5, 9, 2, 17]
    docids = [host.docid_tokens(u) for u in range(host.num_docids)]
    want = []
    for tokens, logits in zip(docids, plain_forward(params, CFG, [prompt + t for t in docids])):
        logp = np.asarray(jax.nn.log_softmax(logits))
        want.append(sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(tokens)))
    encoded = encode_prompt(model, params, prompt)
    nodes = docid_paths(host)[0]
    got = score_tree(model, params, encoded, host, dev, nodes, free=True, width=9, rows=2)
    np.testing.assert_allclose(got[:, 0], brute_force(params, prompt, host), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[:, 1], want, rtol=1e-4, atol=1e-4)
    assert (got[:, 1] < got[:, 0]).all()  # a mask only raises a token's share
    both = score_tree(model, params, encoded, host, dev, nodes, head_token=7, free=True)
    np.testing.assert_allclose(both[:, [0, 2]], got, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(both[:, 1], score_tree(model, params, encoded, host, dev, nodes, head_token=7)[:, 1],
                               rtol=1e-5, atol=1e-5)
