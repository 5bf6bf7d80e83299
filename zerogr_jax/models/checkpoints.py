"""Checkpoint import/export: HF Llama directories (safetensors), GGUF files, and export back to an HF directory.

Every loader returns `(LlamaConfig, params)` with params a nested dict of float32 numpy arrays in our layout:

  embedding [V, D]; layers/{attn/{q [L,D,H,E], k [L,D,K,E], v [L,D,K,E], o [L,H,E,D]},
  mlp/{gate [L,D,F], up [L,D,F], down [L,F,D]}, attn_norm/scale [L,D], mlp_norm/scale [L,D]};
  final_norm/scale [D]; lm_head [D, V] (untied models only).

Only data formats are read (safetensors, GGUF, JSON): nothing we load can run code.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Callable, Iterable

import numpy as np

from zerogr_jax.models.llama import LlamaConfig

SUPPORTED_HF_ARCHITECTURES = ("LlamaForCausalLM",)
SUPPORTED_GGUF_ARCHITECTURES = ("llama",)
# Types the `gguf` package dequantizes and that we have checked against llama.cpp's block layouts.
SUPPORTED_GGUF_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K",
                        "Q5_K", "Q6_K")


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, or describes something we cannot load."""


# ----------------------------------------------------------------------------------------------- HF <-> ours

def _hf_layer_names(i: int) -> dict[str, str]:
    p = f"model.layers.{i}."
    return {
        "q": p + "self_attn.q_proj.weight", "k": p + "self_attn.k_proj.weight",
        "v": p + "self_attn.v_proj.weight", "o": p + "self_attn.o_proj.weight",
        "gate": p + "mlp.gate_proj.weight", "up": p + "mlp.up_proj.weight", "down": p + "mlp.down_proj.weight",
        "attn_norm": p + "input_layernorm.weight", "mlp_norm": p + "post_attention_layernorm.weight",
    }


def params_from_hf_tensors(cfg: LlamaConfig, get: Callable[[str], np.ndarray]) -> dict:
    """Builds our params from HF-named tensors (torch layout: Linear weights are [out, in])."""
    d, h, k, e = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    f32 = lambda a: np.asarray(a, dtype=np.float32)
    per_layer = {n: [] for n in ("q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm")}
    for i in range(cfg.num_layers):
        names = _hf_layer_names(i)
        per_layer["q"].append(f32(get(names["q"])).T.reshape(d, h, e))
        per_layer["k"].append(f32(get(names["k"])).T.reshape(d, k, e))
        per_layer["v"].append(f32(get(names["v"])).T.reshape(d, k, e))
        per_layer["o"].append(f32(get(names["o"])).T.reshape(h, e, d))
        for n in ("gate", "up", "down"):
            per_layer[n].append(f32(get(names[n])).T)
        for n in ("attn_norm", "mlp_norm"):
            per_layer[n].append(f32(get(names[n])))
    stack = {n: np.stack(v) for n, v in per_layer.items()}
    params = {
        "embedding": f32(get("model.embed_tokens.weight")),
        "layers": {
            "attn": {n: stack[n] for n in ("q", "k", "v", "o")},
            "mlp": {n: stack[n] for n in ("gate", "up", "down")},
            "attn_norm": {"scale": stack["attn_norm"]},
            "mlp_norm": {"scale": stack["mlp_norm"]},
        },
        "final_norm": {"scale": f32(get("model.norm.weight"))},
    }
    if not cfg.tie_word_embeddings:
        params["lm_head"] = f32(get("lm_head.weight")).T
    return params


def hf_tensors_from_params(cfg: LlamaConfig, params: dict) -> dict[str, np.ndarray]:
    """Inverse of `params_from_hf_tensors`."""
    d = cfg.hidden_size
    p = jax_to_numpy(params)
    out = {"model.embed_tokens.weight": p["embedding"], "model.norm.weight": p["final_norm"]["scale"]}
    attn, mlp = p["layers"]["attn"], p["layers"]["mlp"]
    for i in range(cfg.num_layers):
        names = _hf_layer_names(i)
        out[names["q"]] = attn["q"][i].reshape(d, -1).T
        out[names["k"]] = attn["k"][i].reshape(d, -1).T
        out[names["v"]] = attn["v"][i].reshape(d, -1).T
        out[names["o"]] = attn["o"][i].reshape(-1, d).T
        for n in ("gate", "up", "down"):
            out[names[n]] = mlp[n][i].T
        out[names["attn_norm"]] = p["layers"]["attn_norm"]["scale"][i]
        out[names["mlp_norm"]] = p["layers"]["mlp_norm"]["scale"][i]
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = p["lm_head"].T
    return {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in out.items()}


def jax_to_numpy(tree):
    import jax
    return jax.tree.map(lambda a: np.asarray(jax.device_get(a)), tree)


