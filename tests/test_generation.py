"""Compiled generation: KV-cache decoding equals full recomputation, EOS/max bounds, sampling filters, hooks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerogr_jax import generation, sampling, tokenization
from zerogr_jax.models import llama

PROMPTS = [[5, 17, 3, 88, 42], [9, 4], [60, 61, 62, 63, 64, 65, 66]]
PAD = 0


def naive_greedy(cfg, params, prompt, n, total=16):
    """Reference: recompute the whole sequence without a cache at every step (right-padded to `total`)."""
    fwd = jax.jit(lambda toks: llama.forward(params, cfg, toks, jnp.arange(total)[None])[0])
    seq = list(prompt)
    for _ in range(n):
        logits = fwd(jnp.asarray([seq + [PAD] * (total - len(seq))], jnp.int32))
        seq.append(int(jnp.argmax(logits[0, len(seq) - 1])))
    return seq[len(prompt):]


def run(cfg, params, prompts=PROMPTS, n=6, eos=(), hook=None, **sampling):
    tokens, mask = tokenization.left_pad(prompts, PAD)
    fn = generation.compile_generate(cfg, max_new_tokens=n, eos_ids=eos or (-1,), pad_id=PAD, hook=hook)
    sp = generation.SamplingParams.make(len(prompts), **sampling)
    return jax.device_get(fn(params, tokens, mask, jax.random.key(0), sp))


def test_cached_left_padded_greedy_equals_full_recompute(tiny_model):
    cfg, params = tiny_model
    out = run(cfg, params)
    for row, prompt in zip(out.tokens, PROMPTS):
        assert list(row) == naive_greedy(cfg, params, prompt, 6)


def test_bf16_compute_mostly_agrees_with_f32(tiny_model):
    cfg, params = tiny_model
    f32 = run(cfg, params, n=4)
    bf16 = run(cfg.replace(dtype="bfloat16"), params, n=4)
    assert (f32.tokens[:, 0] == bf16.tokens[:, 0]).mean() >= 2 / 3


def test_eos_stops_rows_and_pads(tiny_model):
    cfg, params = tiny_model
    free = run(cfg, params, n=6)
    eos = int(free.tokens[0, 2])  # make row 0's third token the EOS
    out = run(cfg, params, n=6, eos=(eos,))
    for row, free_row, length in zip(out.tokens, free.tokens, out.lengths):
        hits = np.flatnonzero(free_row == eos)
        expect = hits[0] + 1 if hits.size else 6
        assert length == expect
        np.testing.assert_array_equal(row[:expect], free_row[:expect])
        assert np.all(row[expect:] == PAD)


def test_top_k_one_is_greedy_and_temperature_does_not_recompile(tiny_model):
    cfg, params = tiny_model
    tokens, mask = tokenization.left_pad(PROMPTS, PAD)
    fn = generation.compile_generate(cfg, max_new_tokens=5, eos_ids=(-1,), pad_id=PAD)
    greedy = fn(params, tokens, mask, jax.random.key(1), generation.SamplingParams.make(3))
    outs = [fn(params, tokens, mask, jax.random.key(s), generation.SamplingParams.make(3, temperature=t, top_k=1))
            for s, t in [(2, 0.7), (3, 1.3)]]
    for o in outs:
        np.testing.assert_array_equal(o.tokens, greedy.tokens)
    assert fn._cache_size() == 1


def test_sampling_is_deterministic_given_key_and_varies_across_keys(tiny_model):
    cfg, params = tiny_model
    a = run(cfg, params, n=8, temperature=1.5)
    b = run(cfg, params, n=8, temperature=1.5)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    tokens, mask = tokenization.left_pad(PROMPTS, PAD)
    fn = generation.compile_generate(cfg, max_new_tokens=8, eos_ids=(-1,), pad_id=PAD)
    draws = {tuple(np.asarray(fn(params, tokens, mask, jax.random.key(s),
                                 generation.SamplingParams.make(3, temperature=1.5)).tokens).ravel())
             for s in range(4)}
    assert len(draws) > 1


def test_top_p_and_top_k_filters():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05], [0.4, 0.3, 0.2, 0.1]]))
    kept = sampling.filter_top_k_top_p(logits, jnp.asarray([0, 2]), jnp.asarray([0.7, 1.0])) > -1e29
    np.testing.assert_array_equal(kept, [[True, True, False, False], [True, True, False, False]])
    none = sampling.filter_top_k_top_p(logits, jnp.asarray([0, 0]), jnp.asarray([1.0, 1.0]))
    np.testing.assert_array_equal(none, logits)


def test_inverse_cdf_draws_follow_the_distribution_and_never_masked_tokens():
    # 4 rows x 20K draws of a 6-token distribution with masked (NEG_INF) tokens at both ends and between; Pearson
    # chi-square per row against the softmax (5 dof: p < 1e-4 beyond 25.7), plus the tail rule
    probs = np.asarray([0.0, 0.4, 0.25, 0.0, 0.2, 0.15])
    logits = jnp.where(probs > 0, jnp.log(jnp.maximum(probs, 1e-12)), sampling.NEG_INF)
    n = 20_000
    draws = jax.jit(jax.vmap(lambda k: sampling.draw_categorical(k, jnp.broadcast_to(logits, (4, 6)))))(
        jax.random.split(jax.random.key(0), n))  # [n, 4]
    draws = np.asarray(draws)
    assert not np.isin(draws, [0, 3]).any()
    for row in draws.T:
        counts = np.bincount(row, minlength=6)[probs > 0]
        expected = n * probs[probs > 0]
        assert ((counts - expected) ** 2 / expected).sum() < 25.7
    assert (draws[:, 0] != draws[:, 1]).mean() > 0.5  # each row of a call draws its own uniform number


@dataclasses.dataclass(frozen=True)
class BanTokens:
    banned: tuple[int, ...]

    def init(self, batch):
        return jnp.zeros((batch,), jnp.int32)

    def process(self, state, logits):
        return logits.at[:, jnp.asarray(self.banned)].set(sampling.NEG_INF)

    def advance(self, state, tokens):
        return state + 1


def test_logits_hook_masks_tokens(tiny_model):
    cfg, params = tiny_model
    free = run(cfg, params, n=6)
    banned = tuple(sorted(set(np.asarray(free.tokens).ravel().tolist())))
    out = run(cfg, params, n=6, hook=BanTokens(banned))
    assert not set(np.asarray(out.tokens).ravel().tolist()) & set(banned)


def test_repetition_penalty_discourages_repeats(tiny_model):
    cfg, params = tiny_model
    plain = run(cfg, params, n=12)
    penalised = run(cfg, params, n=12, repetition_penalty=5.0)

    def repeats(rows, prompts):
        return sum(len(r) - len(set(r) - set(p)) for r, p in zip(map(list, rows), prompts))

    assert repeats(penalised.tokens, PROMPTS) < repeats(plain.tokens, PROMPTS)


def test_num_samples_share_one_prefill(tiny_model):
    cfg, params = tiny_model
    tokens, mask = tokenization.left_pad(PROMPTS, PAD)
    greedy = run(cfg, params, n=5)
    fn = generation.compile_generate(cfg, max_new_tokens=5, eos_ids=(-1,), pad_id=PAD, num_samples=2)
    out = fn(params, tokens, mask, jax.random.key(0), generation.SamplingParams.make(6))
    np.testing.assert_array_equal(np.asarray(out.tokens), np.repeat(greedy.tokens, 2, axis=0))
    hot = fn(params, tokens, mask, jax.random.key(0), generation.SamplingParams.make(6, temperature=2.0))
    assert hot.tokens.shape == (6, 5)


SHARED = [7, 31, 2, 19, 44, 8, 90, 13]  # a prefix every prompt starts with (a chat template + few-shot turns)


@pytest.mark.parametrize("penalty", [1.0, 3.0])  # 3.0: the prefix's tokens count as seen, as in the whole prompt
def test_shared_prefix_run_once_equals_the_unsplit_prompts(tiny_model, penalty):
    cfg, params = tiny_model
    prompts = [SHARED + p for p in PROMPTS]
    whole = run(cfg, params, prompts=prompts, n=6, repetition_penalty=penalty)
    tokens, mask = tokenization.left_pad(PROMPTS, PAD)
    fn = generation.compile_generate(cfg, max_new_tokens=6, eos_ids=(-1,), pad_id=PAD, with_prefix=True)
    split = jax.device_get(fn(params, tokens, mask, jax.random.key(0),
                              generation.SamplingParams.make(3, repetition_penalty=penalty),
                              jnp.asarray(SHARED, jnp.int32)))
    np.testing.assert_array_equal(split.tokens, whole.tokens)
    np.testing.assert_allclose(split.logprobs, whole.logprobs, rtol=1e-4, atol=1e-4)
    if penalty == 1.0:
        for row, prompt in zip(split.tokens, prompts):
            assert list(row) == naive_greedy(cfg, params, prompt, 6, total=24)


def test_prefix_and_prompt_segments_with_several_samples_per_prompt(tiny_model):
    # two shared segments of different group sizes (prefix: 1 group, prompts: 3 groups of 2 rows) and the rows'
    # own caches: each row must read its own prompt, whatever its neighbours are
    cfg, params = tiny_model
    whole = run(cfg, params, prompts=[SHARED + p for p in PROMPTS], n=6)
    tokens, mask = tokenization.left_pad(PROMPTS, PAD)
    fn = generation.compile_generate(cfg, max_new_tokens=6, eos_ids=(-1,), pad_id=PAD, num_samples=2,
                                     with_prefix=True)
    out = jax.device_get(fn(params, tokens, mask, jax.random.key(0), generation.SamplingParams.make(6),
                            jnp.asarray(SHARED, jnp.int32)))
    np.testing.assert_array_equal(out.tokens, np.repeat(whole.tokens, 2, axis=0))
    np.testing.assert_allclose(out.logprobs, np.repeat(whole.logprobs, 2), rtol=1e-4, atol=1e-4)


def test_stop_tokens_end_rows_after_their_first_token_without_changing_them(tiny_model):
    cfg, params = tiny_model
    tokens, mask = tokenization.left_pad(PROMPTS, PAD)
    sp = generation.SamplingParams.make(3, temperature=1.5)
    free = jax.device_get(generation.compile_generate(cfg, max_new_tokens=12, eos_ids=(-1,), pad_id=PAD)(
        params, tokens, mask, jax.random.key(3), sp))
    # stop at the tokens row 0 drew at steps 0 and 4: step 0 must not end it, step 4 must
    stops = (int(free.tokens[0, 0]), int(free.tokens[0, 4]))
    out = jax.device_get(generation.compile_generate(cfg, max_new_tokens=12, eos_ids=(-1,), pad_id=PAD,
                                                     stop_ids=stops)(params, tokens, mask, jax.random.key(3), sp))
    for row_free, row, length in zip(free.tokens, out.tokens, out.lengths):
        later = [i for i in range(1, 12) if int(row_free[i]) in stops]
        expect = later[0] + 1 if later else 12
        assert length == expect
        np.testing.assert_array_equal(row[:length], row_free[:length])  # the same draws up to the stop
        assert (row[length:] == PAD).all()
    assert out.lengths[0] <= 5


def test_shared_prefix_length_and_stop_cuts():
    from zerogr_jax import text_generator as tg

    assert tg.shared_prefix_length([[1, 2, 3, 4, 5], [1, 2, 3, 9]], 1) == 3
    assert tg.shared_prefix_length([[1, 2, 3, 4, 5], [1, 2, 3, 9]], 2) == 2
    assert tg.shared_prefix_length([[1, 2, 3], [1, 2, 3]], 1) == 2  # each row keeps a token of its own
    assert tg.shared_prefix_length([[4, 2], [1, 2]], 1) == 0
    assert tg.cut_at_stop("\n what is lift\n more", ["\n"]) == "\n what is lift"
    assert tg.cut_at_stop("drag##x\n", ["\n", "##"]) == "drag"
    assert tg.cut_at_stop("no stop", ["\n"]) == "no stop"


def test_per_object_cache_entries_are_built_once_and_go_with_their_owner():
    import gc

    from zerogr_jax import text_generator as tg

    class Owner:
        pass

    cache, built = {}, []
    owner = Owner()
    for _ in range(2):
        assert tg.cached_per_object(cache, owner, ("k",), lambda: built.append(1) or len(built)) == 1
    assert len(cache) == 1 and built == [1]
    del owner
    gc.collect()
    assert cache == {}  # a new object at the freed address cannot inherit the entry
