"""The test oracle of scoring: each sequence run whole through `llama.forward`, without a cache or a mask.

The sequences are right-padded into one batch and run by one compiled call: attention is causal, so padding after
a sequence's last token cannot reach any of its positions, and one program replaces an eager forward per sequence
(~1 s each on the CI CPU, the bulk of the scoring tests' time).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax.models import llama


def plain_forward(params, cfg: llama.LlamaConfig, seqs: Sequence[Sequence[int]], *,
                  return_hidden: bool = False) -> list[np.ndarray]:
    """Per sequence: its logits [len, V] (or final hidden states [len, D])."""
    width = max(len(s) for s in seqs)
    tokens = np.zeros((len(seqs), width), np.int32)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = s
    positions = jnp.broadcast_to(jnp.arange(width), tokens.shape)
    run = jax.jit(lambda p, t: llama.forward(p, cfg, t, positions, return_hidden=return_hidden)[0])
    out = np.asarray(run(params, jnp.asarray(tokens)))
    return [out[i, :len(s)] for i, s in enumerate(seqs)]
