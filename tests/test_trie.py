"""Trie build: every docid and document kept, node counts, CSR/bitmask children, persistence, bad input."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from zerogr_jax.retrieval import decoding
from experiments.reference_trie import dict_trie
from zerogr_jax.retrieval.trie import TrieHost, build_trie, expand_to_documents

V, EOS = 20, 1
PAD_SHAPES = dict(num_nodes=128, max_depth=7, bitmask_rows=64, search_steps=5)  # one compile for all examples

docid_lists = st.lists(st.lists(st.integers(2, V - 1), max_size=5).map(lambda s: s + [EOS]), min_size=1,
                       max_size=14)
# duplicates on purpose: several documents sharing one docid
with_duplicates = docid_lists.flatmap(
    lambda seqs: st.lists(st.sampled_from(seqs), max_size=6).map(lambda extra: seqs + extra))


@jax.jit
def _device_children(trie, nodes):
    return decoding.children_mask(trie, nodes)


@jax.jit
def _device_child(trie, nodes, tokens):
    return decoding.child_by_token(trie, nodes, tokens)


def _node_prefixes(host: TrieHost) -> dict[int, tuple[int, ...]]:
    out = {0: ()}
    for n in range(1, host.num_nodes):
        out[n] = out[int(host.parent[n])] + (int(host.node_token[n]),)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seqs=with_duplicates, width=st.sampled_from([1, 3]))
def test_trie_matches_dict_trie(seqs, width):
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=width)
    unique = {tuple(s) for s in seqs}
    # docids: exactly the distinct sequences, in lexicographic order
    assert [tuple(host.docid_tokens(u)) for u in range(host.num_docids)] == sorted(unique)
    # documents: none lost, none duplicated, each under its own sequence
    assert sorted(host.doc_ids.tolist()) == list(range(len(seqs)))
    for u in range(host.num_docids):
        docs = host.documents(u)
        assert len(docs) >= 1 and list(docs) == sorted(docs)
        assert all(tuple(seqs[d]) == tuple(host.docid_tokens(u)) for d in docs)
    # nodes = distinct prefixes; counts = docids below; children sorted and contiguous
    prefixes = _node_prefixes(host)
    expected_prefixes = {s[:i] for s in unique for i in range(len(s) + 1)}
    assert set(prefixes.values()) == expected_prefixes and len(prefixes) == len(expected_prefixes)
    ref = dict_trie(seqs)
    for n, prefix in prefixes.items():
        assert host.count[n] == sum(s[:len(prefix)] == prefix for s in unique)
        node = ref
        for t in prefix:
            node = node[t]
        children = host.node_token[host.child_start[n]:host.child_start[n + 1]]
        assert children.tolist() == sorted(node)
        assert (host.node_docid[n] >= 0) == (len(prefix) > 0 and prefix[-1] == EOS)
        assert (host.bitmask_row[n] >= 0) == (len(children) > width)
    # device: children mask (gather or bitmask path) and child lookup for every node
    trie = host.to_device(**PAD_SHAPES)
    nodes = jnp.arange(host.num_nodes)
    mask = np.asarray(_device_children(trie, nodes))
    for n in range(host.num_nodes):
        lo, hi = host.child_start[n], host.child_start[n + 1]
        assert np.flatnonzero(mask[n]).tolist() == host.node_token[lo:hi].tolist()
    parents = np.asarray(host.parent[1:])
    found = np.asarray(_device_child(trie, jnp.asarray(parents), jnp.asarray(host.node_token[1:])))
    np.testing.assert_array_equal(found, np.arange(1, host.num_nodes))


def test_shared_docids_expand_to_all_documents_consecutively():
    seqs = [[5, 3, EOS], [7, EOS], [5, 3, EOS], [9, EOS], [5, 3, EOS]]
    host = build_trie(seqs, eos_id=EOS, vocab_size=V)
    shared = next(u for u in range(host.num_docids) if host.docid_tokens(u) == [5, 3, EOS])
    seven = next(u for u in range(host.num_docids) if host.docid_tokens(u) == [7, EOS])
    ranked = expand_to_documents(host, np.array([[seven, shared, -1]]), np.array([[-0.5, -1.0, -np.inf]]))
    assert ranked == [[(1, 0, -0.5), (0, 1, -1.0), (2, 1, -1.0), (4, 1, -1.0)]]


def test_matrix_input_equals_list_input():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(2, V, rng.integers(0, 6))) + [EOS] for _ in range(200)]
    lengths = np.array([len(s) for s in seqs])
    matrix = np.full((len(seqs), lengths.max()), 99, np.int64)  # garbage beyond each length is ignored
    for i, s in enumerate(seqs):
        matrix[i, :len(s)] = s
    a = build_trie(seqs, eos_id=EOS, vocab_size=V, width=4)
    b = build_trie((matrix, lengths), eos_id=EOS, vocab_size=V, width=4)
    for name in ("node_token", "child_start", "count", "node_docid", "bitmask", "doc_ids", "doc_indptr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    seqs = [list(rng.integers(2, V, rng.integers(0, 6))) + [EOS] for _ in range(300)]
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=2)
    path = tmp_path / "trie.npz"
    host.save(path)
    loaded = TrieHost.load(path)
    for name, value in vars(host).items():
        np.testing.assert_array_equal(np.asarray(getattr(loaded, name)), np.asarray(value), err_msg=name)
    assert [p.name for p in tmp_path.iterdir()] == ["trie.npz"]  # no temporary left behind
    assert path.stat().st_mode & 0o777 == 0o644  # not the temporary file's private 0600
    time.sleep(2.1)  # zip timestamps have 2 s resolution: a later save must still be the same bytes
    host.save(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()
    (tmp_path / "again.npz").unlink()
    np.savez(tmp_path / "bad.npz", node_token=np.zeros(3))
    with pytest.raises(ValueError, match="format version"):
        TrieHost.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("seqs, message", [
    ([[3, EOS], [4, 5]], "docid 1 .* does not end with EOS"),
    ([[3, EOS, 4, EOS]], "docid 0 .* contains EOS"),
    ([[3, EOS], [V + 3, EOS]], "docid 1 .* outside"),
    ([[3, EOS], []], "docid 1 .* empty"),
])
def test_bad_docids_are_rejected_with_their_index(seqs, message):
    with pytest.raises(ValueError, match=message):
        build_trie(seqs, eos_id=EOS, vocab_size=V)


def test_to_device_padding_is_checked():
    host = build_trie([[3, EOS], [4, EOS]], eos_id=EOS, vocab_size=V)
    with pytest.raises(ValueError, match="sizes must be"):
        host.to_device(num_nodes=2)


def test_zipf_trie_builds_with_bounded_fanout_tables():
    """A 20K-docid synthetic corpus: the heavy-tailed fan-out lands in few bitmask rows."""
    rng = np.random.default_rng(0)
    vocab = 4096
    lengths = rng.integers(4, 10, 20_000)
    p = 1.0 / np.arange(1, vocab - 1) ** 1.1
    matrix = 2 + rng.choice(vocab - 2, size=(20_000, 10), p=p / p.sum())
    matrix[np.arange(20_000), lengths - 1] = EOS
    host = build_trie((matrix, lengths), eos_id=EOS, vocab_size=vocab, width=16)
    assert host.num_documents == 20_000 and host.count[0] == host.num_docids
    assert host.fanout[0] > 16 and host.bitmask_row[0] == 0
    assert host.bitmask.shape[0] < 0.05 * host.num_nodes
    assert host.count[host.docid_leaf].tolist() == [1] * host.num_docids
