"""Teacher-forced docid scoring: the constrained log-probability of given docids after one prompt.

`score_all_docids` returns, for one prompt, log p(docid | prompt) of every docid of the trie — the sum over its
tokens of log_softmax(logits masked to the node's children), the same quantity beam search ranks by
(`decoding.DocidRanking.logprobs`) — by running the prompt once into a read-only `SharedKV` segment and all docids
as rows after it: U x L tokens for U docids of L tokens, instead of a beam as wide as the trie whose every row
carries its own copy of the prompt's cache.

Its use here is the **docid prior** of `search.prior_weight`: log p(docid | the instruction with an empty query),
subtracted (times a weight) from each candidate's score, so that docids the retriever likes for every query
(common first words, frequent training targets) stop crowding out the ones this query makes likely — the
pointwise-mutual-information correction of query-likelihood ranking.

Shapes: U docids, L = trie.max_depth (EOS included), V' the head's width (the compact docid vocabulary with
`search.CompactHeadStepModel`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax import generation
from zerogr_jax.retrieval import decoding
from zerogr_jax.models import llama
from zerogr_jax.sampling import NEG_INF
from zerogr_jax.retrieval.trie import Trie, TrieHost


def docid_paths(trie: TrieHost) -> tuple[np.ndarray, np.ndarray]:
    """Per docid, its nodes [U, L] (root side first, -1 after the leaf) and the node each token leaves from [U, L].

    Vectorized walk from every leaf to the root; a docid's tokens are `trie.node_token[nodes]`."""
    u, depth = trie.num_docids, trie.max_depth
    up = np.full((u, depth), -1, np.int64)  # leaf side first
    node = trie.docid_leaf.astype(np.int64)
    for j in range(depth):
        live = node > 0
        up[live, j] = node[live]
        node = np.where(live, trie.parent[np.maximum(node, 0)], 0)
    lengths = (up >= 0).sum(1)
    nodes = np.full((u, depth), -1, np.int64)
    for j in range(depth):  # reverse each row's first `length` entries
        src = lengths - 1 - j
        ok = src >= 0
        nodes[ok, j] = up[ok, src[ok]]
    parents = np.where(nodes >= 0, trie.parent[np.maximum(nodes, 0)], -1)
    return nodes.astype(np.int32), parents.astype(np.int32)


@functools.partial(jax.jit, static_argnames=("model",))
def _score_rows(model: decoding.StepModel, params, prompt_tokens, prompt_mask, trie: Trie, tokens, from_nodes):
    """prompt [1, P]; tokens / from_nodes [C, L] (-1 padding) -> [C] float32 constrained log-probabilities."""
    cfg = model.cfg
    mp = model.model_params(params)
    p = prompt_tokens.shape[1]
    positions = generation.prompt_positions(prompt_mask)
    hidden, cache = llama.forward(mp, cfg, prompt_tokens, positions, llama.init_cache(cfg, 1, p), 0, prompt_mask,
                                  return_hidden=True)
    first = model.head(params, hidden[:, -1])  # [1, V']
    c, length = tokens.shape
    real = tokens >= 0  # [C, L]
    inputs = jnp.maximum(tokens[:, :-1], 0)  # token j is read to predict token j + 1
    row_pos = positions[:, -1] + 1 + jnp.arange(length - 1, dtype=jnp.int32)[None, :]  # [1, L - 1]
    shared = (llama.SharedKV(cache.k, cache.v, prompt_mask),)
    hid, _ = llama.forward(mp, cfg, model.vocab_ids(params, inputs), jnp.broadcast_to(row_pos, (c, length - 1)),
                           llama.init_cache(cfg, c, length - 1), 0, real[:, :-1], return_hidden=True, shared=shared)
    logits = jnp.concatenate([jnp.broadcast_to(first[:, None], (c, 1, first.shape[-1])),
                              model.head(params, hid.reshape(c * (length - 1), -1)).reshape(c, length - 1, -1)],
                             axis=1)  # [C, L, V']
    allowed = decoding.children_mask(trie, jnp.maximum(from_nodes, 0).reshape(-1)).reshape(logits.shape)
    logp = jax.nn.log_softmax(jnp.where(allowed, logits, NEG_INF), axis=-1)
    picked = jnp.take_along_axis(logp, jnp.maximum(tokens, 0)[..., None], axis=-1)[..., 0]  # [C, L]
    return jnp.sum(jnp.where(real, picked, 0.0), axis=1)


def score_all_docids(model: decoding.StepModel, params, prompt: list[int], host_trie: TrieHost, trie: Trie, *,
                     chunk: int = 256, pad_id: int = 0) -> np.ndarray:
    """[U] float32: log p(docid u | prompt) under the trie constraint, for every docid of `host_trie`.

    `trie` is `host_trie` on device (the compact one with a compact head); docids run `chunk` at a time, the last
    chunk padded so that one program serves them all."""
    return score_docids(model, params, prompt, host_trie, trie, np.arange(host_trie.num_docids), chunk=chunk,
                        pad_id=pad_id)


def score_docids(model: decoding.StepModel, params, prompt: list[int], host_trie: TrieHost, trie: Trie,
                 docids: np.ndarray, *, chunk: int = 256, pad_id: int = 0,
                 paths: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """[N] float32: log p(docid | prompt) under the trie constraint for the docid indices `docids` [N] (any order,
    repeats allowed); `paths` = `docid_paths(host_trie)` when the caller scores many prompts over one trie."""
    from zerogr_jax.tokenization import left_pad

    nodes, from_nodes = docid_paths(host_trie) if paths is None else paths
    docids = np.asarray(docids, np.int64)
    nodes, from_nodes = nodes[docids], from_nodes[docids]
    tokens = np.where(nodes >= 0, host_trie.node_token[np.maximum(nodes, 0)], -1).astype(np.int32)
    prompt_tokens, prompt_mask = left_pad([prompt], pad_id, multiple_of=32)
    u = tokens.shape[0]
    chunk = max(1, min(chunk, u))
    out = np.empty(u, np.float32)
    for start in range(0, u, chunk):
        t, f = tokens[start:start + chunk], from_nodes[start:start + chunk]
        n = t.shape[0]
        if n < chunk:  # repeat the last docid: same shapes, rows dropped below
            t, f = np.concatenate([t, np.repeat(t[-1:], chunk - n, 0)]), np.concatenate([f, np.repeat(f[-1:], chunk - n, 0)])
        out[start:start + n] = np.asarray(_score_rows(model, params, jnp.asarray(prompt_tokens),
                                                      jnp.asarray(prompt_mask), trie, jnp.asarray(t),
                                                      jnp.asarray(f)))[:n]
    return out