def config_from_hf(hf: dict, source: str) -> LlamaConfig:
    archs = hf.get("architectures") or []
    if hf.get("model_type") != "llama" or (archs and not set(archs) & set(SUPPORTED_HF_ARCHITECTURES)):
        raise CheckpointError(f"{source}: unsupported architecture model_type={hf.get('model_type')!r} "
                              f"architectures={archs}; supported: llama ({', '.join(SUPPORTED_HF_ARCHITECTURES)})")
    try:
        heads = hf["num_attention_heads"]
        scaling = hf.get("rope_scaling") or hf.get("rope_parameters")
        rope_scaling = None
        if scaling and scaling.get("rope_type", scaling.get("type")) == "llama3":
            rope_scaling = (float(scaling["factor"]), float(scaling["low_freq_factor"]),
                            float(scaling["high_freq_factor"]), int(scaling["original_max_position_embeddings"]))
        elif scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
            raise CheckpointError(f"{source}: unsupported rope scaling {scaling}")
        theta = hf.get("rope_theta") or (scaling or {}).get("rope_theta") or 10000.0
        eos = hf.get("eos_token_id")
        return LlamaConfig(
            vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"], num_layers=hf["num_hidden_layers"], num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads", heads),
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads, rope_theta=float(theta),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            max_position_embeddings=hf.get("max_position_embeddings", 8192),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_ids=tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ()),
            pad_token_id=hf.get("pad_token_id"), rope_scaling=rope_scaling)
    except KeyError as e:
        raise CheckpointError(f"{source}: config.json lacks required field {e}") from None


def config_to_hf(cfg: LlamaConfig) -> dict:
    eos = list(cfg.eos_token_ids)
    hf = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim, "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.rms_norm_eps, "tie_word_embeddings": cfg.tie_word_embeddings,
        "max_position_embeddings": cfg.max_position_embeddings, "hidden_act": "silu",
        "bos_token_id": cfg.bos_token_id, "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
        "pad_token_id": cfg.pad_token_id, "torch_dtype": "float32", "attention_bias": False, "mlp_bias": False,
    }
    if cfg.rope_scaling:
        f, lo, hi, orig = cfg.rope_scaling
        hf["rope_scaling"] = {"rope_type": "llama3", "factor": f, "low_freq_factor": lo, "high_freq_factor": hi,
                              "original_max_position_embeddings": orig}
    return hf


# ----------------------------------------------------------------------------------------------- HF directory

def load_hf_directory(path: str | os.PathLike) -> tuple[LlamaConfig, dict]:
    """Loads `config.json` + `model.safetensors` (or a sharded `model.safetensors.index.json`)."""
    from safetensors import safe_open

    root = pathlib.Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a directory (expected an HF model directory)")
    config_file = root / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: missing (an HF model directory needs config.json)")
    try:
        hf = json.loads(config_file.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_file}: not valid JSON ({e})") from None
    cfg = config_from_hf(hf, str(config_file))

    index_file = root / "model.safetensors.index.json"
    if index_file.is_file():
        weight_map = json.loads(index_file.read_text("utf-8"))["weight_map"]
        files = {n: root / f for n, f in weight_map.items()}
    elif (root / "model.safetensors").is_file():
        files = None
    else:
        bins = sorted(p.name for p in root.glob("*.bin"))
        hint = f" (found {bins}: pickle-based weights are refused; convert them to safetensors)" if bins else ""
        raise CheckpointError(f"{root}: no model.safetensors or model.safetensors.index.json{hint}")

    handles = {}

    def get(name: str) -> np.ndarray:
        file = files[name] if files is not None and name in files else root / "model.safetensors"
        if files is not None and name not in files:
            raise CheckpointError(f"{index_file}: tensor {name} not in weight_map")
        try:
            if file not in handles:
                handles[file] = safe_open(str(file), framework="numpy")
            return handles[file].get_tensor(name)
        except FileNotFoundError:
            raise CheckpointError(f"{file}: missing shard") from None
        except Exception as e:  # safetensors raises SafetensorError for truncated/corrupt headers
            raise CheckpointError(f"{file}: cannot read tensor {name}: {e}") from None

    return cfg, params_from_hf_tensors(cfg, get)


def _atomic_dir_write(out: pathlib.Path, write: Callable[[pathlib.Path], None]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    write(tmp)
    tmp.chmod(0o755)  # mkdtemp makes it private to its writer; an exported model is read by others (and by search)
    for f in tmp.iterdir():
        f.chmod(0o644)
    if out.exists():
        backup = out.with_name(f".{out.name}.old")
        os.replace(out, backup)
        os.replace(tmp, out)
        import shutil
        shutil.rmtree(backup)
    else:
        os.replace(tmp, out)


def export_hf_directory(cfg: LlamaConfig, params: dict, out_dir: str | os.PathLike, tokenizer=None) -> pathlib.Path:
    """Writes an HF Llama directory (config.json, model.safetensors, tokenizer files) atomically."""
    from safetensors.numpy import save_file

    out = pathlib.Path(out_dir)
    tensors = hf_tensors_from_params(cfg, params)

    def write(tmp: pathlib.Path):
        (tmp / "config.json").write_text(json.dumps(config_to_hf(cfg), indent=2))
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))

    _atomic_dir_write(out, write)
    return out


