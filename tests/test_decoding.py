"""Constrained decoding: the compiled loop equals the plain-Python reference (same PRNG stream), every docid valid
and distinct, removal exhausts exactly the trie, -1 padding, determinism, beam search exactness, bitmask nodes,
sharded batches, and a tiny random Llama."""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from decoding_stub import HashStubModel, stub_params  # noqa: E402

from zerogr_jax.retrieval import decoding  # noqa: E402
from zerogr_jax.retrieval.docid_scoring import docid_paths  # noqa: E402
import decoding_reference as ref  # noqa: E402
from zerogr_jax.tokenization import left_pad  # noqa: E402
from zerogr_jax.retrieval.trie import TrieHost, build_trie  # noqa: E402

V, EOS, W, K, P = 24, 1, 3, 12, 5
PAD_SHAPES = dict(num_nodes=256, max_depth=6, bitmask_rows=32, search_steps=5)  # one compile for every example
MODEL = HashStubModel()
TABLE = stub_params(V)

docid_lists = st.lists(st.lists(st.integers(2, V - 1), max_size=5).map(lambda s: s + [EOS]), min_size=1,
                       max_size=K)
with_duplicates = docid_lists.flatmap(
    lambda seqs: st.lists(st.sampled_from(seqs), max_size=4).map(lambda extra: seqs + extra))
prompt_lists = st.lists(st.lists(st.integers(2, V - 1), min_size=1, max_size=P), min_size=3, max_size=3)


def stub_logits(sequence):
    return HashStubModel.full_logits(TABLE, sequence)


def decode(host: TrieHost, prompts, seed=0, strategy=decoding.ReverseAnnealing(), k=K, **kw):
    tokens, mask = left_pad(prompts, 0, length=P)
    out = decoding.decode_docids(MODEL, TABLE, tokens, mask, host.to_device(**PAD_SHAPES), k,
                                 jax.random.key(seed), strategy, **kw)
    return jax.device_get(out)


def as_tuples(host: TrieHost, docids_row):
    return [tuple(host.docid_tokens(int(u))) for u in docids_row if u >= 0]


def remaining_counts(host: TrieHost, docids_row) -> np.ndarray:
    left = host.count.copy()
    for u in docids_row[docids_row >= 0]:
        n = int(host.docid_leaf[u])
        while n >= 0:
            left[n] -= 1
            n = int(host.parent[n])
    return left


def check_ranking(host: TrieHost, out, row: int, k=K):
    docids, logprobs, tokens = out.docids[row], out.logprobs[row], out.tokens[row]
    real = docids >= 0
    assert np.all(real[:real.sum()]), "padding only at the end"
    assert len(set(docids[real].tolist())) == real.sum(), "a docid repeats within a query"
    for u, toks in zip(docids[real], tokens[real]):
        assert toks[toks >= 0].tolist() == host.docid_tokens(int(u))
    assert np.all(np.isfinite(logprobs[real])) and np.all(logprobs[real] <= 1e-6)
    assert np.all(logprobs[~real] == -np.inf) and np.all(tokens[~real] == -1)
    if host.num_docids <= k:  # removal exhausts exactly the trie
        assert real.sum() == host.num_docids
        assert np.all(remaining_counts(host, docids) == 0)
    else:
        assert real.all()
        assert np.all(remaining_counts(host, docids) >= 0)


def test_reverse_annealing_schedule():
    t = decoding.reverse_annealing_temperatures(100)
    s = lambda x: 1 / (1 + np.exp(-x))
    assert t.shape == (100,) and t.dtype == np.float32 and t[0] == 0.0
    assert np.all(np.diff(t) > 0) and 1.49 < t[-1] < 1.5
    # i/K = m is the logistic's midpoint: t = T_max (1/2 - s(-1)) / (s(9) - s(-1))
    np.testing.assert_allclose(t[10], 1.5 * (0.5 - s(-1.0)) / (s(9.0) - s(-1.0)), rtol=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seqs=with_duplicates, prompts=prompt_lists, seed=st.integers(0, 2**31 - 1))
def test_compiled_reverse_annealing_equals_reference(seqs, prompts, seed):
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    out = decode(host, prompts, seed)
    want, want_lp = ref.reference_iterative_topk(stub_logits, prompts, seqs, K, jax.random.key(seed),
                                                 decoding.reverse_annealing_temperatures(K), V, EOS)
    for row in range(len(prompts)):
        check_ranking(host, out, row)
        assert as_tuples(host, out.docids[row]) == want[row]
        np.testing.assert_allclose(out.logprobs[row][:len(want_lp[row])], want_lp[row], rtol=1e-5, atol=1e-5)


