"""Trie-constrained docid decoding: reverse annealing (ZeroGR), greedy, fixed temperature, nucleus, beam search.

Everything for a batch of queries runs in ONE compiled program. For the sampling strategies, an outer
`lax.while_loop` runs the K iterations (one complete docid each) and an inner one the tokens of a docid.
The prompt's KV cache is computed once per query; every iteration writes its docid tokens into the same slots
after the prompt (`[P, P + L - 1)`), so nothing is copied between iterations: positions restart at each
iteration and `kv_mask` marks only the prompt's real tokens plus the current docid prefix.

Removal ("each docid at most once per query"): a child c of the current node is allowed iff
`count[c] - removed[b, c] > 0`, where removed[b, c] = number of docids already produced for query b below c.
We keep the produced *paths* `[B, K, L]` (node ids) instead of a dense `removed [B, num_nodes]` array: at depth j
the only children that can be exhausted are the depth-j nodes of earlier paths that pass through the current
node, so removed counts come from a [K, K] comparison per row. That is O(B*K*L) memory instead of O(B*N)
(B=32 on a 1.85M-node trie would be 237 MB of scatter target), and it is what the bitmask path needs anyway:
a high-fan-out node's bitmask row cannot hold per-query removals, but "which of its children are exhausted" is
at most K tokens, scattered off the mask.

Log-probability of a docid = sum over its tokens of log_softmax(logits masked to the allowed children) at
temperature 1, i.e. the model's probability of the docid under the constraint (and the removals) at the moment
it was produced, independent of the sampling temperature or nucleus used to pick it.

Determined docids end early (`finish_determined`, on by default): once a docid reaches a node with one docid below
it, every further token is the only child's, with probability 1 and log-probability exactly 0 under the constraint
at any temperature, so the loop writes the rest of the path without model steps. Only the tokens through a docid's
last branching node are drawn: on average 2.9 of 19.5 over scifact's title docids, the first from the prompt's logits.

PRNG stream (shared with the plain-Python oracle `tests/decoding_reference.py`): query b uses
key_b = fold_in(rng, b); iteration i, token j
draws with fold_in(fold_in(key_b, i), j) via `jax.random.categorical(key, masked_logits / t_i)` (after the
nucleus filter when top_p < 1); t_i == 0 is argmax. A query's docids do not depend on the other queries in the
batch, nor on how the batch is sharded. That draw is computed over the node's children only where they fit the trie's
gather width (`_choose`: the Gumbel numbers of those tokens, `sampling.categorical_at`), which gives the same token as
the draw over the masked vocabulary at a fraction of its cost.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Protocol, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from zerogr_jax import sampling
from zerogr_jax.sampling import NEG_INF, nucleus_filter
from zerogr_jax.retrieval.trie import Trie


# ----------------------------------------------------------------------------------------------------------------
# The model interface
# ----------------------------------------------------------------------------------------------------------------
class StepModel(Protocol):
    """A decoder as pure functions of (params, ...). Implementations must be hashable (frozen dataclasses):
    they are static arguments of the compiled decoders."""

    def prefill(self, params, tokens: jax.Array, mask: jax.Array, cache_len: int
                ) -> tuple[jax.Array, Any, jax.Array]:
        """Left-padded prompt tokens/mask [B, P] -> (next-token logits [B, V] f32, cache of cache_len slots with
        the prompt at slots [0, P), next RoPE position [B] int32)."""

    def step(self, params, cache, tokens: jax.Array, positions: jax.Array, cache_index: jax.Array,
             kv_mask: jax.Array) -> tuple[jax.Array, Any]:
        """tokens/positions [B, 1] written at slot cache_index (traced int32: a scalar, or [B], one slot per row);
        kv_mask [B, S] marks the visible slots (True at the new one). Returns (logits [B, V] f32, cache)."""

    def select_rows(self, cache, rows: jax.Array) -> Any:
        """The cache restricted/repeated to batch rows `rows` [B'] (beam search)."""


@dataclasses.dataclass(frozen=True)
class LlamaStepModel:
    """`StepModel` over `zerogr_jax.models.llama` (see docs/CONTRACTS.md): one cache per row, the prompt at slots
    [0, P). Subclasses change the output head (`head`), where the model's params sit (`model_params`) and what a
    fed-back token id means (`vocab_ids`); prefill and step are written once here."""

    cfg: Any  # llama.LlamaConfig

    def model_params(self, params):
        return params

    def head(self, params, hidden: jax.Array) -> jax.Array:  # hidden [B, D] -> logits [B, V] float32
        from zerogr_jax.models import llama

        return llama.lm_head(params, self.cfg, hidden)

    def vocab_ids(self, params, tokens: jax.Array) -> jax.Array:  # decoder token ids -> the model's vocabulary ids
        return tokens

    def prefill(self, params, tokens, mask, cache_len):
        from zerogr_jax import generation
        from zerogr_jax.models import llama

        b, p = tokens.shape
        kv_mask = jnp.concatenate([mask, jnp.ones((b, cache_len - p), bool)], axis=1)
        positions = generation.prompt_positions(mask)
        hidden, cache = llama.forward(self.model_params(params), self.cfg, tokens, positions,
                                      llama.init_cache(self.cfg, b, cache_len), 0, kv_mask, return_hidden=True)
        return self.head(params, hidden[:, -1]), cache, positions[:, -1] + 1  # the head at the last position only

    def step(self, params, cache, tokens, positions, cache_index, kv_mask):
        from zerogr_jax.models import llama

        hidden, cache = llama.forward(self.model_params(params), self.cfg, self.vocab_ids(params, tokens),
                                      positions, cache, cache_index, kv_mask, return_hidden=True)
        return self.head(params, hidden[:, 0]), cache

    def select_rows(self, cache, rows):
        return jax.tree.map(lambda x: x[:, rows], cache)  # KVCache leaves are [L, B, K, S, E]


# ----------------------------------------------------------------------------------------------------------------
# Trie operations on device (R = rows: queries, or queries x beams)
# ----------------------------------------------------------------------------------------------------------------
def gathered_children(trie: Trie, node: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[R] node ids -> (child node ids [R, W], valid [R, W]): the first W children of each node, in token order (the
    trie stores siblings sorted by token); ids past a node's last child are clipped into range and not valid. A node
    with fan-out > W has more children than these (its bitmask row holds them all)."""
    start, stop = trie.child_start[node], trie.child_start[node + 1]  # [R]
    ids = start[:, None] + jnp.arange(trie.width)  # [R, W]
    return jnp.minimum(ids, trie.num_nodes - 1), ids < stop[:, None]


def children_mask(trie: Trie, node: jax.Array) -> jax.Array:
    """[R] node ids -> [R, V] bool, the tokens that have a child. Fixed-width gather of W children, replaced by
    the node's bitmask row where its fan-out exceeds W."""
    r, v = node.shape[0], trie.vocab_size
    ids, valid = gathered_children(trie, node)
    tok = jnp.where(valid, trie.node_token[ids], v)  # v = out of range: dropped
    mask = jnp.zeros((r, v), bool).at[jnp.arange(r)[:, None], tok].set(True, mode="drop")
    if trie.bitmask.shape[0]:
        row = trie.bitmask_row[node]  # [R]
        words = trie.bitmask[jnp.maximum(row, 0)]  # [R, ceil(V / 32)]
        bits = (words[:, :, None] >> jnp.arange(32, dtype=jnp.uint32)) & 1  # [R, V/32, 32], bit t%32 of word t//32
        bits = bits.reshape(r, -1)[:, :v].astype(bool)
        mask = jnp.where(row[:, None] >= 0, bits, mask)
    return mask


def _exhausted(trie: Trie, node: jax.Array, paths: jax.Array, depth: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(cand, exhausted), each [R, K]: the depth-`depth` node of each produced docid (-1 = none) and whether it is a
    child of `node` whose docids were all produced already (`remove_exhausted`)."""
    r, k = paths.shape[:2]
    depth = jnp.broadcast_to(depth, (r,))  # a scalar, or one depth per row (rows advancing independently)
    at = lambda d: jnp.take_along_axis(paths, jnp.broadcast_to(d[:, None, None], (r, k, 1)), axis=2)[..., 0]  # noqa
    cand = at(depth)  # [R, K] depth-`depth` node of each produced docid
    prev = jnp.where(depth[:, None] > 0, at(jnp.maximum(depth - 1, 0)), 0)  # [R, K] its parent (root at depth 0)
    through = (cand >= 0) & (prev == node[:, None])  # [R, K] produced docid passes through `node`
    same = (cand[:, :, None] == cand[:, None, :]) & through[:, None, :]  # [R, K, K]
    removed = same.sum(-1)  # [R, K] produced docids below cand
    return cand, through & (removed >= trie.count[jnp.maximum(cand, 0)])


def remove_exhausted(trie: Trie, mask: jax.Array, node: jax.Array, paths: jax.Array, depth: jax.Array
                     ) -> jax.Array:
    """Clears, per row, the tokens of children of `node` whose docids were all produced already.

    paths [R, K, L]: node ids of the produced docids (-1 = not produced); the children sit at index `depth` (a
    scalar, or [R]).
    """
    r = paths.shape[0]
    cand, exhausted = _exhausted(trie, node, paths, depth)
    tok = jnp.where(exhausted, trie.node_token[jnp.maximum(cand, 0)], trie.vocab_size)
    return mask.at[jnp.arange(r)[:, None], tok].set(False, mode="drop")


def child_by_token(trie: Trie, node: jax.Array, token: jax.Array) -> jax.Array:
    """[R] child of `node` on edge `token` (binary search over the sorted sibling range; undefined if absent)."""
    lo, hi = trie.child_start[node], trie.child_start[node + 1]
    for _ in range(trie.search_steps):  # lower bound; a fixed, static number of halvings
        mid = (lo + hi) // 2
        less = trie.node_token[jnp.minimum(mid, trie.num_nodes - 1)] < token
        open_ = lo < hi
        lo = jnp.where(open_ & less, mid + 1, lo)
        hi = jnp.where(open_ & ~less, mid, hi)
    return jnp.minimum(lo, trie.num_nodes - 1)


def finish_determined(trie: Trie, paths: jax.Array, i, j, child: jax.Array, live: jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
    """(end node [R], paths): rows `live` whose new node `child` (at depth `j`, a scalar or [R]; iteration `i`,
    likewise) has one docid below it are walked down to that docid's leaf, writing the chain at depths j + 1, ... of
    paths [R, K, L]. Below such a node every node has one child, so under the constraint each further token has
    probability 1 (masked log-softmax exactly 0) at any temperature: the docid, its log-probability and its path are
    those of drawing the tokens one model step each, and those steps are skipped. On scifact's title trie a docid
    of 19.5 tokens is determined after 2.9 on average (BENCHMARKS.md). Other rows return `child` unchanged."""
    r, depth = child.shape[0], paths.shape[2]
    rows = jnp.arange(r)
    walk = live & (trie.count[child] == 1)

    def down(carry):
        t, node, paths = carry
        go = walk & (trie.node_docid[node] < 0)
        below = jnp.where(go, trie.child_start[node], node)  # a node with one docid below has one child
        at = jnp.minimum(j + t, depth - 1)
        return t + 1, below, paths.at[rows, i, at].set(jnp.where(go, below, paths[rows, i, at]))

    def more(carry):
        return jnp.any(walk & (trie.node_docid[carry[1]] < 0))

    _, node, paths = jax.lax.while_loop(more, down, (jnp.ones((), jnp.int32), child, paths))
    return node, paths


# ----------------------------------------------------------------------------------------------------------------
# Temperature schedules and strategies
# ----------------------------------------------------------------------------------------------------------------
def reverse_annealing_temperatures(num_docids: int, t_max: float = 1.5, sigmoid_k: float = 10.0, m: float = 0.1
                                   ) -> np.ndarray:
    """t_i = T_max (s(k (i/K - m)) - s(-k m)) / (s(k (1 - m)) - s(-k m)), s = logistic, k = `sigmoid_k` (the
    paper's steepness; K = `num_docids`, the one name for the docids per query); t_0 = 0 (greedy). Returns [K]
    float32."""
    s = lambda x: 1.0 / (1.0 + np.exp(-x))
    k = sigmoid_k
    i = np.arange(num_docids, dtype=np.float64)
    t = t_max * (s(k * (i / num_docids - m)) - s(-k * m)) / (s(k * (1 - m)) - s(-k * m))
    return np.maximum(t, 0.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ReverseAnnealing:
    """ZeroGR: iteration i samples at t_i rising from 0 (greedy) towards t_max, docid removed after each."""

    t_max: float = 1.5
    sigmoid_k: float = 10.0
    m: float = 0.1

    def temperatures(self, num_docids: int) -> np.ndarray:
        return reverse_annealing_temperatures(num_docids, self.t_max, self.sigmoid_k, self.m)


@dataclasses.dataclass(frozen=True)
class Greedy:
    """Argmax at every iteration, with removal: the K docids are the successive greedy paths."""

    def temperatures(self, num_docids: int) -> np.ndarray:
        return np.zeros(num_docids, np.float32)


@dataclasses.dataclass(frozen=True)
class FixedTemperature:
    temperature: float = 1.0

    def temperatures(self, num_docids: int) -> np.ndarray:
        return np.full(num_docids, self.temperature, np.float32)


@dataclasses.dataclass(frozen=True)
class Nucleus:
    """Top-p sampling over the allowed children at a fixed temperature, with removal."""

    top_p: float = 0.9
    temperature: float = 1.0

    def temperatures(self, num_docids: int) -> np.ndarray:
        return np.full(num_docids, self.temperature, np.float32)


@dataclasses.dataclass(frozen=True)
class BeamSearch:
    """Constrained beam search; finished (EOS) hypotheses are complete docids; the K most probable returned.

    `width` beams (0: K). A width above K trades compute for fewer pruning errors: the K returned are then the
    best K of a wider search, and with width >= the number of docids the search is exhaustive — every docid scored
    exactly by its constrained log-probability."""

    width: int = 0

    def num_beams(self, num_docids: int) -> int:
        return max(num_docids, self.width)


Strategy = Union[ReverseAnnealing, Greedy, FixedTemperature, Nucleus, BeamSearch]


@flax.struct.dataclass
class DocidRanking:
    docids: jax.Array  # [B, K] int32 docid indices in rank order, -1 padding
    logprobs: jax.Array  # [B, K] float32 constrained log-probability at temperature 1, -inf at padding
    tokens: jax.Array  # [B, K, L] int32 docid tokens (EOS included), -1 padding
    fed_tokens: Any = None  # [B] int32 docid tokens the model fed per row (rows advancing independently only)


# ----------------------------------------------------------------------------------------------------------------
# Sampling with removal (reverse annealing, greedy, fixed temperature, nucleus)
# ----------------------------------------------------------------------------------------------------------------
def sample_tokens(keys: jax.Array, masked: jax.Array, temperature: jax.Array, top_p: jax.Array,
                  use_top_p: bool, categorical=jax.vmap(jax.random.categorical)) -> jax.Array:
    """[R] indices into masked logits [R, V]: argmax if temperature == 0, else categorical(key_r, masked / t).

    `temperature`: a scalar, or [R] (rows at different iterations): then each row is drawn at its own temperature,
    the same numbers as a scalar call would give that row. `categorical(keys, scaled)` -> [R] draws the rows
    (`_choose_children` passes the draw over a node's children, `sampling.categorical_at`)."""
    if jnp.ndim(temperature):
        t = temperature[:, None]
        scaled = masked / jnp.where(t > 0, t, 1.0)
        if use_top_p:
            scaled = nucleus_filter(scaled, top_p)
        drawn = categorical(keys, scaled)
        return jnp.where(temperature > 0, drawn, jnp.argmax(masked, axis=-1)).astype(jnp.int32)

    def draw(masked):
        scaled = masked / temperature
        if use_top_p:
            scaled = nucleus_filter(scaled, top_p)
        return categorical(keys, scaled)

    return jax.lax.cond(temperature > 0, draw, lambda x: jnp.argmax(x, axis=-1), masked).astype(jnp.int32)


def _choose(trie: Trie, row_keys: jax.Array, logits: jax.Array, node: jax.Array, paths: jax.Array, i, j,
            temperature, top_p, use_top_p: bool, live: jax.Array | None = None, dense_draws: bool = False):
    """One constrained draw per row from logits [B, V] at node [B]: (token, its log-probability at temperature 1,
    the child it leads to), each [B]. i, j (iteration and depth) and temperature: scalars, or [B] for rows at
    different iterations; row b draws with fold_in(fold_in(key_b, i_b), j_b) either way. `live` [B]: the rows whose
    draw is used (the others' outputs are unspecified); None = every row.

    A row at a node whose children fit the trie's gather width W draws among those W only (`_choose_children`: W
    Gumbel numbers instead of V, and a log-softmax over W); rows at the few wider nodes (the root, mostly) draw over
    the vocabulary, a fixed-size group of rows at a time (`_choose_wide`). Both give the token and child that
    `jax.random.categorical` over the masked vocabulary gives, so the docids are those of the dense draw
    (`_choose_dense`, which nucleus sampling keeps); the log-probability agrees up to float rounding (a sum over W
    instead of V terms, the others exactly 0). `dense_draws` forces the dense draw everywhere (benchmarks)."""
    b = node.shape[0]
    keys = jax.vmap(lambda key, i, j: jax.random.fold_in(jax.random.fold_in(key, i), j))(
        row_keys, jnp.broadcast_to(i, (b,)), jnp.broadcast_to(j, (b,)))
    if dense_draws or use_top_p or not sampling.sparse_draws_match_jax():
        return _choose_dense(trie, keys, logits, node, paths, j, temperature, top_p, use_top_p)
    drawn = _choose_children(trie, keys, logits, node, paths, j, temperature)
    if not trie.bitmask.shape[0]:  # no node is wider than the gather (static)
        return drawn
    wide = trie.bitmask_row[node] >= 0
    return _choose_wide(trie, keys, logits, node, paths, j, temperature, wide if live is None else wide & live,
                        drawn)


def _choose_dense(trie: Trie, keys, logits, node, paths, j, temperature, top_p, use_top_p: bool):
    """`_choose` over the whole vocabulary: the masked logits [B, V], then `jax.random.categorical` (V Gumbel
    numbers per row) and a log-softmax over V."""
    allowed = remove_exhausted(trie, children_mask(trie, node), node, paths, j)  # [B, V]
    masked = jnp.where(allowed, logits, NEG_INF)
    token = sample_tokens(keys, masked, temperature, top_p, use_top_p)
    logp = jnp.take_along_axis(jax.nn.log_softmax(masked, axis=-1), token[:, None], axis=-1)[:, 0]
    return token, logp, child_by_token(trie, node, token)


def _choose_children(trie: Trie, keys, logits, node, paths, j, temperature):
    """`_choose` among the first W children of each row's node (all of them unless the node is wide): [B, W] logits
    gathered at the children's tokens (ascending, as the trie stores siblings), exhausted children masked, and
    `sampling.categorical_at` at those tokens — the draw `jax.random.categorical` makes over the vocabulary."""
    b = node.shape[0]
    child, valid = gathered_children(trie, node)  # [B, W]
    tok = jnp.where(valid, trie.node_token[child], 0)
    cand, exhausted = _exhausted(trie, node, paths, j)  # [B, K]
    gone = jnp.any((cand[:, None, :] == child[:, :, None]) & exhausted[:, None, :], axis=-1)  # [B, W]
    masked = jnp.where(valid & ~gone, jnp.take_along_axis(logits, tok, axis=1), NEG_INF)  # [B, W]
    pos = sample_tokens(keys, masked, temperature, None, False,
                        categorical=lambda keys, scaled: sampling.categorical_at(keys, scaled, tok))
    rows = jnp.arange(b)
    logp = jax.nn.log_softmax(masked, axis=-1)[rows, pos]
    return tok[rows, pos], logp, child[rows, pos]


def _choose_wide(trie: Trie, keys, logits, node, paths, j, temperature, wide, drawn):
    """`drawn` (token, logp, child: `_choose_children`'s [B] answers) with the rows `wide` [B] redrawn over the
    vocabulary (`_choose_dense`), G = max(8, B / 8) rows per pass, as many passes as there are groups of wide
    rows: a batch pays the vocabulary's cost only for the rows at wide nodes."""
    b = node.shape[0]
    g = min(b, max(8, b // 8))
    per_row = lambda x, take: x[take] if jnp.ndim(x) else x  # noqa: E731 (scalars are shared by every row)

    def group(carry):
        token, logp, child, todo = carry
        take = jnp.nonzero(todo, size=g, fill_value=-1)[0]
        take = jnp.where(take >= 0, take, take[0])  # short groups repeat a row: the same draw written twice
        got = _choose_dense(trie, keys[take], logits[take], node[take], paths[take], per_row(j, take),
                            per_row(temperature, take), None, False)
        return (token.at[take].set(got[0]), logp.at[take].set(got[1]), child.at[take].set(got[2]),
                todo.at[take].set(False))

    token, logp, child, _ = jax.lax.while_loop(lambda c: jnp.any(c[3]), group, (*drawn, wide))
    return token, logp, child


@flax.struct.dataclass
class _Docid:
    """State of the inner (per-token) loop of one iteration, for all queries."""

    j: jax.Array  # [] tokens sampled so far
    token: jax.Array  # [B] last sampled token
    done: jax.Array  # [B] reached a leaf (or query exhausted)
    logprob: jax.Array  # [B]
    docid: jax.Array  # [B] -1 until a leaf is reached
    paths: jax.Array  # [B, K, L]
    cache: Any


@flax.struct.dataclass
class _Ranking:
    i: jax.Array  # [] iteration
    docids: jax.Array  # [B, K]
    logprobs: jax.Array  # [B, K]
    paths: jax.Array  # [B, K, L] node ids
    cache: Any


def iterative_decode(model: StepModel, params, prompt_tokens: jax.Array, prompt_mask: jax.Array,
                     row_keys: jax.Array, trie: Trie, temperatures: jax.Array, top_p: jax.Array, *,
                     num_docids: int, use_top_p: bool = False, independent_rows: bool = False,
                     reuse_prefix: bool = False, dense_draws: bool = False, skip_determined: bool = True
                     ) -> DocidRanking:
    """K = num_docids iterations, each sampling one complete docid at temperatures[i] and removing it.

    prompt_tokens/mask [B, P] left-padded; row_keys [B] PRNG keys; temperatures [K] f32; top_p [] f32.
    `independent_rows`: every row starts its next docid as soon as its last one ends (`_independent_rows`), instead
    of every iteration waiting for the batch's longest docid; the same docids either way (each row's draws depend
    only on its own iteration, depth and earlier docids). Side by side on the idle CPU (BENCHMARKS.md): 1.38x on a
    trained retriever's keyword docids with the compact head (med, K = 10, batch 30), 1.01x on the untrained model's
    scifact titles with the full vocabulary (session 13's loop). Off by default here (lockstep writes the cache with
    one dynamic slice, this loop with a per-row scatter); `SearchConfig.independent_rows` turns it on for search.
    `reuse_prefix` (rows advancing independently only) skips the model steps of the tokens a docid shares with the
    row's previous docid (`_independent_rows`); the same docids again, and 1.02x on that med retriever (2 % of the
    tokens are shared). `dense_draws`: every draw over the whole vocabulary, as before session 20 (`_choose`; the
    same docids, slower at wide batches). `skip_determined`: a docid ends as soon as its node has one docid below
    (`finish_determined`: the remaining tokens have probability 1 under the constraint, so they need no model step;
    the same docids, log-probabilities and tokens); False feeds every token, as before session 22 (benchmarks).
    Pure: jit it (see `compile_decoder`).
    """
    b, p = prompt_tokens.shape
    depth, k = trie.max_depth, num_docids
    cache_len = p + depth - 1  # the last docid token (EOS) is never fed back
    first_logits, cache, next_pos = model.prefill(params, prompt_tokens, prompt_mask, cache_len)
    if first_logits.shape[-1] != trie.vocab_size:
        raise ValueError(f"model vocabulary {first_logits.shape[-1]} != trie vocabulary {trie.vocab_size}")
    prompt_kv = jnp.concatenate([prompt_mask, jnp.zeros((b, cache_len - p), bool)], axis=1)  # [B, S]
    if reuse_prefix and not independent_rows:
        raise ValueError("reuse_prefix needs independent_rows=True (a row replays its shared prefix on its own)")
    if independent_rows:
        return _independent_rows(model, params, first_logits, cache, next_pos, prompt_kv, p, row_keys, trie,
                                 temperatures, top_p, num_docids=k, use_top_p=use_top_p, reuse_prefix=reuse_prefix,
                                 dense_draws=dense_draws, skip_determined=skip_determined)
    slots = jnp.arange(cache_len)
    rows = jnp.arange(b)

    def choose(logits, node, j, i, paths, live):
        return _choose(trie, row_keys, logits, node, paths, i, j, temperatures[i], top_p, use_top_p, live,
                       dense_draws)

    def advance(s: _Docid, token, logp, child, i) -> _Docid:
        live = ~s.done
        paths = s.paths.at[rows, i, s.j].set(jnp.where(live, child, s.paths[rows, i, s.j]))
        if skip_determined:
            child, paths = finish_determined(trie, paths, i, s.j, child, live)
        leaf = trie.node_docid[child]
        return _Docid(
            j=s.j + 1, token=token, done=s.done | (leaf >= 0), logprob=s.logprob + jnp.where(live, logp, 0.0),
            docid=jnp.where(live & (leaf >= 0), leaf, s.docid), paths=paths, cache=s.cache)

    def token_step(i, s: _Docid) -> _Docid:
        slot = p + s.j - 1  # where the previous token goes
        kv_mask = prompt_kv | ((slots >= p) & (slots <= slot))[None, :]
        logits, cache = model.step(params, s.cache, s.token[:, None], (next_pos + s.j - 1)[:, None], slot, kv_mask)
        node = jnp.maximum(s.paths[rows, i, s.j - 1], 0)  # -1 only on finished rows, whose draws are ignored
        token, logp, child = choose(logits, node, s.j, i, s.paths, ~s.done)
        return advance(s.replace(cache=cache), token, logp, child, i)

    def iteration(r: _Ranking) -> _Ranking:
        i = r.i
        exhausted = jnp.sum(r.docids >= 0, axis=1) >= trie.count[0]  # [B] every docid already produced
        s = _Docid(j=jnp.zeros((), jnp.int32), token=jnp.zeros((b,), jnp.int32), done=exhausted,
                   logprob=jnp.zeros((b,), jnp.float32), docid=jnp.full((b,), -1, jnp.int32), paths=r.paths,
                   cache=r.cache)
        token, logp, child = choose(first_logits, jnp.zeros((b,), jnp.int32), 0, i, r.paths, ~exhausted)
        s = advance(s, token, logp, child, i)
        s = jax.lax.while_loop(lambda s: (s.j < depth) & ~jnp.all(s.done), functools.partial(token_step, i), s)
        return _Ranking(i=i + 1, docids=r.docids.at[:, i].set(s.docid),
                        logprobs=r.logprobs.at[:, i].set(jnp.where(s.docid >= 0, s.logprob, NEG_INF)),
                        paths=s.paths, cache=s.cache)

    init = _Ranking(i=jnp.zeros((), jnp.int32), docids=jnp.full((b, k), -1, jnp.int32),
                    logprobs=jnp.full((b, k), NEG_INF, jnp.float32), paths=jnp.full((b, k, depth), -1, jnp.int32),
                    cache=cache)
    more = lambda r: (r.i < k) & jnp.any(jnp.sum(r.docids >= 0, axis=1) < trie.count[0])
    r = jax.lax.while_loop(more, iteration, init)
    return DocidRanking(docids=r.docids, logprobs=r.logprobs, tokens=_path_tokens(trie, r.paths))


@flax.struct.dataclass
class _Rows:
    """State of the loop in which every row advances on its own (`_independent_rows`)."""

    i: jax.Array  # [B] the row's current iteration (docids finished so far)
    j: jax.Array  # [B] tokens sampled so far of its current docid (0: its first token is still to be drawn)
    token: jax.Array  # [B] its last sampled token
    logprob: jax.Array  # [B] of its current docid so far
    match: jax.Array  # [B] its current docid's nodes so far are its previous docid's (False when j == 0)
    docids: jax.Array  # [B, K]
    logprobs: jax.Array  # [B, K]
    paths: jax.Array  # [B, K, L] node ids
    fed: jax.Array  # [B] docid tokens the model has fed for the row (its share of the model steps)
    depth_logits: Any  # [B, L, V] f32 (reuse_prefix only, else None): row b's logits for its token at depth j
    cache: Any


def _independent_rows(model: StepModel, params, first_logits, cache, next_pos, prompt_kv, p: int, row_keys,
                      trie: Trie, temperatures, top_p, *, num_docids: int, use_top_p: bool,
                      reuse_prefix: bool = False, dense_draws: bool = False, skip_determined: bool = True
                      ) -> DocidRanking:
    """`iterative_decode` with rows advancing independently: one `lax.while_loop` over model steps in which row b is
    at its own iteration i_b and depth j_b, writes its token at its own slot (`p + j_b - 1`: the cache index is [B])
    and, on reaching a leaf, records the docid and draws the first token of docid i_b + 1 from the prompt's logits
    without waiting for a model step. Steps taken = the longest row's total docid length, not the sum over
    iterations of the batch's longest docid. Draws use the same keys (fold_in(fold_in(key_b, i_b), j_b)),
    temperatures[i_b] and removals as the lockstep loop, so each row gets the docids it gets there.

    `reuse_prefix`: a docid that starts down its predecessor's path needs no model step for the shared part (the
    hope was that reverse annealing's near-greedy early iterations share long prefixes; measured, they rarely do:
    2 % of the tokens on a trained med retriever at K = 10, BENCHMARKS.md, session 18). Slot p + d of the row's
    cache still holds the KV of the shared token at depth d, and the logits the model gave after it are kept per
    row and depth (`depth_logits`, [B, L, V] f32: 3 MB per row at L = 16 and SmolLM2's 49,152 tokens), so the row
    draws those tokens again from the kept logits, with the same keys, in the loop between model steps; it takes a
    model step only from the first token where its path leaves its predecessor's. The draws see the same logits, so
    the docids are those of the loop without reuse."""
    b, k = first_logits.shape[0], num_docids
    depth, cache_len = trie.max_depth, prompt_kv.shape[1]
    slots, rows = jnp.arange(cache_len), jnp.arange(b)

    def choose(logits, node, st: _Rows, live):
        return _choose(trie, row_keys, logits, node, st.paths, st.i, st.j, temperatures[jnp.minimum(st.i, k - 1)],
                       top_p, use_top_p, live, dense_draws)

    def place(st: _Rows, live, token, logp, child) -> _Rows:  # live rows take `token` as token j_b of docid i_b
        i = jnp.minimum(st.i, k - 1)
        at = jnp.minimum(st.j, depth - 1)
        paths = st.paths.at[rows, i, at].set(jnp.where(live, child, st.paths[rows, i, at]))
        end_node = child
        # A determined docid ends here; its predecessor match cannot go on (its node is exhausted now).
        if skip_determined:
            end_node, paths = finish_determined(trie, paths, i, at, child, live)
        leaf = jnp.where(live, trie.node_docid[end_node], -1)
        logprob = jnp.where(st.j == 0, 0.0, st.logprob) + logp
        end = leaf >= 0
        followed = jnp.where(st.j == 0, st.i > 0, st.match) & (child == st.paths[rows, jnp.maximum(i - 1, 0), at])
        return _Rows(i=st.i + end, j=jnp.where(end, 0, st.j + live), token=jnp.where(live, token, st.token),
                     logprob=jnp.where(live, logprob, st.logprob),
                     match=jnp.where(live, followed & ~end, st.match),
                     docids=st.docids.at[rows, i].set(jnp.where(end, leaf, st.docids[rows, i])),
                     logprobs=st.logprobs.at[rows, i].set(jnp.where(end, logprob, st.logprobs[rows, i])),
                     paths=paths, fed=st.fed, depth_logits=st.depth_logits, cache=st.cache)

    def active(st: _Rows):  # [B] rows with docids left to find (the old loop's `exhausted` rows stop here)
        return (st.i < k) & (jnp.sum(st.docids >= 0, axis=1) < trie.count[0])

    def node_of(st: _Rows):  # [B] the node a row's next token hangs from (the root at j == 0)
        return jnp.where(st.j == 0, 0, st.paths[rows, jnp.minimum(st.i, k - 1), jnp.maximum(st.j - 1, 0)])

    def without_model(st: _Rows):  # [B] rows whose next draw needs no model step
        return active(st) & ((st.j == 0) | st.match) if reuse_prefix else active(st) & (st.j == 0)

    def draw_known(st: _Rows) -> _Rows:  # first tokens from the prompt's logits, shared ones from the kept logits
        logits = first_logits
        if reuse_prefix:
            kept = st.depth_logits[rows, jnp.minimum(st.j, depth - 1)]
            logits = jnp.where((st.j == 0)[:, None], first_logits, kept)
        live = without_model(st)
        return place(st, live, *choose(logits, node_of(st), st, live))

    def catch_up(st: _Rows) -> _Rows:
        return jax.lax.while_loop(lambda st: jnp.any(without_model(st)), draw_known, st)

    def step(st: _Rows) -> _Rows:  # every active row is mid-docid and off its predecessor's path here
        mid = active(st)
        slot = p + jnp.maximum(st.j - 1, 0)  # its previous token's slot (inactive rows write a dead slot)
        kv_mask = prompt_kv | ((slots[None, :] >= p) & (slots[None, :] <= slot[:, None]))
        logits, cache = model.step(params, st.cache, st.token[:, None], (next_pos + st.j - 1)[:, None], slot,
                                   kv_mask)
        kept = st.depth_logits
        if reuse_prefix:
            at = jnp.minimum(st.j, depth - 1)
            kept = kept.at[rows, at].set(jnp.where(mid[:, None], logits, kept[rows, at]))
        st = st.replace(cache=cache, fed=st.fed + mid, depth_logits=kept)
        return catch_up(place(st, mid, *choose(logits, node_of(st), st, mid)))

    init = _Rows(i=jnp.zeros((b,), jnp.int32), j=jnp.zeros((b,), jnp.int32), token=jnp.zeros((b,), jnp.int32),
                 logprob=jnp.zeros((b,), jnp.float32), match=jnp.zeros((b,), bool),
                 docids=jnp.full((b, k), -1, jnp.int32), logprobs=jnp.full((b, k), NEG_INF, jnp.float32),
                 paths=jnp.full((b, k, depth), -1, jnp.int32), fed=jnp.zeros((b,), jnp.int32),
                 depth_logits=jnp.zeros((b, depth, first_logits.shape[-1]), jnp.float32) if reuse_prefix else None,
                 cache=cache)
    st = jax.lax.while_loop(lambda st: jnp.any(active(st)), step, catch_up(init))
    return DocidRanking(docids=st.docids, logprobs=st.logprobs, tokens=_path_tokens(trie, st.paths), fed_tokens=st.fed)


def _path_tokens(trie: Trie, paths: jax.Array) -> jax.Array:
    return jnp.where(paths >= 0, trie.node_token[jnp.maximum(paths, 0)], -1)


# ----------------------------------------------------------------------------------------------------------------
# Constrained beam search
# ----------------------------------------------------------------------------------------------------------------
@flax.struct.dataclass
class _Beams:
    j: jax.Array  # [] tokens so far
    token: jax.Array  # [B, N] last token of each live beam
    scores: jax.Array  # [B, N] live beam log-probs (-inf = dead)
    paths: jax.Array  # [B, N, L] live beam node ids
    fin_scores: jax.Array  # [B, N] finished hypotheses, best first
    fin_paths: jax.Array  # [B, N, L]
    cache: Any  # rows = B * N


def beam_decode(model: StepModel, params, prompt_tokens: jax.Array, prompt_mask: jax.Array, trie: Trie, *,
                num_beams: int) -> DocidRanking:
    """The `num_beams` most probable complete docids found by beam search under the trie, best first.

    With num_beams >= the number of docids the search is exhaustive (every prefix stays a beam), so the output is
    the exact ranking of all docids by constrained log-probability. Finished hypotheses are distinct docids by
    construction (distinct prefixes), so no removal is needed.
    """
    b, p = prompt_tokens.shape
    n, depth, v = num_beams, trie.max_depth, trie.vocab_size
    cache_len = p + depth - 1
    first_logits, cache, next_pos = model.prefill(params, prompt_tokens, prompt_mask, cache_len)
    rep = jnp.repeat(jnp.arange(b), n)  # [B * N] query of each beam row
    cache = model.select_rows(cache, rep)
    prompt_kv = jnp.concatenate([prompt_mask, jnp.zeros((b, cache_len - p), bool)], axis=1)[rep]  # [B*N, S]
    positions = next_pos[rep]
    slots = jnp.arange(cache_len)
    qrow = jnp.arange(b)[:, None]

    def extend(s: _Beams, logits: jax.Array) -> _Beams:
        node = jnp.where(s.j > 0, s.paths[:, :, jnp.maximum(s.j - 1, 0)], 0).reshape(-1)  # [B*N]
        node = jnp.maximum(node, 0)  # dead beams (-1) score -inf whatever node they look at
        allowed = children_mask(trie, node)
        logp = jax.nn.log_softmax(jnp.where(allowed, logits, NEG_INF), axis=-1)
        logp = jnp.where(allowed, logp, NEG_INF).reshape(b, n, v)  # a row with no child would be NaN: keep -inf
        cand = s.scores[:, :, None] + logp  # [B, N, V]
        # finished hypotheses: beams extended by EOS, merged into the pool of the best N
        eos_child = child_by_token(trie, node, jnp.full_like(node, trie.eos_id)).reshape(b, n)
        eos_paths = s.paths.at[:, :, s.j].set(eos_child)
        pool_scores = jnp.concatenate([s.fin_scores, cand[:, :, trie.eos_id]], axis=1)  # [B, 2N]
        pool_paths = jnp.concatenate([s.fin_paths, eos_paths], axis=1)
        fin_scores, keep = jax.lax.top_k(pool_scores, n)
        fin_paths = pool_paths[qrow, keep]
        # live beams: best N non-EOS extensions (best N per beam first, then best N of those N*N)
        live = cand.at[:, :, trie.eos_id].set(NEG_INF)
        per_beam = min(n, v)
        top_scores, top_tokens = jax.lax.top_k(live, per_beam)  # [B, N, n']
        scores, flat = jax.lax.top_k(top_scores.reshape(b, n * per_beam), n)  # [B, N]
        parent, token = flat // per_beam, top_tokens.reshape(b, n * per_beam)[qrow, flat]
        alive = scores > NEG_INF
        parent_node = node.reshape(b, n)[qrow, parent]
        child = child_by_token(trie, parent_node.reshape(-1), token.reshape(-1)).reshape(b, n)
        paths = s.paths[qrow, parent].at[:, :, s.j].set(jnp.where(alive, child, -1))
        cache = model.select_rows(s.cache, (qrow * n + parent).reshape(-1))
        return _Beams(j=s.j + 1, token=token, scores=scores, paths=paths, fin_scores=fin_scores,
                      fin_paths=fin_paths, cache=cache)

    def step(s: _Beams) -> _Beams:
        slot = p + s.j - 1
        kv_mask = prompt_kv | ((slots >= p) & (slots <= slot))[None, :]
        logits, cache = model.step(params, s.cache, s.token.reshape(-1, 1), (positions + s.j - 1)[:, None], slot,
                                   kv_mask)
        return extend(s.replace(cache=cache), logits)

    def improvable(s: _Beams):  # log-probs only fall, so a live beam below the worst finished one is hopeless
        return (s.j < depth) & jnp.any(jnp.max(s.scores, axis=1) > jnp.min(s.fin_scores, axis=1))

    init = _Beams(j=jnp.zeros((), jnp.int32), token=jnp.zeros((b, n), jnp.int32),
                  scores=jnp.full((b, n), NEG_INF, jnp.float32).at[:, 0].set(0.0),
                  paths=jnp.full((b, n, depth), -1, jnp.int32), fin_scores=jnp.full((b, n), NEG_INF, jnp.float32),
                  fin_paths=jnp.full((b, n, depth), -1, jnp.int32), cache=cache)
    s = extend(init, first_logits[rep])
    s = jax.lax.while_loop(improvable, step, s)
    found = s.fin_scores > NEG_INF
    leaf = jnp.max(s.fin_paths, axis=-1)  # the EOS node has the largest id on its path (breadth-first ids)
    docids = jnp.where(found, trie.node_docid[jnp.maximum(leaf, 0)], -1)
    paths = jnp.where(found[:, :, None], s.fin_paths, -1)
    return DocidRanking(docids=docids, logprobs=s.fin_scores, tokens=_path_tokens(trie, paths))


# ----------------------------------------------------------------------------------------------------------------
# Host entry points: compile once per (model, K, strategy kind), shard the batch, pad it to the mesh
# ----------------------------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("model", "num_docids", "use_top_p", "independent_rows",
                                             "reuse_prefix", "dense_draws", "skip_determined"))
def _iterative_jit(model, params, prompt_tokens, prompt_mask, row_keys, trie, temperatures, top_p, *, num_docids,
                   use_top_p, independent_rows=False, reuse_prefix=False, dense_draws=False, skip_determined=True):
    return iterative_decode(model, params, prompt_tokens, prompt_mask, row_keys, trie, temperatures, top_p,
                            num_docids=num_docids, use_top_p=use_top_p, independent_rows=independent_rows,
                            reuse_prefix=reuse_prefix, dense_draws=dense_draws, skip_determined=skip_determined)


@functools.partial(jax.jit, static_argnames=("model", "num_beams"))
def _beam_jit(model, params, prompt_tokens, prompt_mask, trie, *, num_beams):
    return beam_decode(model, params, prompt_tokens, prompt_mask, trie, num_beams=num_beams)


def row_keys(rng: jax.Array, batch: int, offset: int = 0) -> jax.Array:
    """[batch] per-query keys fold_in(rng, offset + b): a query's stream does not depend on its batch-mates."""
    return jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(offset, offset + batch))


def _batch_multiple(mesh: Mesh | None) -> int:
    if mesh is None:
        return 1
    from zerogr_jax.sharding import BATCH
    return math.prod(mesh.shape[a] for a in BATCH if a in mesh.shape)


def _put_batch(mesh: Mesh | None, *arrays):
    if mesh is None:
        return arrays
    from zerogr_jax.sharding import batch_sharding
    return tuple(jax.device_put(a, batch_sharding(mesh, a.ndim)) for a in arrays)


def decode_docids(model: StepModel, params, prompt_tokens, prompt_mask, trie: Trie, num_docids: int,
                  rng: jax.Array, strategy: Strategy = ReverseAnnealing(), *, mesh: Mesh | None = None,
                  key_offset: int = 0, independent_rows: bool = False, reuse_prefix: bool = False,
                  dense_draws: bool = False, skip_determined: bool = True) -> DocidRanking:
    """K ranked docids per query with the chosen strategy; prompt_tokens/mask [B, P] left-padded.

    With a mesh, the batch is padded to a multiple of the data-parallel size and sharded over it; the trie and
    (unless already placed) the params are replicated. `key_offset` is the index of row 0 in the whole query set,
    so batching a query set differently does not change any query's docids. `independent_rows=True` lets each row
    start its next docid when its last one ends (`iterative_decode`; same docids); `reuse_prefix=True` with it
    skips the model steps of each docid's prefix shared with the row's previous docid (same docids again);
    `dense_draws=True` draws over the whole vocabulary at every node (`_choose`: the same docids, slower);
    `skip_determined=False` feeds the tokens of docids already determined (`finish_determined`; the same docids,
    slower).
    """
    prompt_tokens = np.asarray(prompt_tokens, np.int32)
    prompt_mask = np.asarray(prompt_mask, bool)
    b = prompt_tokens.shape[0]
    padded = -(-b // _batch_multiple(mesh)) * _batch_multiple(mesh)
    if padded != b:  # dummy rows: one real (pad) token each, dropped from the output
        extra = padded - b
        prompt_tokens = np.concatenate([prompt_tokens, np.zeros((extra, prompt_tokens.shape[1]), np.int32)])
        fill = np.zeros((extra, prompt_mask.shape[1]), bool)
        fill[:, -1] = True
        prompt_mask = np.concatenate([prompt_mask, fill])
    if isinstance(strategy, BeamSearch):
        tokens, mask = _put_batch(mesh, prompt_tokens, prompt_mask)
        out = _beam_jit(model, params, tokens, mask, trie, num_beams=strategy.num_beams(num_docids))
        out = jax.tree.map(lambda x: x[:, :num_docids], out)  # the best K of a wider beam
    else:
        keys = row_keys(rng, padded, key_offset)
        tokens, mask, keys = _put_batch(mesh, prompt_tokens, prompt_mask, keys)
        top_p = getattr(strategy, "top_p", 1.0)
        out = _iterative_jit(model, params, tokens, mask, keys, trie,
                             jnp.asarray(strategy.temperatures(num_docids)), jnp.asarray(top_p, jnp.float32),
                             num_docids=num_docids, use_top_p=top_p < 1.0, independent_rows=independent_rows,
                             reuse_prefix=reuse_prefix, dense_draws=dense_draws, skip_determined=skip_determined)
    return jax.tree.map(lambda x: x[:b], out) if padded != b else out


def reverse_annealed_topk(model: StepModel, params, prompt_tokens, prompt_mask, trie: Trie, num_docids: int,
                          rng: jax.Array, t_max: float = 1.5, sigmoid_k: float = 10.0, m: float = 0.1, *,
                          mesh: Mesh | None = None, key_offset: int = 0, independent_rows: bool = False,
                          reuse_prefix: bool = False, dense_draws: bool = False, skip_determined: bool = True
                          ) -> DocidRanking:
    """ZeroGR's decoding: K docids per query, iteration i at t_i (see `reverse_annealing_temperatures`)."""
    return decode_docids(model, params, prompt_tokens, prompt_mask, trie, num_docids, rng,
                         ReverseAnnealing(t_max, sigmoid_k, m), mesh=mesh, key_offset=key_offset,
                         independent_rows=independent_rows, reuse_prefix=reuse_prefix, dense_draws=dense_draws,
                         skip_determined=skip_determined)
