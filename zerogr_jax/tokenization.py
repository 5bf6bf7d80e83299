"""Tokenizer and chat template, through `transformers` (from an HF directory's tokenizer.json or from a GGUF).

Batches are left-padded: every row's last prompt token sits in the last column, so one cache write index serves the
whole batch during generation, and RoPE positions are counted from each row's first real token.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


def load_tokenizer(path: str | os.PathLike):
    """A fast tokenizer from an HF directory or a GGUF file; never touches the network."""
    from transformers import AutoTokenizer

    p = pathlib.Path(path)
    if p.is_file() and p.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name, local_files_only=True)
    if p.is_dir() and (p / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    raise FileNotFoundError(f"{p}: no tokenizer (expected a .gguf file or a directory with tokenizer.json)")


def chat_prompt(tokenizer, messages: Sequence[Message], assistant_prefix: str = "") -> str:
    """The chat-formatted prompt text ending in an open assistant turn, optionally pre-filled with a prefix."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return text + assistant_prefix


def encode(tokenizer, text: str, max_len: int | None = None, keep: str = "left") -> list[int]:
    """Token ids of `text` (special tokens in the text are parsed; no BOS is added: chat templates carry their own).

    `keep="left"` keeps the first `max_len` tokens, `"right"` the last ones.
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if max_len is not None and len(ids) > max_len:
        ids = ids[:max_len] if keep == "left" else ids[-max_len:]
    return ids


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, length: int | None = None,
             multiple_of: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Left-pads to a common length (rounded up to `multiple_of` to limit recompiles).

    Returns tokens [B, P] int32 and mask [B, P] bool (True at real tokens).
    """
    longest = max((len(s) for s in sequences), default=1)
    length = length or longest
    if length < longest:
        raise ValueError(f"sequence of length {longest} does not fit in {length}")
    length = -(-length // multiple_of) * multiple_of
    tokens = np.full((len(sequences), length), pad_id, np.int32)
    mask = np.zeros((len(sequences), length), bool)
    for i, s in enumerate(sequences):
        if len(s):
            tokens[i, length - len(s):] = s
            mask[i, length - len(s):] = True
    return tokens, mask


def tokenizer_digest(tokenizer) -> str:
    """sha256 of what decides a text's token ids: the vocabulary (token -> id, added tokens included) and the
    special tokens. Two tokenizers with the same digest tokenize docids alike, so a trie built with one serves the
    other."""
    import hashlib
    import json

    body = {"vocab": sorted(tokenizer.get_vocab().items()), "special": sorted(map(str, tokenizer.all_special_tokens)),
            "class": type(tokenizer).__name__}
    return hashlib.sha256(json.dumps(body).encode("utf-8")).hexdigest()


def pad_id_of(tokenizer) -> int:
    pid = tokenizer.pad_token_id
    return int(pid if pid is not None else tokenizer.eos_token_id)


def decode(tokenizer, ids: Sequence[int], stop_ids: Sequence[int] = ()) -> str:
    """Text of the ids up to the first stop id (excluded)."""
    out = []
    for t in ids:
        if int(t) in stop_ids or int(t) < 0:
            break
        out.append(int(t))
    return tokenizer.decode(out, skip_special_tokens=True)