def _wide_corpus(n=40, seed=0):
    """More docids than K, root fan-out > W (bitmask rows), some shared docids."""
    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(2, V, rng.integers(0, 5))) + [EOS] for _ in range(n)]
    return seqs + seqs[:3]


PROMPTS = [[3, 4, 5], [7], [9, 9, 2, 2, 8]]


@pytest.mark.parametrize("strategy, temps", [(decoding.Greedy(), 0.0), (decoding.FixedTemperature(0.7), 0.7)])
def test_greedy_and_fixed_temperature_equal_reference(strategy, temps):
    seqs = _wide_corpus()
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    assert host.num_docids > K and host.bitmask.shape[0] > 0
    out = decode(host, PROMPTS, 3, strategy)
    want, _ = ref.reference_iterative_topk(stub_logits, PROMPTS, seqs, K, jax.random.key(3), [temps] * K, V, EOS)
    for row in range(len(PROMPTS)):
        check_ranking(host, out, row)
        assert as_tuples(host, out.docids[row]) == want[row]


def test_nucleus_is_valid_and_tiny_top_p_is_greedy():
    host = build_trie(_wide_corpus(), eos_id=EOS, vocab_size=V, width=W)
    greedy = decode(host, PROMPTS, 0, decoding.Greedy())
    tiny = decode(host, PROMPTS, 5, decoding.Nucleus(top_p=1e-6, temperature=1.0))
    np.testing.assert_array_equal(tiny.docids, greedy.docids)
    wide = decode(host, PROMPTS, 5, decoding.Nucleus(top_p=0.9, temperature=1.0))
    for row in range(len(PROMPTS)):
        check_ranking(host, wide, row)
    # greedy's first docid is reverse annealing's first too (t_0 = 0)
    annealed = decode(host, PROMPTS, 9)
    np.testing.assert_array_equal(annealed.docids[:, 0], greedy.docids[:, 0])


@pytest.mark.parametrize("strategy", [decoding.ReverseAnnealing(), decoding.Nucleus(top_p=0.9, temperature=1.0)])
def test_rows_advancing_independently_give_the_lockstep_loops_docids(strategy):
    """Each row starting its next docid when its last one ends (per-row cache slots) gives every row the docids and
    log-probabilities of lockstep iterations; the corpus has one-token docids (EOS alone), shared docids, more docids
    than K for some prompts and a bitmask root."""
    seqs = _wide_corpus(n=60, seed=4) + [[EOS]]
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    prompts = PROMPTS + [[2], [5, 6]]
    for k in (K, host.num_docids + 3):  # K above the trie's docids: rows run out and stop
        rows, lockstep = (decode(host, prompts, 11, strategy, k=k, independent_rows=flag) for flag in (True, False))
        np.testing.assert_array_equal(rows.docids, lockstep.docids)
        np.testing.assert_array_equal(rows.tokens, lockstep.tokens)
        np.testing.assert_allclose(rows.logprobs, lockstep.logprobs, rtol=1e-6, atol=1e-6)
        for row in range(len(prompts)):
            check_ranking(host, rows, row, k)


def _model_tokens_with_reuse(tokens_row) -> int:
    """Model steps a row needs when each docid's prefix shared with its previous docid is replayed: a docid of L
    tokens whose first s nodes are its predecessor's needs L - 1 - min(s, L - 1) (its first token comes from the
    prompt's logits, and the token after a shared node from the kept logits)."""
    total, prev = 0, []
    for toks in tokens_row:
        path = toks[toks >= 0].tolist()
        if not path:
            break
        shared = next((m for m in range(min(len(path), len(prev))) if path[m] != prev[m]), min(len(path), len(prev)))
        total += len(path) - 1 - min(shared, len(path) - 1)
        prev = path
    return total


@pytest.mark.parametrize("strategy", [decoding.ReverseAnnealing(), decoding.Greedy(),
                                      decoding.Nucleus(top_p=0.9, temperature=1.0)])
