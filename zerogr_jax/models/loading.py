"""Load a model by name or path into (config, sharded params, tokenizer).

GGUF files are dequantized once and cached as an HF safetensors directory (plus the converted tokenizer), keyed by
the GGUF's content hash, so later loads take a second instead of ~30 s. The cache lives in `$ZEROGR_CACHE`
(default `~/.cache/zerogr_jax`) and is written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
from typing import Any

import jax

from zerogr_jax import sharding as shd
from zerogr_jax.models import checkpoints, llama
from zerogr_jax.models.embedded import embedded_gguf_path, is_embedded_name
from zerogr_jax.tokenization import load_tokenizer


@dataclasses.dataclass
class Model:
    """A loaded decoder: config, params (device arrays, sharded when a mesh was given) and tokenizer."""

    cfg: llama.LlamaConfig
    params: Any
    tokenizer: Any
    source: str
    mesh: jax.sharding.Mesh | None = None
    param_shardings: Any = None

    @property
    def eos_ids(self) -> tuple[int, ...]:
        ids = set(self.cfg.eos_token_ids)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return tuple(sorted(ids))


def cache_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ZEROGR_CACHE", pathlib.Path.home() / ".cache" / "zerogr_jax"))


def _file_digest(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def source_digest(name_or_path: str | os.PathLike) -> str:
    """What a model source holds, as 16 hex digits of sha256: the GGUF file's bytes, or a directory's config.json
    and safetensors files (the tokenizer files are left out: they do not change the weights)."""
    src = resolve_source(name_or_path)
    if src.is_file():
        return _file_digest(src)
    h = hashlib.sha256()
    for f in sorted(p for p in src.iterdir() if p.name == "config.json" or ".safetensors" in p.name):
        h.update(f"{f.name}\0{_file_digest(f)}\n".encode())
    return h.hexdigest()[:16]


def resolve_source(name_or_path: str | os.PathLike) -> pathlib.Path:
    if isinstance(name_or_path, str) and is_embedded_name(name_or_path):
        return embedded_gguf_path()
    p = pathlib.Path(name_or_path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model file or directory (or use the name 'smollm2-135m-instruct')")
    return p


def gguf_as_hf_directory(gguf_path: pathlib.Path, root: pathlib.Path | None = None) -> pathlib.Path:
    """The cached HF directory for a GGUF file, created on first use."""
    out = (root or cache_root()) / f"{gguf_path.stem}-{_file_digest(gguf_path)}"
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    cfg, params = checkpoints.load_gguf(gguf_path)
    checkpoints.export_hf_directory(cfg, params, out, tokenizer=load_tokenizer(gguf_path))
    return out


def load_model(name_or_path: str | os.PathLike = "smollm2-135m-instruct", *, dtype: str = "float32",
               mesh: jax.sharding.Mesh | None = None, use_cache: bool = True) -> Model:
    """Loads the embedded default (by name), a GGUF file or an HF Llama directory.

    With a mesh, parameters are placed with the logical-axis rules of `zerogr_jax.sharding`.
    """
    source = resolve_source(name_or_path)
    if source.suffix == ".gguf" and use_cache:
        source_dir = gguf_as_hf_directory(source)
        cfg, params = checkpoints.load_hf_directory(source_dir)
        tokenizer = load_tokenizer(source_dir)
    else:
        cfg, params = checkpoints.load_checkpoint(source)
        tokenizer = load_tokenizer(source)
    cfg = cfg.replace(dtype=dtype)
    shardings = None
    if mesh is not None:
        shardings = shd.tree_shardings(mesh, llama.abstract_params(cfg), llama.param_logical_axes(cfg))
        params = jax.device_put(params, shardings)
    else:
        params = jax.device_put(params)
    return Model(cfg=cfg, params=params, tokenizer=tokenizer, source=str(source), mesh=mesh,
                 param_shardings=shardings)
