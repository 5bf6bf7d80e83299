"""The retriever contract: what indexing writes and training and search read, in one place.

* The index directory (`load_index`): `manifest.json` (the task `instruction`), `docids.jsonl` (`{"doc_id",
  "docid"}`) and `queries.jsonl` (`{"doc_id", "query", "kind"}`, kind one of `QUERY_KINDS`); a malformed file raises
  `IndexFormatError` naming the file and line.
* The retriever prompt (`PromptBuilder`): the user turn is the instruction (cut to 64 tokens) + "\n" + the query
  (cut to 64 tokens), in the model's chat template. Training and search build it with this one class, so a trained
  retriever and its queries always agree.
* Docid tokens (`docid_token_ids` + `eos_id_of`): the assistant turn's tokens, ending with the turn's end token —
  the training labels and the trie's paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Sequence

from zerogr_jax.tokenization import chat_prompt

QUERY_KINDS = ("pseudo", "doc_as_query", "span", "title", "keyphrase")


class IndexFormatError(ValueError):
    """An index directory is missing a file or has a malformed row (the message names file and line)."""


@dataclasses.dataclass
class IndexData:
    """The parts of one index directory that training needs."""

    path: str
    instruction: str
    docids: dict[str, str]  # doc_id -> docid
    queries: list[tuple[str, str, str]]  # (doc_id, query, kind)
    fingerprint: str  # sha256 of docids.jsonl + queries.jsonl + the instruction


def _read_jsonl(path: pathlib.Path, required: Sequence[str]) -> list[tuple[int, dict]]:
    """(line number, row) of every non-empty line; a malformed line raises naming file and line."""
    if not path.is_file():
        raise IndexFormatError(f"{path}: missing (is {path.parent} an index directory?)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise IndexFormatError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            missing = [k for k in required if not isinstance(row.get(k), str)]
            if missing:
                raise IndexFormatError(f"{path}:{lineno}: missing or non-string field(s) {missing}")
            rows.append((lineno, row))
    return rows


def load_index(path: str | pathlib.Path) -> IndexData:
    """Reads and checks an index directory (every query's doc_id must have a docid)."""
    root = pathlib.Path(path)
    manifest_file = root / "manifest.json"
    if not manifest_file.is_file():
        raise IndexFormatError(f"{manifest_file}: missing (is {root} an index directory?)")
    try:
        manifest = json.loads(manifest_file.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"{manifest_file}: not valid JSON ({e})") from None
    instruction = manifest.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise IndexFormatError(f"{manifest_file}: no non-empty string field 'instruction'")

    docids: dict[str, str] = {}
    for _, row in _read_jsonl(root / "docids.jsonl", ("doc_id", "docid")):
        docids[row["doc_id"]] = row["docid"]
    queries = []
    qfile = root / "queries.jsonl"
    for lineno, row in _read_jsonl(qfile, ("doc_id", "query")):
        kind = row.get("kind", "pseudo")
        if kind not in QUERY_KINDS:
            raise IndexFormatError(f"{qfile}:{lineno}: kind {kind!r} is not one of {QUERY_KINDS}")
        if row["doc_id"] not in docids:
            raise IndexFormatError(f"{qfile}:{lineno}: doc_id {row['doc_id']!r} has no docid in docids.jsonl")
        queries.append((row["doc_id"], row["query"], kind))

    h = hashlib.sha256()
    for name in ("docids.jsonl", "queries.jsonl"):
        h.update((root / name).read_bytes())
    h.update(instruction.encode())
    return IndexData(str(root), instruction, docids, queries, h.hexdigest()[:16])


class PromptBuilder:
    """Chat-formatted retrieval prompts: instruction and query each cut to a token budget, then templated."""

    def __init__(self, tokenizer, instruction_max_tokens: int = 64, query_max_tokens: int = 64):
        self.tokenizer = tokenizer
        self.instruction_max_tokens = instruction_max_tokens
        self.query_max_tokens = query_max_tokens

    def _cut(self, texts: Sequence[str], budget: int) -> list[str]:
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        # Re-decoding only the texts that were cut keeps every other text byte-identical.
        return [self.tokenizer.decode(i[:budget]) if len(i) > budget else t for t, i in zip(texts, ids)]

    def texts(self, instruction: str, queries: Sequence[str]) -> list[str]:
        (inst,) = self._cut([instruction], self.instruction_max_tokens)
        cut = self._cut(queries, self.query_max_tokens)
        return [chat_prompt(self.tokenizer, [{"role": "user", "content": f"{inst}\n{q}"}]) for q in cut]

    def ids(self, instruction: str, queries: Sequence[str]) -> list[list[int]]:
        texts = self.texts(instruction, queries)
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def eos_id_of(tokenizer) -> int:
    """The token that ends an assistant turn (<|im_end|> for SmolLM2, <|eot_id|> for Llama-3 instruct)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token: cannot end the docid")
    return int(tokenizer.eos_token_id)


def docid_token_ids(tokenizer, docids: Sequence[str]) -> list[list[int]]:
    """Docid token ids as the assistant turn holds them (no special tokens, no leading space), without EOS."""
    return tokenizer(list(docids), add_special_tokens=False)["input_ids"] if docids else []