def test_reusing_the_previous_docids_prefix_gives_the_same_docids_with_fewer_model_steps(strategy):
    """`reuse_prefix`: rows replay the tokens a docid shares with its predecessor from kept logits instead of
    model steps. Same docids, tokens and log-probabilities as without it (and as lockstep), and the model feeds
    exactly the tokens that are not shared: fewer than without reuse wherever consecutive docids share a prefix."""
    rng = np.random.default_rng(5)
    stems = [list(rng.integers(2, V, 3)) for _ in range(4)]  # deep shared prefixes, so greedy draws follow them
    seqs = [st + list(rng.integers(2, V, rng.integers(0, 3))) + [EOS] for st in stems for _ in range(6)]
    seqs += _wide_corpus(n=20, seed=6) + [[EOS], seqs[0]]  # a one-token docid and a shared docid too
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    prompts = PROMPTS + [[2], [5, 6]]
    for k in (K, host.num_docids + 3):
        lockstep = decode(host, prompts, 11, strategy, k=k)
        # every token fed (the counts below are those of whole docids; skipping determined ones has its own test)
        rows = decode(host, prompts, 11, strategy, k=k, independent_rows=True, skip_determined=False)
        reused = decode(host, prompts, 11, strategy, k=k, independent_rows=True, reuse_prefix=True,
                        skip_determined=False)
        for out in (rows, reused):
            np.testing.assert_array_equal(out.docids, lockstep.docids)
            np.testing.assert_array_equal(out.tokens, lockstep.tokens)
            np.testing.assert_allclose(out.logprobs, lockstep.logprobs, rtol=1e-6, atol=1e-6)
        for row in range(len(prompts)):
            check_ranking(host, reused, row, k)
            real = rows.tokens[row][rows.docids[row] >= 0]
            assert rows.fed_tokens[row] == sum(int((t >= 0).sum()) - 1 for t in real)
            assert reused.fed_tokens[row] == _model_tokens_with_reuse(reused.tokens[row])
        assert reused.fed_tokens.sum() < rows.fed_tokens.sum()
    with pytest.raises(ValueError, match="independent_rows"):
        decode(host, prompts, 11, strategy, reuse_prefix=True)


def _tokens_until_determined(host: TrieHost, tokens_row) -> int:
    """Model steps a row needs when each docid ends at its first node with one docid below: a docid whose t-th
    node is the first such node needs t - 1 (its first token comes from the prompt's logits)."""
    total = 0
    for toks in tokens_row:
        path = toks[toks >= 0].tolist()
        if not path:
            break
        node, t = 0, 0
        while host.count[node] > 1 or t == 0:
            node = next(c for c in range(host.child_start[node], host.child_start[node + 1])
                        if host.node_token[c] == path[t])
            t += 1
        total += t - 1
    return total


@pytest.mark.parametrize("strategy", [decoding.ReverseAnnealing(), decoding.Nucleus(top_p=0.9, temperature=1.0)])
def test_docids_determined_early_end_without_their_remaining_model_steps(strategy):
    """`skip_determined` (the default): a docid ends at its first node with one docid below, the rest of its path
    written without model steps. The docids, tokens and log-probabilities are those of feeding every token, in
    lockstep and with rows advancing independently (with and without prefix reuse), and a row feeds exactly the
    tokens before each docid's determining node: far fewer on a trie with long single-docid tails."""
    rng = np.random.default_rng(8)
    stems = [list(rng.integers(2, V, 2)) for _ in range(5)]
    seqs = [st + list(rng.integers(2, V, rng.integers(0, 2))) for st in stems for _ in range(4)]
    seqs = [s + list(rng.integers(2, V, 2)) + [EOS] for s in seqs]  # tails below the branching nodes (depth <= 6)
    seqs += _wide_corpus(n=20, seed=9) + [[EOS], seqs[0]]  # a one-token docid and a shared docid too
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    prompts = PROMPTS + [[2], [5, 6]]
    for k in (K, host.num_docids + 3):
        full = decode(host, prompts, 13, strategy, k=k, skip_determined=False)
        outs = {name: decode(host, prompts, 13, strategy, k=k, **kw) for name, kw in (
            ("lockstep", {}), ("rows", {"independent_rows": True}),
            ("reuse", {"independent_rows": True, "reuse_prefix": True}))}
        for out in outs.values():
            np.testing.assert_array_equal(out.docids, full.docids)
            np.testing.assert_array_equal(out.tokens, full.tokens)
            np.testing.assert_array_equal(out.logprobs, full.logprobs)
        skipped = outs["rows"]
        whole = 0  # model steps with every docid token fed: a docid of L tokens needs L - 1
        for row in range(len(prompts)):
            check_ranking(host, skipped, row, k)
            assert skipped.fed_tokens[row] == _tokens_until_determined(host, skipped.tokens[row])
            whole += sum(int((t >= 0).sum()) - 1 for t in skipped.tokens[row][skipped.docids[row] >= 0])
        assert skipped.fed_tokens.sum() < whole / 2


