"""Compiled batched sampling with a KV cache inside one `jax.lax.while_loop`.

Greedy, temperature, top-k, top-p and a repetition penalty; left-padded prompts; per-row EOS and stop-token ends; a
shared prompt prefix run once per call; a logits hook for constraints. Every per-call number (temperature, top-p,
top-k, penalty) is a traced array, so a new value does not recompile; only shapes (batch, prompt length,
max_new_tokens, prefix length), the stop ids and the hook are static.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp

from zerogr_jax.models import llama
from zerogr_jax.sampling import apply_repetition_penalty, draw_categorical, filter_top_k_top_p


@flax.struct.dataclass
class SamplingParams:
    """Per-row sampling numbers, each [B] (or broadcastable scalars). temperature 0 = greedy."""

    temperature: jax.Array
    top_p: jax.Array
    top_k: jax.Array  # 0 = off
    repetition_penalty: jax.Array  # 1 = off (HF semantics: divide positive logits, multiply negative ones)

    @classmethod
    def make(cls, batch: int, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0) -> "SamplingParams":
        full = lambda v, dt: jnp.broadcast_to(jnp.asarray(v, dt), (batch,))
        return cls(full(temperature, jnp.float32), full(top_p, jnp.float32), full(top_k, jnp.int32),
                   full(repetition_penalty, jnp.float32))


class LogitsHook(Protocol):
    """Constraint plug-in: state is any pytree carried through the loop."""

    def init(self, batch: int) -> Any: ...

    def process(self, state: Any, logits: jax.Array) -> jax.Array: ...  # [B, V] -> [B, V] (masked)

    def advance(self, state: Any, tokens: jax.Array) -> Any: ...  # tokens [B]


@flax.struct.dataclass
class GenerateOutput:
    tokens: jax.Array  # [B, N] int32, pad_id after a row's EOS
    lengths: jax.Array  # [B] int32, generated tokens including the EOS
    logprobs: jax.Array  # [B] float32, sum of log-probabilities (at temperature 1, after the hook) of the tokens


@flax.struct.dataclass
class _LoopState:
    step: jax.Array
    tokens: jax.Array  # [B, N]
    done: jax.Array  # [B]
    lengths: jax.Array  # [B]
    logprobs: jax.Array  # [B]
    logits: jax.Array  # [B, V] next-token logits
    seen: jax.Array  # [B, V] bool, tokens present (repetition penalty)
    cache: llama.KVCache
    rng: jax.Array
    hook_state: Any


def sample_tokens(rng, logits: jax.Array, params: SamplingParams) -> jax.Array:
    """One token per row: argmax where temperature == 0, else a draw from the filtered, tempered distribution."""
    greedy = jnp.argmax(logits, axis=-1)
    t = jnp.maximum(params.temperature, 1e-6)[:, None]
    filtered = filter_top_k_top_p(logits / t, params.top_k, params.top_p)
    drawn = draw_categorical(rng, filtered)
    return jnp.where(params.temperature > 0, drawn, greedy).astype(jnp.int32)


def prompt_positions(mask: jax.Array) -> jax.Array:
    """RoPE positions counted from each row's first real token (left padding gets position 0)."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


def prefill_shared(params, cfg: llama.LlamaConfig, tokens: jax.Array, mask: jax.Array,
                   prefix_tokens: jax.Array | None = None):
    """Runs the prompts into read-only `SharedKV` segments for sampling (no per-row copies of a prompt).

    With `prefix_tokens` [P0] (a prefix every row's prompt starts with, `tokens` holding only the rest), the prefix
    runs once at batch 1 into a segment all rows share; the rows' left-padded remainders [B, P] follow with positions
    continuing after it, into a segment of their own. Same attention and positions as the unsplit prompts (pad slots
    are masked out), at P0 / (P0 + P) of the prefill FLOPs per extra row.

    Returns (last-position logits [B, V], segments (prefix?, prompts), next position [B]). Beam search keeps one
    cache per row instead (`decoding.LlamaStepModel.prefill`): it reorders rows.
    """
    segments: tuple[llama.SharedKV, ...] = ()
    p0 = 0
    if prefix_tokens is not None:
        p0 = prefix_tokens.shape[0]
        _, one = llama.forward(params, cfg, prefix_tokens[None], jnp.arange(p0, dtype=jnp.int32)[None],
                               llama.init_cache(cfg, 1, p0), 0, jnp.ones((1, p0), bool), return_hidden=True)
        segments = (llama.SharedKV(one.k, one.v, jnp.ones((1, p0), bool)),)
    b, p = tokens.shape
    positions = prompt_positions(mask) + p0
    hidden, cache = llama.forward(params, cfg, tokens, positions, llama.init_cache(cfg, b, p), 0, mask,
                                  return_hidden=True, shared=segments)
    segments += (llama.SharedKV(cache.k, cache.v, mask),)
    return llama.lm_head(params, cfg, hidden[:, -1]), segments, positions[:, -1] + 1


