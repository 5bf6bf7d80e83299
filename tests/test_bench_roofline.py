"""bench_decode's roofline counts: a decode step's matmul FLOPs are 2 x (the weights it multiplies) per row."""

from __future__ import annotations

import jax
import numpy as np

from experiments.bench_decode import step_matmul_flops
from zerogr_jax.models import llama


def test_step_matmul_flops_are_two_per_weight_per_row():
    cfg = llama.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_layers=3, num_heads=4,
                            num_kv_heads=2, head_dim=8, eos_token_ids=(2,), pad_token_id=0)
    params = jax.eval_shape(lambda: llama.init_params(cfg, jax.random.key(0)))
    matrices = [a for a in jax.tree.leaves(params["layers"]) if len(a.shape) >= 3]  # [L, ...] (norm scales: [L, D])
    weights = sum(int(np.prod(a.shape)) for a in matrices) + cfg.vocab_size * cfg.hidden_size  # + the (tied) head
    assert step_matmul_flops(cfg, 1) == 2 * weights
    assert step_matmul_flops(cfg, 8) == 16 * weights
