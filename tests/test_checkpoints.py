"""Checkpoint import/export: parity with transformers, GGUF dequantization and q/k un-permutation, clear errors."""

import json

import gguf
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import hf_logits, write_tiny_gguf, write_tiny_hf_llama
from zerogr_jax.models import checkpoints, llama

TOKENS = np.array([[5, 17, 3, 88, 42, 7, 60, 1, 2, 30], [9, 9, 4, 71, 12, 33, 50, 11, 94, 0]], np.int32)


def our_logits(cfg, params, tokens=TOKENS):
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    logits, _ = llama.forward(params, cfg, jnp.asarray(tokens), positions)
    return np.asarray(logits)


@pytest.mark.parametrize("overrides", [{}, {"tie_word_embeddings": True},
                                       {"num_key_value_heads": 4, "rope_theta": 500.0}])
def test_hf_import_matches_transformers(tmp_path, overrides):
    hf_dir = write_tiny_hf_llama(tmp_path / "m", seed=3, **overrides)
    cfg, params = checkpoints.load_hf_directory(hf_dir)
    np.testing.assert_allclose(our_logits(cfg, params), hf_logits(hf_dir, TOKENS), atol=1e-4, rtol=0)


def test_llama3_rope_scaling_matches_transformers(tmp_path):
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}
    hf_dir = write_tiny_hf_llama(tmp_path / "m", rope_scaling=scaling)
    cfg, params = checkpoints.load_hf_directory(hf_dir)
    assert cfg.rope_scaling == (8.0, 1.0, 4.0, 16)
    np.testing.assert_allclose(our_logits(cfg, params), hf_logits(hf_dir, TOKENS), atol=1e-4, rtol=0)


def test_export_round_trip_loads_in_transformers(tiny_hf_dir, tiny_model, tmp_path):
    cfg, params = tiny_model
    out = checkpoints.export_hf_directory(cfg, params, tmp_path / "exported")
    # readable by others (a shared cluster's search job), whatever the writer's temporary-directory mode was
    assert all(p.stat().st_mode & 0o004 for p in [out, *out.iterdir()])
    np.testing.assert_allclose(hf_logits(out, TOKENS), hf_logits(tiny_hf_dir, TOKENS), atol=1e-5, rtol=0)
    cfg2, params2 = checkpoints.load_hf_directory(out)
    assert cfg2 == cfg
    np.testing.assert_array_equal(our_logits(cfg2, params2), our_logits(cfg, params))


def test_sharded_safetensors_index(tiny_hf_dir, tiny_model, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tiny_hf_dir / "model.safetensors"))
    names = sorted(tensors)
    out = tmp_path / "sharded"
    out.mkdir()
    (out / "config.json").write_text((tiny_hf_dir / "config.json").read_text())
    halves = {"a.safetensors": names[::2], "b.safetensors": names[1::2]}
    for file, part in halves.items():
        save_file({n: tensors[n] for n in part}, str(out / file))
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {n: f for f, part in halves.items() for n in part}}))
    cfg, params = checkpoints.load_hf_directory(out)
    np.testing.assert_array_equal(our_logits(cfg, params), our_logits(*tiny_model))


def test_gguf_f32_unpermutes_qk_and_matches_transformers(tiny_hf_dir, tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tiny_hf_dir, "F32")
    cfg, params = checkpoints.load_gguf(path)
    np.testing.assert_allclose(our_logits(cfg, params), hf_logits(tiny_hf_dir, TOKENS), atol=1e-4, rtol=0)


@pytest.mark.parametrize("qtype", ["F16", "Q8_0", "Q4_0", "Q4_1"])
def test_gguf_quantized_types_dequantize_exactly(tiny_hf_dir, tiny_model, tmp_path, qtype):
    """Each quantized weight must equal gguf's own dequantization of the quantized HF weight."""
    path = write_tiny_gguf(tmp_path / f"tiny-{qtype}.gguf", tiny_hf_dir, qtype)
    cfg, params = checkpoints.load_gguf(path)
    _, ref = tiny_model
    w = np.asarray(ref["layers"]["mlp"]["gate"][1]).T  # HF layout [F, D]
    q = gguf.GGMLQuantizationType[qtype]
    expected = gguf.quants.dequantize(gguf.quants.quantize(w, q), q).T
    np.testing.assert_array_equal(params["layers"]["mlp"]["gate"][1], expected)
    # the permuted q projection survives quantization (blocks run along the input dim, untouched by permutation)
    err = np.abs(params["layers"]["attn"]["q"] - np.asarray(ref["layers"]["attn"]["q"])).max()
    assert err < {"F16": 1e-3, "Q8_0": 2e-3, "Q4_0": 0.05, "Q4_1": 0.05}[qtype]


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="nope.gguf: GGUF file not found"):
        checkpoints.load_gguf(tmp_path / "nope.gguf")
    with pytest.raises(checkpoints.CheckpointError, match="no such file or directory"):
        checkpoints.load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoints.CheckpointError, match="config.json: missing"):
        checkpoints.load_hf_directory(tmp_path / "empty")


def test_pickle_weights_are_refused(tiny_hf_dir, tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    (d / "config.json").write_text((tiny_hf_dir / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(checkpoints.CheckpointError, match="pickle-based weights are refused"):
        checkpoints.load_hf_directory(d)


def test_truncated_gguf(tiny_hf_dir, tmp_path):
    path = write_tiny_gguf(tmp_path / "full.gguf", tiny_hf_dir, "Q8_0")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoints.CheckpointError, match=r"cut\.gguf: .*(truncated|corrupt)"):
        checkpoints.load_gguf(cut)


def test_unsupported_architecture(tiny_hf_dir, tmp_path):
    d = tmp_path / "gpt2"
    d.mkdir()
    hf = json.loads((tiny_hf_dir / "config.json").read_text())
    hf.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (d / "config.json").write_text(json.dumps(hf))
    with pytest.raises(checkpoints.CheckpointError, match=r"config\.json: unsupported architecture.*gpt2"):
        checkpoints.load_hf_directory(d)
    path = write_tiny_gguf(tmp_path / "falcon.gguf", tiny_hf_dir, "F32", arch="falcon")
    with pytest.raises(checkpoints.CheckpointError, match=r"falcon\.gguf: unsupported GGUF architecture 'falcon'"):
        checkpoints.load_gguf(path)


def test_unknown_quantization_type(tiny_hf_dir, tmp_path):
    q = gguf.GGMLQuantizationType.IQ4_NL
    block, nbytes = gguf.GGML_QUANT_SIZES[q]
    shape = (64, 32)  # attn_v of layer 0: [K*E, D]
    raw = np.zeros((shape[0], shape[1] // block * nbytes), np.uint8)
    path = write_tiny_gguf(tmp_path / "iq.gguf", tiny_hf_dir, "F32",
                           raw_override={"blk.0.attn_v.weight": (raw, q)})
    with pytest.raises(checkpoints.CheckpointError, match=r"iq\.gguf: tensor blk\.0\.attn_v\.weight has "
                                                          r"quantization type IQ4_NL, which is not supported"):
        checkpoints.load_gguf(path)
