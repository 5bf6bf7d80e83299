"""The baseline: ZeroGR's reference decoding procedure with `transformers`.

Per query, the Python dict trie is deep-copied; then K separate `model.generate` calls, each masked by
`prefix_allowed_tokens_fn` over the trie, greedy at t_0 = 0 and sampled at the reverse-annealed t_i after; the
docid produced is deleted from the query's trie after each call. The model is the embedded SmolLM2-135M-Instruct
GGUF loaded with `gguf_file=` and `GgufConfig(dequantize=True)` (dense weights; transformers' default GGUF loading
keeps the quantized blocks and is several times slower).

    python experiments/reference_decode_torch.py --num-queries 2 --k 100 --dtype float32
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import time

from experiments.decode_setup import DEFAULT_DATA, scifact_inputs
from zerogr_jax.retrieval.decoding import reverse_annealing_temperatures
from experiments.reference_trie import dict_trie, remove_path


def load_torch_model(dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from zerogr_jax.models.embedded import embedded_gguf_path

    gguf = embedded_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True),
        dtype=getattr(torch, dtype), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    return model.eval(), tokenizer


def reference_topk(model, prompt: list[int], trie: dict, k: int, temperatures, eos_id: int, pad_id: int,
                   max_new_tokens: int) -> list[tuple[int, ...]]:
    """K docids for one query, the reference way (trie deep-copied here, one generate() call per docid)."""
    import torch

    trie = copy.deepcopy(trie)
    input_ids = torch.tensor([prompt])
    attention = torch.ones_like(input_ids)
    n = len(prompt)
    found = []

    def allowed(batch_id, ids):
        node = trie
        for t in ids[n:].tolist():
            node = node.get(t)
            if node is None:  # past EOS (cannot happen with one row): only EOS
                return [eos_id]
        return list(node) or [eos_id]

    for i in range(k):
        if not trie:
            break
        t = float(temperatures[i])
        sampling = dict(do_sample=False) if t == 0 else dict(do_sample=True, temperature=t, top_k=0, top_p=1.0)
        with torch.no_grad():
            out = model.generate(input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                                 prefix_allowed_tokens_fn=allowed, eos_token_id=eos_id, pad_token_id=pad_id,
                                 **sampling)
        docid = out[0, n:].tolist()
        docid = tuple(docid[:docid.index(eos_id) + 1])
        found.append(docid)
        remove_path(trie, docid)
    return found


class ReferenceDecoder:
    """The reference model loaded once; `decode(prompt)` -> (K docids, seconds) for one query (batch 1)."""

    def __init__(self, inputs, k: int, dtype: str, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.torch_threads = torch.get_num_threads()
        self.model, _ = load_torch_model(dtype)
        self.inputs, self.k, self.dtype = inputs, k, dtype
        self.trie = dict_trie(inputs.docid_tokens)
        self.temps = reverse_annealing_temperatures(k)
        self.depth = max(len(s) for s in inputs.docid_tokens)
        torch.manual_seed(0)

    def decode(self, prompt: list[int]) -> tuple[list[tuple[int, ...]], float]:
        start = time.perf_counter()
        docids = reference_topk(self.model, prompt, self.trie, self.k, self.temps, self.inputs.eos_id,
                                self.inputs.eos_id, self.depth)
        return docids, time.perf_counter() - start


def run_reference(inputs, k: int, dtype: str, num_queries: int, threads: int | None = None) -> dict:
    ref = ReferenceDecoder(inputs, k, dtype, threads)
    per_query, produced = [], 0
    for prompt in inputs.prompts[:num_queries]:
        docids, seconds = ref.decode(prompt)
        per_query.append(seconds)
        produced += len(docids)
    total = sum(per_query)
    return dict(engine="transformers.generate + prefix_allowed_tokens_fn", dtype=dtype, queries=len(per_query),
                k=k, docids=produced, seconds=round(total, 2), s_per_query=round(total / len(per_query), 2),
                docids_per_s=round(produced / total, 3), per_query_s=[round(s, 2) for s in per_query],
                torch_threads=ref.torch_threads)


def main(argv=None):
    ap = argparse.ArgumentParser(description="ZeroGR reference decoding (transformers) on scifact titles")
    ap.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA)
    ap.add_argument("--num-queries", type=int, default=2)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-docid-tokens", type=int, default=24)
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    from zerogr_jax.models.embedded import embedded_gguf_path

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    inputs = scifact_inputs(tokenizer, args.data_dir, args.num_queries, args.max_docid_tokens)
    print(json.dumps(run_reference(inputs, args.k, args.dtype, args.num_queries), indent=2))


if __name__ == "__main__":
    main()
