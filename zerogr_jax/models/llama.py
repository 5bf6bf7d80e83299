"""Llama-family decoder in Flax linen: RMSNorm, RoPE, grouped-query attention, SwiGLU, tied/untied head, KV cache.

Why linen (not nnx): the model is used as a *pure function* of (params, inputs) everywhere — jit-compiled train,
generate and decode steps with explicit in/out shardings, Orbax checkpoints of plain dict pytrees, `nn.scan` over
layers (one compiled layer body: fast compiles, a `layers` axis on every stacked parameter), and logical axis
names attached with `nn.with_logical_partitioning`. Linen gives all of that with params as a plain nested dict and
no object state to split/merge; nnx would add a graph/state split at every jit boundary for no gain here.

Dtype policy: parameters are stored in float32; matmuls run in `cfg.dtype` (bfloat16 or float32); RMSNorm
statistics, softmax and the returned logits are float32.

Shapes: B batch, T new tokens, S cache slots, D hidden, H query heads, K kv heads, G = H // K, E head dim,
F MLP width, V vocabulary, L layers.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

Params = Any


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 8192
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    # Llama-3 style RoPE frequency scaling: (factor, low_freq_factor, high_freq_factor, original_max_position).
    rope_scaling: tuple[float, float, float, int] | None = None
    dtype: str = "float32"  # compute dtype; params stay float32

    def replace(self, **changes) -> "LlamaConfig":
        return dataclasses.replace(self, **changes)

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def num_params(self) -> int:
        d, f, e = self.hidden_size, self.intermediate_size, self.head_dim
        attn = d * e * (2 * self.num_heads + 2 * self.num_kv_heads)
        per_layer = attn + 3 * d * f + 2 * d
        head = 0 if self.tie_word_embeddings else d * self.vocab_size
        return self.vocab_size * d + self.num_layers * per_layer + d + head


@flax.struct.dataclass
class KVCache:
    # kv-head-major, [L, B, K, S, E]: attention contracts each (batch, kv head) block as it lies in memory; with
    # [L, B, S, K, E] every decode step transposed the whole cache (2.5x the step time at batch 32, 180 slots)
    k: jax.Array  # [L, B, K, S, E]
    v: jax.Array  # [L, B, K, S, E]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]


@flax.struct.dataclass
class SharedKV:
    """Keys/values that rows read but never write, held once per group of rows instead of once per row: a prompt
    prefix every row shares (b = 1), or a prompt its `num_samples` rows share (b = prompts). Row r of a batch of B
    reads group r // (B // b), so a group's rows are consecutive. It sits before the rows' own cache in position
    order, so every new token sees all of its real slots.

    Why: in sampling, a cache of prompt + new slots per row is mostly copies of the same prompt; every decode step
    reads all of it (at 32 rows x 544 slots, 0.8 GB per step in float32), and the per-row attention contractions
    are matrix-vector products. Held once per group, the same keys are read once and contracted as one matrix
    product for the group's rows.
    """

    k: jax.Array  # [L, b, K, S, E]
    v: jax.Array  # [L, b, K, S, E]
    mask: jax.Array  # [b, S] bool, real (not padding) slots


def init_cache(cfg: LlamaConfig, batch: int, max_len: int, dtype=None) -> KVCache:
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim)
    dtype = dtype or cfg.compute_dtype
    return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))


CACHE_LOGICAL_AXES = ("layers", "batch", "kv", "length", "head_dim")


def rope_inv_freq(cfg: LlamaConfig) -> jax.Array:
    """Inverse RoPE frequencies [E/2], with optional Llama-3 scaling (as in HF `_compute_llama3_parameters`)."""
    e = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, e, 2, dtype=jnp.float32) / e))
    if cfg.rope_scaling is None:
        return inv
    factor, low, high, original = cfg.rope_scaling
    wavelen = 2 * math.pi / inv
    low_wavelen, high_wavelen = original / low, original / high
    scaled = jnp.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return jnp.where(is_medium, smoothed, scaled)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """HF (non-interleaved, rotate-half) rotary embedding. x: [B, T, N, E]; positions: [B, T]."""
    angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, E/2]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def _param(module: nn.Module, name: str, shape, axes, init=nn.initializers.normal(0.02)):
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, jnp.float32)


class RMSNorm(nn.Module):
    eps: float
    dtype: Any

    @nn.compact
    def __call__(self, x):
        scale = _param(self, "scale", (x.shape[-1],), ("norm",), nn.initializers.ones)
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (x32.astype(self.dtype) * scale.astype(self.dtype)).astype(self.dtype)


class Attention(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x, positions, cache, layer, cache_index, kv_mask, shared=()):
        """cache: None, or the whole stack's (k, v), each [L, B, K, S, E]: this layer's slot range is written in
        place (a carry of the layer scan, so XLA updates it without copying the stack every step).
        shared: `SharedKV` segments (whole stacks) the new tokens also attend to, all of their real slots."""
        cfg, dt = self.cfg, self.cfg.compute_dtype
        d, h, k, e = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        wq = _param(self, "q", (d, h, e), ("embed", "heads", "head_dim"))
        wk = _param(self, "k", (d, k, e), ("embed", "kv", "head_dim"))
        wv = _param(self, "v", (d, k, e), ("embed", "kv", "head_dim"))
        wo = _param(self, "o", (h, e, d), ("heads", "head_dim", "embed"))
        x = x.astype(dt)
        q = jnp.einsum("btd,dhe->bthe", x, wq.astype(dt))  # [B, T, H, E]
        kn = jnp.einsum("btd,dke->btke", x, wk.astype(dt))  # [B, T, K, E]
        vn = jnp.einsum("btd,dke->btke", x, wv.astype(dt))
        inv_freq = rope_inv_freq(cfg)
        q, kn = apply_rope(q, positions, inv_freq), apply_rope(kn, positions, inv_freq)

        t = x.shape[1]
        kn, vn = kn.transpose(0, 2, 1, 3), vn.transpose(0, 2, 1, 3)  # [B, K, T, E]
        if cache is None:  # training / scoring: attend within the T tokens
            keys, values, new_cache, start = kn, vn, None, 0
        else:
            ck, cv = cache
            kn, vn = kn.astype(ck.dtype), vn.astype(cv.dtype)
            # write first, then read the layer back: a read before the in-place write would make XLA copy the stack
            if cache_index.ndim:  # [B] one slot per row (T = 1): rows at different depths, one scatter per layer
                rows = jnp.arange(kn.shape[0])
                ck = ck.at[layer, rows, :, cache_index, :].set(kn[:, :, 0, :])
                cv = cv.at[layer, rows, :, cache_index, :].set(vn[:, :, 0, :])
            else:
                ck = jax.lax.dynamic_update_slice(ck, kn[None], (layer, 0, 0, cache_index, 0))
                cv = jax.lax.dynamic_update_slice(cv, vn[None], (layer, 0, 0, cache_index, 0))
            keys = jax.lax.dynamic_index_in_dim(ck, layer, 0, keepdims=False)  # [B, K, S, E]
            values = jax.lax.dynamic_index_in_dim(cv, layer, 0, keepdims=False)
            new_cache, start = (ck, cv), cache_index
        s = keys.shape[2]
        # causal over slots: query t sits at slot start + t and sees slots <= that, if they are real tokens
        at = jnp.reshape(start, (-1, 1)) + jnp.arange(t)[None, :]  # [1 or B, T]
        visible = jnp.arange(s)[None, None, :] <= at[:, :, None]  # [1 or B, T, S]
        # kv_mask [B, S]: the real slots; [B, T, S]: the slots each new token sees (tree attention over packed
        # docid prefixes, `retrieval/tree_rows.py`), still within the causal order
        mask = visible & (kv_mask[:, None, :] if kv_mask.ndim == 2 else kv_mask)  # [B, T, S]

        bsz, g, low = x.shape[0], h // k, jnp.finfo(jnp.float32).min
        q = q.reshape(bsz, t, k, g, e)  # [B, T, K, G, E]
        scores = jnp.einsum("btkge,bkse->bkgts", q, keys.astype(dt)).astype(jnp.float32) / math.sqrt(e)
        scores = [jnp.where(mask[:, None, None], scores, low)]
        seg_values = []
        for seg in shared:  # each group's keys contract with all of its rows' queries at once
            sk = jax.lax.dynamic_index_in_dim(seg.k, layer, 0, keepdims=False).astype(dt)  # [b, K, S', E]
            seg_values.append(jax.lax.dynamic_index_in_dim(seg.v, layer, 0, keepdims=False).astype(dt))
            b = sk.shape[0]
            sc = jnp.einsum("brtkge,bkse->brkgts", q.reshape(b, bsz // b, t, k, g, e), sk).astype(jnp.float32)
            sc = jnp.where(seg.mask[:, None, None, None, None], sc / math.sqrt(e), low)
            scores.insert(len(scores) - 1, sc.reshape(bsz, k, g, t, -1))  # position order: segments, then own
        probs = jax.nn.softmax(jnp.concatenate(scores, axis=-1), axis=-1).astype(dt)
        out = jnp.einsum("bkgts,bkse->btkge", probs[..., probs.shape[-1] - s:], values.astype(dt))
        start_slot = 0
        for sv in seg_values:
            b, width = sv.shape[0], sv.shape[2]
            part = probs[..., start_slot:start_slot + width].reshape(b, bsz // b, k, g, t, width)
            out = out + jnp.einsum("brkgts,bkse->brtkge", part, sv).reshape(bsz, t, k, g, e)
            start_slot += width
        out = out.reshape(bsz, t, h, e)
        return jnp.einsum("bthe,hed->btd", out, wo.astype(dt)), new_cache


class MLP(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, x):
        cfg, dt = self.cfg, self.cfg.compute_dtype
        gate = _param(self, "gate", (cfg.hidden_size, cfg.intermediate_size), ("embed", "mlp"))
        up = _param(self, "up", (cfg.hidden_size, cfg.intermediate_size), ("embed", "mlp"))
        down = _param(self, "down", (cfg.intermediate_size, cfg.hidden_size), ("mlp", "embed"))
        x = x.astype(dt)
        hidden = jax.nn.silu(x @ gate.astype(dt)) * (x @ up.astype(dt))
        return hidden @ down.astype(dt)


class DecoderLayer(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, carry, layer, positions, cache_index, kv_mask, shared=()):
        """carry = (hidden [B, T, D], None or the whole stack's (k, v) cache); layer = this layer's index."""
        cfg = self.cfg
        x, cache = carry
        h, cache = Attention(cfg, name="attn")(
            RMSNorm(cfg.rms_norm_eps, cfg.compute_dtype, name="attn_norm")(x), positions, cache, layer,
            cache_index, kv_mask, shared)
        x = x + h.astype(x.dtype)
        x = x + MLP(cfg, name="mlp")(RMSNorm(cfg.rms_norm_eps, cfg.compute_dtype, name="mlp_norm")(x)).astype(x.dtype)
        return (x, cache), None


def layer_stack(cfg: LlamaConfig, name: str = "layers") -> nn.Module:
    """The decoder layers as one `nn.scan` (params stacked on a leading "layers" axis); call it with
    `apply_layer_stack`. Used by `Llama` and by the training forward's split stacks."""
    return nn.scan(
        DecoderLayer,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
        length=cfg.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )(cfg, name=name)


def apply_layer_stack(stack: nn.Module, cfg: LlamaConfig, x, cache, positions, cache_index, kv_mask, shared=()):
    """(hidden states, updated (k, v) cache or None): the cache rides in the scan carry, so each layer updates its
    slots in place instead of the scan re-stacking the whole cache as an output every call."""
    (x, cache), _ = stack((x, cache), jnp.arange(cfg.num_layers, dtype=jnp.int32), positions, cache_index, kv_mask,
                          tuple(shared))
    return x, cache


class Llama(nn.Module):
    cfg: LlamaConfig

    @nn.compact
    def __call__(self, tokens, positions, cache: KVCache | None, cache_index, kv_mask, return_hidden=False,
                 shared=()):
        cfg = self.cfg
        embedding = _param(self, "embedding", (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"))
        x = jnp.take(embedding, tokens, axis=0).astype(cfg.compute_dtype)  # [B, T, D]
        layer_caches = None if cache is None else (cache.k, cache.v)
        x, new_caches = apply_layer_stack(layer_stack(cfg), cfg, x, layer_caches, positions, cache_index, kv_mask,
                                          shared)
        x = RMSNorm(cfg.rms_norm_eps, cfg.compute_dtype, name="final_norm")(x)
        if return_hidden:
            logits = x
        elif cfg.tie_word_embeddings:
            logits = jnp.einsum("btd,vd->btv", x, embedding.astype(x.dtype))
        else:
            head = _param(self, "lm_head", (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"))
            logits = x @ head.astype(x.dtype)
        new_cache = None if cache is None else KVCache(k=new_caches[0], v=new_caches[1])
        return logits.astype(jnp.float32), new_cache


def _dummy_inputs(cfg: LlamaConfig):
    tokens = jnp.zeros((1, 1), jnp.int32)
    return tokens, tokens, None, 0, jnp.ones((1, 1), bool)


def _boxed_init(cfg: LlamaConfig, rng):
    return Llama(cfg).init(rng, *_dummy_inputs(cfg))["params"]


def param_logical_axes(cfg: LlamaConfig) -> Params:
    """Pytree (same structure as params) of logical-axis-name tuples."""
    boxed = jax.eval_shape(functools.partial(_boxed_init, cfg), jax.random.key(0))
    return nn.get_partition_spec(boxed)  # PartitionSpec of logical names, a tuple subclass


def abstract_params(cfg: LlamaConfig) -> Params:
    """ShapeDtypeStructs of the params, without allocating anything."""
    return nn.unbox(jax.eval_shape(functools.partial(_boxed_init, cfg), jax.random.key(0)))


def init_params(cfg: LlamaConfig, rng: jax.Array, shardings: Params | None = None) -> Params:
    """Random init; with `shardings` (from `sharding.tree_shardings`), each device only builds its own shards."""
    fn = lambda r: nn.unbox(_boxed_init(cfg, r))
    return jax.jit(fn, out_shardings=shardings)(rng)


def forward(params: Params, cfg: LlamaConfig, tokens: jax.Array, positions: jax.Array,
            cache: KVCache | None = None, cache_index: jax.Array | int = 0,
            kv_mask: jax.Array | None = None, return_hidden: bool = False,
            shared: tuple[SharedKV, ...] = ()) -> tuple[jax.Array, KVCache | None]:
    """Logits [B, T, V] float32 (or final hidden states [B, T, D] with `return_hidden`) and the updated cache.

    `shared`: read-only `SharedKV` segments ahead of the cache (their positions come before the new tokens'); each
    segment's b must divide B. See docs/CONTRACTS.md for the cache/mask semantics.
    """
    if kv_mask is None:
        s = tokens.shape[1] if cache is None else cache.max_len
        kv_mask = jnp.ones((tokens.shape[0], s), bool)
    cache_index = jnp.asarray(cache_index, jnp.int32)
    return Llama(cfg).apply({"params": params}, tokens, positions, cache, cache_index, kv_mask, return_hidden,
                            tuple(shared))


def lm_head(params: Params, cfg: LlamaConfig, hidden: jax.Array) -> jax.Array:
    """Logits (float32) of final hidden states [..., D] (from `forward(..., return_hidden=True)`): lets a caller
    pay for the vocabulary matmul only at the positions it needs (a prompt's last token)."""
    return jnp.einsum("...d,vd->...v", hidden, head_rows(params, cfg).astype(hidden.dtype)).astype(jnp.float32)


def head_rows(params: Params, cfg: LlamaConfig) -> jax.Array:
    """The output head as [V, D] rows: the tied embedding, or the untied head transposed."""
    return params["embedding"] if cfg.tie_word_embeddings else params["lm_head"].T


def truncate_layers(params: Params, cfg: LlamaConfig, num_layers: int) -> tuple[Params, LlamaConfig]:
    """Keeps the first `num_layers` decoder layers (a cheaper retriever for CPU runs; the final norm and head stay)."""
    if not 0 < num_layers <= cfg.num_layers:
        raise ValueError(f"num_layers must be in 1..{cfg.num_layers}, got {num_layers}")
    layers = jax.tree.map(lambda a: a[:num_layers], params["layers"])
    return {**params, "layers": layers}, cfg.replace(num_layers=num_layers)
