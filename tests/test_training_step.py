"""The train step: split (frozen lower / trained upper) layer stacks, the docid-vocabulary head, grad accumulation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from forward_reference import plain_forward
from training_fixtures import TINY, assert_trees_equal, compilation_cache, host, tiny_examples, tiny_params, \
    tiny_setup  # noqa: F401 (fixture)
from zerogr_jax.training import step as tr
from zerogr_jax.training.pairs import split_shared_prefixes
from zerogr_jax.models import llama
from zerogr_jax.training.loop import fit


def test_split_stacks_shared_prefix_and_docid_head_compute_the_models_function():
    """One compiled program checks the step's model pieces against `llama.forward` (and each other):
    frozen/trained layer split, the shared-prefix KV path (loss and gradients), the docid-vocabulary head."""
    ex = tiny_examples(t=24, instruction=(5, 6, 7, 8, 9))
    prefixes, (rows,) = split_shared_prefixes([ex], 1, pad_id=0)
    assert prefixes.length.tolist() == [6] and rows.tokens.shape[1] == 16  # BOS + instruction moved out
    full, split = ex.as_batch(np.arange(8)), rows.as_batch(np.arange(8))
    params = tiny_params()
    trainable, frozen = tr.split_params(params, TINY, "top_layers:1")
    vocab = np.array([2, 7, 50, 127], np.int32)

    @jax.jit
    def run(params, trainable, frozen):
        positions = jnp.broadcast_to(jnp.arange(24), (8, 24))
        ref, _ = llama.forward(params, TINY, full["tokens"], positions, kv_mask=full["kv_mask"], return_hidden=True)
        ref_logits, _ = llama.forward(params, TINY, full["tokens"], positions, kv_mask=full["kv_mask"])
        consts = tr.step_constants(frozen, vocab, 128)
        hidden = tr.hidden_states(trainable, consts, TINY, full)
        loss = lambda p, c, b: tr.loss_terms(p, c, TINY, b)[0]
        top = [jax.value_and_grad(loss)(trainable, tr.step_constants(frozen, None, 128, pre), batch)
               for pre, batch in ((None, full), (prefixes, split))]
        all_layers = [loss(params, tr.step_constants({}, None, 128, pre), batch)
                      for pre, batch in ((None, full), (prefixes, split))]
        return ref, ref_logits, hidden, tr.head_logits(trainable, consts, TINY, hidden), top, all_layers

    ref, ref_logits, hidden, logits, top, all_layers = host(run(params, trainable, frozen))
    np.testing.assert_allclose(hidden, ref, rtol=1e-5, atol=1e-5)  # frozen stack + trained stack == the model
    # the docid head's logits are the full head's logits at the docid-vocabulary columns
    np.testing.assert_allclose(logits, ref_logits[..., vocab], rtol=1e-5, atol=1e-5)
    assert_trees_equal(tr.merge_params(trainable, frozen), params)
    (l_full, g_full), (l_split, g_split) = top
    np.testing.assert_allclose(l_split, l_full, rtol=1e-5)  # shared prefix: same loss ...
    np.testing.assert_allclose(all_layers[1], all_layers[0], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_split)):  # ... and same gradients
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def cpu_small_like_setup(**overrides):
    """Top layer only + docid-vocabulary head (cpu-small's recipe); the tests below share its compiled step."""
    # share_prefix off: a smaller program to compile (the prefix path is checked above and in test_training.py)
    setup = tiny_setup(with_heldout=False, trainable="top_layers:1", lr=3e-2, checkpoint_every=100,
                       share_prefix=False, **overrides)
    vocab = np.unique(np.concatenate([setup.data.train.labels.ravel(), [2]])).astype(np.int32)
    return dataclasses.replace(setup, head_vocab=vocab)


def test_top_layers_with_docid_head_trains_only_the_top_layer(tmp_path):
    setup = cpu_small_like_setup()
    vocab = setup.head_vocab
    result = fit(setup, tmp_path, progress=False)

    losses = [r["loss"] for r in result.history if "loss" in r]
    assert losses[0] < np.log(len(vocab)) + 1.0  # a softmax over the |docid vocab| tokens, not over 128
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), [round(x, 3) for x in losses]  # learns, slowly

    before, after = host(setup.params), host(tr.merge_params(result.state.params, result.consts.frozen))
    for path, a in jax.tree_util.tree_flatten_with_path(before["layers"])[0]:
        b = after["layers"]
        for k in path:
            b = b[k.key]
        assert np.array_equal(a[0], b[0]), f"lower layer changed: {jax.tree_util.keystr(path)}"
        if a.ndim > 2:
            assert not np.array_equal(a[1], b[1]), f"top layer did not train: {jax.tree_util.keystr(path)}"
    assert np.array_equal(before["embedding"], after["embedding"])
    # frozen weights get no optimizer state: the Adam moments cover the top layer and the final norm only
    mu = result.state.opt_state[1][0].mu
    assert sorted(mu) == ["final_norm", "layers"] and mu["layers"]["attn"]["q"].shape[0] == 1