def test_deterministic_given_key_and_independent_of_batch_mates():
    host = build_trie(_wide_corpus(), eos_id=EOS, vocab_size=V, width=W)
    a, b = decode(host, PROMPTS, 11), decode(host, PROMPTS, 11)
    np.testing.assert_array_equal(a.docids, b.docids)
    np.testing.assert_array_equal(a.logprobs, b.logprobs)
    tail = decode(host, PROMPTS[1:] + [[4]], 11, key_offset=1)  # rows keep their keys in another batch
    np.testing.assert_array_equal(tail.docids[:2], a.docids[1:])
    other = decode(host, PROMPTS, 12)
    assert not np.array_equal(other.docids, a.docids)  # 12 of 40 docids sampled at t > 0: a repeat is ~impossible
    compiled = decoding._iterative_jit._cache_size()
    hotter = decode(host, PROMPTS, 11, decoding.ReverseAnnealing(t_max=3.0, sigmoid_k=5.0, m=0.2))
    assert decoding._iterative_jit._cache_size() == compiled, "a new schedule must not recompile"
    np.testing.assert_array_equal(hotter.docids[:, 0], a.docids[:, 0])  # t_0 = 0 whatever the schedule


def test_exactly_k_docids_are_all_produced_once():
    rng = np.random.default_rng(8)
    distinct = list({tuple(rng.integers(2, V, rng.integers(0, 5))) + (EOS,) for _ in range(3 * K)})[:K]
    seqs = [list(s) for s in distinct] + [list(distinct[0])]
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    assert host.num_docids == K
    tokens, mask = left_pad(PROMPTS, 0, length=P)
    out = jax.device_get(decoding.reverse_annealed_topk(MODEL, TABLE, tokens, mask, host.to_device(**PAD_SHAPES),
                                                        K, jax.random.key(1)))
    for row in range(len(PROMPTS)):
        assert sorted(out.docids[row].tolist()) == list(range(K))
        assert np.all(remaining_counts(host, out.docids[row]) == 0)


@jax.jit
def _allowed(trie, nodes, paths, depth):
    return decoding.remove_exhausted(trie, decoding.children_mask(trie, nodes), nodes, paths, depth)


def test_bitmask_nodes_with_removal():
    """Root fan-out 10 and a depth-1 node with fan-out 5, both > W = 3: allowed children after removals equal
    count - removed > 0 computed on the host."""
    seqs = [[t, EOS] for t in range(2, 11)] + [[11, t, EOS] for t in range(12, 17)] + [[11, 12, 3, EOS]]
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    assert host.bitmask_row[0] >= 0 and host.fanout[0] == 10
    node11 = int(host.child_start[0] + 9)
    assert host.node_token[node11] == 11 and host.bitmask_row[node11] >= 0
    trie = host.to_device()

    def leaf_path(tokens):  # node ids along a docid, padded to max_depth
        nodes, n = [], 0
        for t in tokens:
            n = int(np.flatnonzero(host.node_token[host.child_start[n]:host.child_start[n + 1]] == t)[0]
                    + host.child_start[n])
            nodes.append(n)
        return nodes + [-1] * (host.max_depth - len(nodes))

    produced = [[3, EOS], [11, 13, EOS], [11, 12, EOS], [7, EOS]]
    paths = jnp.asarray([[leaf_path(s) for s in produced]], jnp.int32)  # [1, 4, L]
    # 3 and 7 are gone at the root; 11 -> 12 still holds [11, 12, 3, EOS], so 12 stays allowed below 11
    for node, depth, expected in ((0, 0, [2, 4, 5, 6, 8, 9, 10, 11]), (node11, 1, [12, 14, 15, 16])):
        nodes = jnp.asarray([node], jnp.int32)
        got = _allowed(trie, nodes, paths, depth)
        left = remaining_counts(host, np.array([next(u for u in range(host.num_docids)
                                                     if host.docid_tokens(u) == s) for s in produced]))
        children = np.arange(host.child_start[node], host.child_start[node + 1])
        want = sorted(int(host.node_token[c]) for c in children if left[c] > 0)
        assert np.flatnonzero(np.asarray(got[0])).tolist() == want == expected
    out = decode(host, PROMPTS, 4, k=K)
    for row in range(len(PROMPTS)):
        check_ranking(host, out, row)


