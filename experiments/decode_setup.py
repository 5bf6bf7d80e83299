"""Inputs shared by bench_decode.py and reference_decode_torch.py: scifact titles as docids, chat prompts for the
judged test queries (instruction + query, query cut to 64 tokens), tokenized with the model's tokenizer."""

from __future__ import annotations

import dataclasses
import pathlib

from zerogr_jax.data.beir import evaluation_queries, load_beir
from zerogr_jax.data.instructions import task_instruction
from zerogr_jax.tokenization import chat_prompt, encode

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclasses.dataclass
class DecodeInputs:
    doc_ids: list[str]  # corpus ids, index = document index in the trie
    docid_tokens: list[list[int]]  # per document: title tokens (cut to max_docid_tokens) + EOS
    query_ids: list[str]
    prompts: list[list[int]]  # chat-formatted prompt token ids, ending with the open assistant turn
    eos_id: int


def scifact_inputs(tokenizer, data_dir: pathlib.Path = DEFAULT_DATA, num_queries: int = 16,
                   max_docid_tokens: int = 24, query_tokens: int = 64) -> DecodeInputs:
    collection = load_beir(pathlib.Path(data_dir) / "beir" / "scifact")
    eos = int(tokenizer.eos_token_id)
    doc_ids = list(collection.corpus)
    docid_tokens = [encode(tokenizer, collection.corpus[d].title, max_docid_tokens) + [eos] for d in doc_ids]
    queries = list(evaluation_queries(collection.queries, collection.qrels).values())[:num_queries]
    instruction = task_instruction("scifact")
    prompts = []
    for q in queries:
        query = tokenizer.decode(encode(tokenizer, q.text, query_tokens))
        text = chat_prompt(tokenizer, [{"role": "user", "content": f"{instruction}\n{query}"}])
        prompts.append(encode(tokenizer, text))
    return DecodeInputs(doc_ids=doc_ids, docid_tokens=docid_tokens, query_ids=[q.query_id for q in queries],
                        prompts=prompts, eos_id=eos)
