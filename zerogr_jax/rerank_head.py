"""The rerank head (the reference's): a relevance score read off the retriever itself, trained apart from the docid.

score(q, d) = the logit of one reserved token at the last position of `prompt(q) + docid(d) + EOS`, i.e. the final
(normed) hidden state there dotted with that token's output row. The reference (sunnweiwei/ZeroGR) reserves a Llama
special token and trains it with RankNet on one positive and seven BM25-mined negatives every 8th step; at search it
rescores the K decoded docids by this logit alone. Here it is `train.rank_score="head"` (training/step.py) and
`search.rerank_depth` (retrieval/search.py), with `rerank_token` naming the token in both.

Why a head and not the docid's own log-probability: a ranking loss on log p(docid | query) pulls the very
probabilities the docid loss trains (it hurt on med and cisi, RESULTS.md session 12); the head's logit is a different
output of the same network, so the docid probabilities only move through the shared layers. The token's output row
is the (frozen, tied) embedding row, so the head adds no parameter: the trained top layers and final norm learn to
point the last hidden state at it. SmolLM2's `<empty_output>` is one of ten special tokens with identical,
untrained-looking rows (norm 3.29), never in a prompt or a docid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_TOKEN = "<empty_output>"


def token_id(tokenizer, name: str) -> int:
    """The vocabulary id of the head's token `name` (a single token of the tokenizer), or a clear error."""
    ids = tokenizer.convert_tokens_to_ids([name])
    unk = getattr(tokenizer, "unk_token_id", None)
    if not ids or ids[0] is None or (unk is not None and ids[0] == unk and name != tokenizer.unk_token):
        raise ValueError(f"rerank_token={name!r} is not a single token of this tokenizer: name one of its special "
                         f"tokens (e.g. {tokenizer.all_special_tokens[:3]}) that no prompt or docid uses")
    return int(ids[0])


def last_positions(mask: jax.Array) -> jax.Array:
    """[B] the index of each row's last real token (`mask` [B, T], real tokens first)."""
    return jnp.maximum(mask.sum(-1) - 1, 0).astype(jnp.int32)


def scores(hidden: jax.Array, last: jax.Array, row: jax.Array) -> jax.Array:
    """[B] float32: hidden [B, T, D] (final, normed) at positions `last` [B], dotted with the token's row [D]."""
    h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]  # [B, D]
    return jnp.einsum("bd,d->b", h.astype(jnp.float32), row.astype(jnp.float32))