def test_beam_search_is_exact_with_enough_beams():
    seqs = _wide_corpus(n=10, seed=5)
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    assert host.num_docids <= K
    out = decode(host, PROMPTS, 0, decoding.BeamSearch())
    for row, prompt in enumerate(PROMPTS):
        exact = ref.exact_docid_logprobs(stub_logits, prompt, seqs, V)
        ranked = sorted(exact, key=lambda s: -exact[s])
        assert as_tuples(host, out.docids[row]) == ranked
        np.testing.assert_allclose(out.logprobs[row][:len(ranked)], [exact[s] for s in ranked], rtol=1e-5)
        check_ranking(host, out, row)


def test_beam_search_with_fewer_beams_returns_valid_scored_docids():
    seqs = _wide_corpus(n=60, seed=6)
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    out = decode(host, PROMPTS, 0, decoding.BeamSearch())
    for row, prompt in enumerate(PROMPTS):
        check_ranking(host, out, row)
        exact = ref.exact_docid_logprobs(stub_logits, prompt, seqs, V)
        got = as_tuples(host, out.docids[row])
        np.testing.assert_allclose(out.logprobs[row], [exact[s] for s in got], rtol=1e-5)
        assert np.all(np.diff(out.logprobs[row]) <= 0)
        assert got[0] == max(exact, key=exact.get)  # the best docid always survives with 12 beams here


def test_a_beam_as_wide_as_the_trie_scores_every_docid_exactly():
    """Exact scoring: K = 5 docids from a beam as wide as the trie are the 5 best by brute-force log-probability."""
    seqs = _wide_corpus(n=60, seed=6)
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    assert host.num_docids > 40
    out = decode(host, PROMPTS, 0, decoding.BeamSearch(width=host.num_docids), k=5)
    assert out.docids.shape == (len(PROMPTS), 5)
    for row, prompt in enumerate(PROMPTS):
        exact = ref.exact_docid_logprobs(stub_logits, prompt, seqs, V)
        best = sorted(exact, key=lambda s: -exact[s])[:5]
        assert as_tuples(host, out.docids[row]) == best
        np.testing.assert_allclose(out.logprobs[row], [exact[s] for s in best], rtol=1e-5)


_MESH_SCRIPT = r"""
import sys, jax, numpy as np
sys.path.insert(0, {tests!r})
from decoding_stub import HashStubModel, stub_params
from zerogr_jax import sharding
from zerogr_jax.retrieval import decoding
from zerogr_jax.retrieval.trie import build_trie
from zerogr_jax.tokenization import left_pad
assert jax.device_count() == 8
rng = np.random.default_rng(0)
seqs = [list(rng.integers(2, 24, rng.integers(0, 5))) + [1] for _ in range(40)]
trie = build_trie(seqs, eos_id=1, vocab_size=24, width=3).to_device()
tokens, mask = left_pad([[3, 4], [5], [6, 7, 8], [9], [2, 2, 2]], 0)
mesh = sharding.make_mesh(sharding.MeshConfig(data=-1))
args = (HashStubModel(), stub_params(24), tokens, mask, trie, 10, jax.random.key(0), decoding.ReverseAnnealing())
plain = jax.device_get(decoding.decode_docids(*args))
for kw in (dict(), dict(independent_rows=True), dict(independent_rows=True, reuse_prefix=True)):
    sharded = decoding.decode_docids(*args, mesh=mesh, **kw)
    assert sharded.docids.shape == (5, 10)
    np.testing.assert_array_equal(jax.device_get(sharded.docids), plain.docids)
    np.testing.assert_allclose(jax.device_get(sharded.logprobs), plain.logprobs, rtol=1e-6)
print("ok")
"""


@pytest.mark.slow
def test_sharded_batch_equals_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    script = _MESH_SCRIPT.format(tests=str(pathlib.Path(__file__).parent))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=pathlib.Path(__file__).parents[1])
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