def test_grad_accumulation_matches_one_big_batch(tmp_path):
    """One step of 2 micro-batches of 4 == one step of 8 (micro-batches hold different label counts)."""
    one = fit(cpu_small_like_setup(), tmp_path / "one", stop_after_step=1, progress=False)
    two = fit(cpu_small_like_setup(grad_accum_steps=2), tmp_path / "two", stop_after_step=1, progress=False)
    m1, m2 = one.history[0], two.history[0]
    assert m1["label_tokens"] == m2["label_tokens"]
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-6)
    np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(host(one.state.opt_state)), jax.tree.leaves(host(two.state.opt_state))):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-9)  # Adam moments: the gradients themselves
    for a, b in zip(jax.tree.leaves(host(one.state.params)), jax.tree.leaves(host(two.state.params))):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_cached_frozen_features_train_the_same_model(tmp_path):
    """train.cache_frozen_features: the frozen layers run once per example before training and the top layer trains
    on their stored outputs: the same losses, held-out metrics and params as running the frozen layers every step
    (with a shared prefix, which still runs through every layer, and length buckets, which cut the stored rows)."""
    def setup(**overrides):
        base = tiny_setup(trainable="top_layers:1", share_prefix=True, length_buckets=2, total_steps=4,
                          **overrides)
        ex = tiny_examples(t=20, instruction=(5, 6, 7))
        held = np.arange(len(ex)) % 5 == 4
        data = dataclasses.replace(base.data, train=ex.take(np.flatnonzero(~held)),
                                   heldout=ex.take(np.flatnonzero(held)))
        return dataclasses.replace(base, data=data)

    plain = fit(setup(), tmp_path / "plain", progress=False)
    cached = fit(setup(cache_frozen_features=True), tmp_path / "cached", progress=False)
    losses = lambda r: [x["loss"] for x in r.history if "loss" in x]
    assert len(losses(plain)) == 4
    np.testing.assert_allclose(losses(cached), losses(plain), rtol=1e-5)
    for k in ("eval_loss", "eval_token_accuracy"):
        np.testing.assert_allclose(cached.final_eval[k], plain.final_eval[k], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(host(plain.state.params)), jax.tree.leaves(host(cached.state.params))):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_cached_frozen_features_need_frozen_layers(tmp_path):

    with pytest.raises(ValueError, match="top_layers"):
        fit(tiny_setup(cache_frozen_features=True), tmp_path, progress=False)


def test_rank_objective_is_ranknet_on_each_rows_docid_log_probability():
    """rank_loss_terms over groups (positive, negative, negative) equals the positives' mean docid cross-entropy plus
    rank_weight x the mean of softplus(s_neg - s_pos), with s = -(summed docid loss of that row alone)."""
    from training_fixtures import tiny_rank_groups

    ex = tiny_rank_groups(tiny_examples(), negatives=2)
    batch = ex.as_batch(np.arange(12))  # 4 groups of 3
    trainable, frozen = tr.split_params(tiny_params(), TINY, "top_layers:1")
    consts = tr.step_constants(frozen, None, 128)
    objective, stats = jax.jit(lambda p, c, b: tr.rank_loss_terms(p, c, TINY, b, 3, 0.7))(trainable, consts, batch)
    one_row = jax.jit(lambda p, c, b: tr.loss_terms(p, c, TINY, b))
    per_row = [host(one_row(trainable, consts, ex.as_batch(np.array([r])))) for r in range(12)]
    nll = np.array([s[0] for s in per_row]).reshape(4, 3)  # -log p(docid | query) per row
    tokens = np.array([s[1]["label_tokens"] for s in per_row]).reshape(4, 3)
    s = -nll
    ranknet = np.log1p(np.exp(s[:, 1:] - s[:, :1]))
    expected = nll[:, 0].sum() / tokens[:, 0].sum() + 0.7 * ranknet.mean()
    np.testing.assert_allclose(float(objective), expected, rtol=1e-5)
    stats = host(stats)
    assert stats["pairs"] == 8 and stats["label_tokens"] == tokens[:, 0].sum()
    assert stats["pairs_ordered"] == np.sum(s[:, :1] > s[:, 1:])
    np.testing.assert_allclose(stats["rank_sum"], ranknet.sum(), rtol=1e-5)


