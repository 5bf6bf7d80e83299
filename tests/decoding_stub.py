"""A cache-using stub decoder for decoding tests: logits = table[hash of every visible (token, position)] so they
depend on the whole prefix, and a cache bug (stale slot visible, prompt slot lost) changes them."""

from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np

ROWS = 257  # logits table rows


@flax.struct.dataclass
class StubCache:
    tokens: jax.Array  # [B, S] int32
    positions: jax.Array  # [B, S] int32


def _mix(tokens, positions, xp):
    t = (tokens.astype(xp.uint32) + xp.uint32(1)) * xp.uint32(0x9E3779B1)
    p = (positions.astype(xp.uint32) + xp.uint32(1)) * xp.uint32(0x85EBCA6B)
    m = t ^ p
    m = m ^ (m >> xp.uint32(15))
    return m * xp.uint32(0x2C1B3C6D)


def stub_params(vocab_size: int, seed: int = 0, scale: float = 3.0) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(0, scale, (ROWS, vocab_size)).astype(np.float32))


@dataclasses.dataclass(frozen=True)
class HashStubModel:
    def _logits(self, table, tokens, positions, visible):
        h = jnp.sum(jnp.where(visible, _mix(tokens, positions, jnp), jnp.uint32(0)), axis=-1, dtype=jnp.uint32)
        return table[(h % jnp.uint32(ROWS)).astype(jnp.int32)]

    def prefill(self, params, tokens, mask, cache_len):
        b, p = tokens.shape
        positions = jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)
        pad = ((0, 0), (0, cache_len - p))
        cache = StubCache(jnp.pad(tokens, pad), jnp.pad(positions, pad))
        logits = self._logits(params, tokens, positions, mask)
        return logits, cache, positions[:, -1] + 1

    def step(self, params, cache, tokens, positions, cache_index, kv_mask):
        b = tokens.shape[0]
        slot = jnp.broadcast_to(cache_index, (b,))  # a scalar, or one slot per row
        rows = jnp.arange(b)
        cache = StubCache(cache.tokens.at[rows, slot].set(tokens[:, 0]),
                          cache.positions.at[rows, slot].set(positions[:, 0]))
        visible = kv_mask & (jnp.arange(cache.tokens.shape[1])[None, :] <= slot[:, None])
        return self._logits(params, cache.tokens, cache.positions, visible), cache

    def select_rows(self, cache, rows):
        return jax.tree.map(lambda x: x[rows], cache)

    @staticmethod
    def full_logits(table: np.ndarray, sequence) -> np.ndarray:
        """The same logits from the whole sequence, no cache (positions 0..n-1)."""
        seq = np.asarray(sequence, np.int64)
        with np.errstate(over="ignore"):
            h = np.sum(_mix(seq, np.arange(len(seq)), np), dtype=np.uint32)
        return np.asarray(table)[int(h % np.uint32(ROWS))]
