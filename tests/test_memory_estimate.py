"""launch/memory_estimate.py: its parameter count is the model's, and its terms follow the documented arithmetic."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

from zerogr_jax.models import llama

REPO = pathlib.Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("memory_estimate", REPO / "launch" / "memory_estimate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


me = _module()


@pytest.mark.parametrize("preset", sorted(me.PRESETS))
def test_parameter_count_matches_the_model(preset):
    v, d, f, n, h, k, e, tied = me.PRESETS[preset]
    cfg = llama.LlamaConfig(vocab_size=v, hidden_size=d, intermediate_size=f, num_layers=n, num_heads=h,
                            num_kv_heads=k, head_dim=e, tie_word_embeddings=tied)
    assert me.Shape(*me.PRESETS[preset]).params == cfg.num_params()


def test_paper_scale_arithmetic():
    s = me.Shape(*me.PRESETS["llama-3.2-1b"])
    assert s.params == 1_235_814_400 and s.layer_params == 60_821_504
    per_token, elems = me.activation_bytes_per_token_layer(s, 160, 2)
    assert per_token == 43_008 * 2 + 5_120 * 4 == 106_496
    e = me.estimate(s, fsdp=8, data=2, micro_batch=16, seq_len=160)
    assert e["states"] == 16 * s.params / 8
    assert e["activations"] == 16 * 160 * 16 * 106_496
    assert e["total"] == pytest.approx(sum(e[k] for k in ("states", "activations", "head", "gathers", "update")))
    assert me.estimate(s, fsdp=1, data=16, micro_batch=16, seq_len=160)["gathers"] == 0  # nothing sharded