def test_head_rank_objective_is_ranknet_on_a_reserved_tokens_logit_after_each_docid():
    """rank_score="head": rank_loss_terms equals rank_weight x the mean of softplus(s_neg - s_pos) with s = token t's
    logit at the row's last real token (the docid's EOS), from a plain forward pass over each row alone; the docid
    cross-entropy is reported but not part of the objective, and the head gets a gradient through the top layers."""
    from training_fixtures import tiny_rank_groups

    ex = tiny_rank_groups(tiny_examples(), negatives=2)
    batch = ex.as_batch(np.arange(12))  # 4 groups of 3
    params = tiny_params()
    trainable, frozen = tr.split_params(params, TINY, "top_layers:1")
    consts = tr.step_constants(frozen, None, 128)
    token = 5
    terms = jax.jit(lambda p, c, b: tr.rank_loss_terms(p, c, TINY, b, 3, 0.7, head_token=token))
    objective, stats = terms(trainable, consts, batch)
    hidden = plain_forward(params, TINY, [ex.tokens[r, :int(ex.kv_mask[r].sum())] for r in range(12)],
                           return_hidden=True)
    s = np.array([float(h[-1] @ np.asarray(params["embedding"])[token]) for h in hidden]).reshape(4, 3)
    ranknet = np.log1p(np.exp(s[:, 1:] - s[:, :1]))
    np.testing.assert_allclose(float(objective), 0.7 * ranknet.mean(), rtol=1e-4)
    stats = host(stats)
    assert stats["pairs"] == 8 and stats["pairs_ordered"] == np.sum(s[:, :1] > s[:, 1:])
    sequence = host(jax.jit(lambda p, c, b: tr.rank_loss_terms(p, c, TINY, b, 3, 0.7))(trainable, consts, batch)[1])
    np.testing.assert_allclose(stats["loss_sum"], sequence["loss_sum"], rtol=1e-6)  # the positives' docid loss
    grads = jax.grad(lambda p: terms(p, consts, batch)[0])(trainable)
    assert float(jnp.abs(grads["layers"]["attn"]["q"]).sum()) > 0
    assert float(jnp.abs(grads["final_norm"]["scale"]).sum()) > 0


def test_ranking_groups_run_their_shared_prompt_once_with_the_same_loss_and_gradients():
    """pairs.split_group_prefixes moves each group's prompt (BOS, instruction, query) out of its rows; the ranking
    step runs it once per group and the rows reach it through the KV cache: the same objective, stats and gradients
    as whole rows, for the sequence score and the head's, with a frozen/trained split; and far fewer tokens."""
    from training_fixtures import tiny_rank_groups
    from zerogr_jax.training.pairs import split_group_prefixes

    ex = tiny_rank_groups(tiny_examples(instruction=(5, 6, 7)), negatives=2)
    grouped = split_group_prefixes(ex, 3, pad_id=0)
    rows = np.arange(12)  # 4 groups of 3
    for r in rows:  # the prefix and the row's remainder are the row
        n = int(grouped.prefix_mask[r].sum())
        whole = np.concatenate([grouped.prefix[r, :n], grouped.tokens[r][grouped.kv_mask[r]]])
        np.testing.assert_array_equal(whole, ex.tokens[r][ex.kv_mask[r]])
        assert n >= 1 + 3 + 4 and n <= ex.target_index[r, 0]  # BOS + instruction + the query's key tokens
    assert grouped.tokens.shape[1] < ex.tokens.shape[1]
    full, split = ex.as_batch(rows), grouped.as_batch(rows)
    trainable, frozen = tr.split_params(tiny_params(), TINY, "top_layers:1")
    consts = tr.step_constants(frozen, None, 128)

    @jax.jit
    def run(trainable, full, split):
        out = []
        for head in (None, 5):
            terms = lambda p, b: tr.rank_loss_terms(p, consts, TINY, b, 3, 0.7, head_token=head)  # noqa: E731
            out.append([jax.value_and_grad(terms, has_aux=True)(trainable, b) for b in (full, split)])
        return out

    for ((l_full, s_full), g_full), ((l_split, s_split), g_split) in host(run(trainable, full, split)):
        np.testing.assert_allclose(l_split, l_full, rtol=1e-5)
        for k in ("loss_sum", "rank_sum", "pairs", "pairs_ordered", "correct_tokens"):
            np.testing.assert_allclose(s_split[k], s_full[k], rtol=1e-5, atol=1e-6)
        for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_split)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
        assert s_split["input_tokens"] == ex.kv_mask[rows].sum() - 2 * grouped.prefix_mask[rows][::3].sum()
    with pytest.raises(ValueError, match="groups"):
        split_group_prefixes(ex.take(np.arange(10)), 3, pad_id=0)