@pytest.mark.slow
def test_tiny_llama_compiled_loop_equals_reference():
    from zerogr_jax.models import llama

    cfg = llama.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                            num_kv_heads=2, head_dim=8, tie_word_embeddings=True, max_position_embeddings=64)
    params = llama.init_params(cfg, jax.random.key(0))
    params["embedding"] = params["embedding"] * 40.0  # spread the logits: near-ties would make the test fragile
    seqs = _wide_corpus(n=30, seed=7)
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    tokens, mask = left_pad(PROMPTS, 0)
    step_model, device_trie = decoding.LlamaStepModel(cfg), host.to_device()
    out = jax.device_get(decoding.reverse_annealed_topk(step_model, params, tokens, mask, device_trie, K,
                                                        jax.random.key(2)))
    for kw in ({"independent_rows": True}, {"independent_rows": True, "reuse_prefix": True}):  # per-row cache slots
        rows = jax.device_get(decoding.reverse_annealed_topk(step_model, params, tokens, mask, device_trie, K,
                                                             jax.random.key(2), **kw))
        np.testing.assert_array_equal(rows.docids, out.docids)
        np.testing.assert_allclose(rows.logprobs, out.logprobs, rtol=1e-5, atol=1e-5)

    full = jax.jit(lambda toks: llama.forward(params, cfg, toks, jnp.arange(16)[None])[0][0])

    def logits_fn(sequence):  # whole sequence, no cache; right padding cannot reach earlier positions
        padded = np.zeros((1, 16), np.int32)
        padded[0, :len(sequence)] = sequence
        return np.asarray(full(padded))[len(sequence) - 1]

    want, want_lp = ref.reference_iterative_topk(logits_fn, PROMPTS, seqs, K, jax.random.key(2),
                                                 decoding.reverse_annealing_temperatures(K), V, EOS)
    for row in range(len(PROMPTS)):
        check_ranking(host, out, row)
        assert as_tuples(host, out.docids[row]) == want[row]
        np.testing.assert_allclose(out.logprobs[row], want_lp[row], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 0.8, "per_row"])
def test_draws_among_the_children_equal_the_dense_draw(temperature):
    """`_choose` (children gathered W at a time, wide nodes redrawn over the vocabulary in groups of rows) against
    `_choose_dense` (categorical over the masked vocabulary): the same token and child on every row, the
    log-probability up to rounding. 64 rows (8 groups of wide rows) at random nodes, deep and at the root, with
    random docids already produced (exhausted children), over a trie whose nodes are wide and narrow (W = 3)."""
    rng = np.random.default_rng(0)
    seqs = _wide_corpus(120, seed=2) + [[11, t, EOS] for t in range(12, 20)]
    host = build_trie(seqs, eos_id=EOS, vocab_size=V, width=W)
    trie = host.to_device()
    leaf = docid_paths(host)[0]  # [U, max_depth] each docid's nodes, root side first, -1 after its leaf
    b, k = 64, 6
    paths = np.full((b, k, host.max_depth), -1, np.int32)
    node, depth = np.zeros(b, np.int32), np.zeros(b, np.int32)
    for r in range(b):
        produced = rng.choice(host.num_docids, rng.integers(0, k + 1), replace=False)
        paths[r, :len(produced)] = leaf[produced]
        target = rng.choice(np.setdiff1d(np.arange(host.num_docids), produced))  # a docid still to be found
        m = 0 if r % 4 == 0 else rng.integers(0, (leaf[target] >= 0).sum())  # its node after m tokens
        node[r], depth[r] = (0 if m == 0 else leaf[target, m - 1]), m
    assert (host.bitmask_row[node] >= 0).sum() > 8 and (host.bitmask_row[node] < 0).sum() > 8
    logits = jnp.asarray(rng.normal(size=(b, V)).astype(np.float32))
    row_keys = decoding.row_keys(jax.random.key(9), b)
    i = jnp.asarray(rng.integers(0, 5, b), jnp.int32)
    t = (jnp.asarray(np.where(rng.random(b) < 0.3, 0.0, 1.3), jnp.float32) if temperature == "per_row"
         else jnp.asarray(temperature, jnp.float32))
    args = (jnp.asarray(node), jnp.asarray(paths), i, jnp.asarray(depth))

    @jax.jit
    def both(logits, node, paths, i, j, t):
        keys = jax.vmap(lambda key, i, j: jax.random.fold_in(jax.random.fold_in(key, i), j))(row_keys, i, j)
        return (decoding._choose(trie, row_keys, logits, node, paths, i, j, t, None, False),
                decoding._choose_dense(trie, keys, logits, node, paths, j, t, None, False))

    (tok, logp, child), (want_tok, want_logp, want_child) = jax.device_get(both(logits, *args, t))
    np.testing.assert_array_equal(tok, want_tok)
    np.testing.assert_array_equal(child, want_child)
    np.testing.assert_allclose(logp, want_logp, rtol=1e-6, atol=1e-6)
    assert np.isfinite(logp).all()