def generate(params, cfg: llama.LlamaConfig, prompt_tokens: jax.Array, prompt_mask: jax.Array, rng: jax.Array,
             sampling: SamplingParams, *, max_new_tokens: int, eos_ids: tuple[int, ...], pad_id: int,
             hook: LogitsHook | None = None, num_samples: int = 1, stop_ids: tuple[int, ...] = (),
             prefix_tokens: jax.Array | None = None) -> GenerateOutput:
    """Samples up to `max_new_tokens` per row. Pure; jit it (see `compile_generate`).

    A row ends at its first EOS, or at a token of `stop_ids` other than its first token (a completion may open with
    a line break before its text); either token is kept in `tokens` and counted in `lengths`. A row's tokens do not
    depend on when the other rows end: every step draws each row from its own logits and the step's shared key.
    With `num_samples` > 1 each prompt is prefilled once and read by `num_samples` consecutive output rows
    (`sampling` and the outputs then have B * num_samples rows). `prefix_tokens` [P0]: see `prefill_shared`.
    The prompts live in read-only shared segments; each row's cache holds only its `max_new_tokens` new slots.
    """
    logits, shared, next_pos = prefill_shared(params, cfg, prompt_tokens, prompt_mask, prefix_tokens)
    seen_rows = jnp.zeros((prompt_tokens.shape[0], logits.shape[-1]), bool)
    seen_rows = seen_rows.at[jnp.arange(prompt_tokens.shape[0])[:, None], prompt_tokens].max(prompt_mask)
    if prefix_tokens is not None:  # the shared prefix is part of every row's prompt (repetition penalty)
        seen_rows = seen_rows.at[:, prefix_tokens].set(True)
    if num_samples > 1:
        logits, next_pos, seen_rows = (jnp.repeat(x, num_samples, axis=0) for x in (logits, next_pos, seen_rows))
    b = logits.shape[0]
    kv_mask = jnp.ones((b, max_new_tokens), bool)  # new tokens are all real; pads after a row's end go unread
    eos = jnp.asarray(eos_ids, jnp.int32)
    stops = jnp.asarray(stop_ids or (-1,), jnp.int32)

    state = _LoopState(
        step=jnp.zeros((), jnp.int32), tokens=jnp.full((b, max_new_tokens), pad_id, jnp.int32),
        done=jnp.zeros((b,), bool), lengths=jnp.zeros((b,), jnp.int32), logprobs=jnp.zeros((b,), jnp.float32),
        logits=logits, seen=seen_rows, cache=llama.init_cache(cfg, b, max_new_tokens), rng=rng,
        hook_state=hook.init(b) if hook is not None else None)

    def cond(s: _LoopState):
        return (s.step < max_new_tokens) & ~jnp.all(s.done)

    def body(s: _LoopState):
        logits = apply_repetition_penalty(s.logits, s.seen, sampling.repetition_penalty)
        if hook is not None:
            logits = hook.process(s.hook_state, logits)
        token = sample_tokens(jax.random.fold_in(s.rng, s.step), logits, sampling)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), token[:, None], -1)[:, 0]
        token = jnp.where(s.done, pad_id, token)
        hook_state = hook.advance(s.hook_state, token) if hook is not None else None
        new_logits, cache = llama.forward(
            params, cfg, token[:, None], (next_pos + s.step)[:, None], s.cache, s.step, kv_mask, shared=shared)
        finished = jnp.isin(token, eos) | (jnp.isin(token, stops) & (s.step > 0))
        return _LoopState(
            step=s.step + 1, tokens=s.tokens.at[:, s.step].set(token), done=s.done | finished,
            lengths=s.lengths + (~s.done).astype(jnp.int32), logprobs=s.logprobs + jnp.where(s.done, 0.0, logp),
            logits=new_logits[:, 0], seen=s.seen.at[jnp.arange(b), token].set(True), cache=cache, rng=s.rng,
            hook_state=hook_state)

    s = jax.lax.while_loop(cond, body, state)
    return GenerateOutput(tokens=s.tokens, lengths=s.lengths, logprobs=s.logprobs)


def compile_generate(cfg: llama.LlamaConfig, *, max_new_tokens: int, eos_ids: tuple[int, ...], pad_id: int,
                     mesh=None, param_shardings=None, hook: LogitsHook | None = None, num_samples: int = 1,
                     stop_ids: tuple[int, ...] = (), with_prefix: bool = False):
    """`jax.jit` of `generate` with the batch sharded over the mesh's data axes and params as given.

    The compiled function takes (params, tokens, mask, rng, sampling), plus the shared `prefix_tokens` [P0]
    (replicated) last when `with_prefix`.
    """
    fn = functools.partial(generate, cfg=cfg, max_new_tokens=max_new_tokens, eos_ids=tuple(eos_ids),
                           pad_id=pad_id, hook=hook, num_samples=num_samples, stop_ids=tuple(stop_ids))
    fn = lambda params, tokens, mask, rng, sampling, *prefix, _fn=fn: _fn(
        params, prompt_tokens=tokens, prompt_mask=mask, rng=rng, sampling=sampling,
        prefix_tokens=prefix[0] if prefix else None)
    if mesh is None:
        return jax.jit(fn)
    from zerogr_jax import sharding as shd
    row = shd.batch_sharding(mesh, 1)
    mat = shd.batch_sharding(mesh, 2)
    sampling_sh = SamplingParams(row, row, row, row)
    out_sh = GenerateOutput(tokens=mat, lengths=row, logprobs=row)
    in_sh = (param_shardings, mat, mat, shd.replicated(mesh), sampling_sh)
    return jax.jit(fn, in_shardings=in_sh + ((shd.replicated(mesh),) if with_prefix else ()), out_shardings=out_sh)