# ----------------------------------------------------------------------------------------------- GGUF

def _gguf_reader(path: pathlib.Path):
    import gguf

    if not path.is_file():
        raise CheckpointError(f"{path}: GGUF file not found")
    try:
        return gguf.GGUFReader(str(path))
    except Exception as e:  # truncated files fail inside numpy memmap/frombuffer with assorted errors
        raise CheckpointError(f"{path}: not a readable GGUF file (truncated or corrupt?): {type(e).__name__}: {e}") \
            from None


def _field(reader, key: str, path, default=None, required=True):
    field = reader.fields.get(key)
    if field is None:
        if required and default is None:
            raise CheckpointError(f"{path}: GGUF metadata lacks {key}")
        return default
    return field.contents()


def config_from_gguf(reader, path) -> LlamaConfig:
    arch = _field(reader, "general.architecture", path)
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise CheckpointError(f"{path}: unsupported GGUF architecture {arch!r}; supported: "
                              f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)}")
    a = arch
    heads = int(_field(reader, f"{a}.attention.head_count", path))
    hidden = int(_field(reader, f"{a}.embedding_length", path))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = int(_field(reader, f"{a}.vocab_size", path, default=len(tokens.data) if tokens else None))
    names = {t.name for t in reader.tensors}
    eos = _field(reader, "tokenizer.ggml.eos_token_id", path, required=False)
    return LlamaConfig(
        vocab_size=vocab, hidden_size=hidden,
        intermediate_size=int(_field(reader, f"{a}.feed_forward_length", path)),
        num_layers=int(_field(reader, f"{a}.block_count", path)), num_heads=heads,
        num_kv_heads=int(_field(reader, f"{a}.attention.head_count_kv", path, default=heads)),
        head_dim=int(_field(reader, f"{a}.rope.dimension_count", path, default=hidden // heads)),
        rope_theta=float(_field(reader, f"{a}.rope.freq_base", path, default=10000.0)),
        rms_norm_eps=float(_field(reader, f"{a}.attention.layer_norm_rms_epsilon", path, default=1e-5)),
        tie_word_embeddings="output.weight" not in names,
        max_position_embeddings=int(_field(reader, f"{a}.context_length", path, default=8192)),
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id", path, required=False),
        eos_token_ids=(int(eos),) if eos is not None else (),
        pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id", path, required=False))


def _unpermute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undoes llama.cpp's q/k row permutation (interleaved RoPE layout) back to HF's rotate-half layout."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF -> llama.cpp layout (what llama.cpp's converter does); inverse of `_unpermute_rope`."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_TO_HF = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}


def _hf_name(gguf_name: str) -> str | None:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in _GGUF_TO_HF:
        return f"model.layers.{parts[1]}.{_GGUF_TO_HF[parts[2]]}.{parts[3]}"
    return None  # e.g. rope_freqs: derived from config


def dequantize_tensor(tensor, path) -> np.ndarray:
    import gguf

    qtype = tensor.tensor_type.name
    if qtype not in SUPPORTED_GGUF_TYPES:
        raise CheckpointError(f"{path}: tensor {tensor.name} has quantization type {qtype}, which is not supported "
                              f"(supported: {', '.join(SUPPORTED_GGUF_TYPES)})")
    try:
        out = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot dequantize {tensor.name} ({qtype}): {e}") from None
    shape = tuple(int(s) for s in reversed(tensor.shape))  # GGUF lists dims fastest-first
    return np.asarray(out, dtype=np.float32).reshape(shape)


def load_gguf(path: str | os.PathLike) -> tuple[LlamaConfig, dict]:
    """Loads and dequantizes a llama-architecture GGUF file (q/k rows un-permuted to HF's RoPE layout)."""
    path = pathlib.Path(path)
    reader = _gguf_reader(path)
    cfg = config_from_gguf(reader, path)
    by_hf = {}
    for t in reader.tensors:
        name = _hf_name(t.name)
        if name is not None:
            by_hf[name] = t

    def get(name: str) -> np.ndarray:
        if name not in by_hf:
            raise CheckpointError(f"{path}: GGUF lacks the tensor for {name}")
        w = dequantize_tensor(by_hf[name], path)
        if name.endswith("q_proj.weight"):
            w = _unpermute_rope(w, cfg.num_heads)
        elif name.endswith("k_proj.weight"):
            w = _unpermute_rope(w, cfg.num_kv_heads)
        return w

    return cfg, params_from_hf_tensors(cfg, get)


def load_checkpoint(path: str | os.PathLike) -> tuple[LlamaConfig, dict]:
    """Dispatches on the path: a `.gguf` file or an HF directory."""
    p = pathlib.Path(path)
    if p.suffix == ".gguf" or p.is_file():
        return load_gguf(p)
    if p.is_dir():
        return load_hf_directory(p)
    raise CheckpointError(f"{p}: no such file or directory (expected a .gguf file or an HF model directory)")


def tensor_names(params: dict) -> Iterable[str]:
    import jax
    return ["/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
