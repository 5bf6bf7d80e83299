"""Pseudo-query generation: the shared-prefix + stop-at-line-break path vs running every prompt whole to its EOS or
the token cap, side by side in one run on the same documents and seeds.

    python experiments/bench_query_generation.py --docs 24 --queries-per-doc 4
    python experiments/bench_query_generation.py --docs 16 --top-p 0.9 --name bench_query_generation_top_p09

The prompt is indexing's (`QueryPrompt`: system turn, two worked examples, the task instruction, the document's
first 128 words), B samples per document at temperature 1 (`--temperature`, `--top-p`), up to 64 new tokens,
8 documents (32 rows) per call as `zerogr index --batch-size 32` runs it. The two paths alternate call by call (after
one compile call each), so load drifts reach both. Reported per path: seconds per document and how many samples the
query filters keep; the first lines kept agree between the paths except where float reassociation in the split
prefill flips a draw. Writes experiments/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments import result_files
from zerogr_jax import text_generator as tg
from zerogr_jax import tokenization
from zerogr_jax.data import beir, collections, instructions
from zerogr_jax.indexing import queries
from zerogr_jax.indexing.terms import content_stems, document_text
from zerogr_jax.models.loading import load_model

PATHS = {"whole_prompts_no_stop": dict(share_prefix=False, stop=()),
         "shared_prefix_stop_at_newline": dict(share_prefix=True, stop=("\n",))}


def indexing_prompts(tokenizer, collection: str, n: int):
    """(QueryPrompt, the collection's first n documents, their token-id prompts as `zerogr index` builds them)."""
    corpus, _ = beir.load_corpus(beir.find_jsonl(collections.collection_dir(collection), "corpus"))
    docs = list(corpus.values())[:n]
    prompt = queries.QueryPrompt(instructions.task_instruction(collection))
    encoded = [tokenization.encode(tokenizer, tokenization.chat_prompt(tokenizer, prompt.conversation(d),
                                                                       prompt.assistant_prefix), 1024, keep="right")
               for d in docs]
    return prompt, docs, encoded


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--docs", type=int, default=24, help="documents timed per path (after one compile call)")
    ap.add_argument("--queries-per-doc", type=int, default=4)
    ap.add_argument("--docs-per-call", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--name", default="bench_query_generation")
    args = ap.parse_args(argv)
    started = time.time()
    model = load_model("smollm2-135m-instruct", dtype="float32")
    per, ns = args.docs_per_call, args.queries_per_doc
    prompt, docs, encoded = indexing_prompts(model.tokenizer, args.collection, args.docs + per)
    examples = [q for _, q in prompt.examples]
    seconds = {p: 0.0 for p in PATHS}
    kept = {p: 0 for p in PATHS}
    firsts: dict[str, list[str]] = {p: [] for p in PATHS}
    prefix_lengths = []
    for call, start in enumerate(range(0, len(docs), per)):
        batch, prompts = docs[start:start + per], encoded[start:start + per]
        prefix_lengths.append(tg.shared_prefix_length(prompts, 32))
        for path, how in PATHS.items():
            t0 = time.perf_counter()
            ids = tg.generate_tokens(model, prompts, max_new_tokens=64, temperature=args.temperature,
                                     top_p=args.top_p, batch_size=per, num_samples=ns, seed=call,
                                     share_prefix=how["share_prefix"],
                                     stop_ids=tg.stop_token_ids(model.tokenizer, how["stop"]))
            dt = time.perf_counter() - t0
            texts = [tg.cut_at_stop(model.tokenizer.decode(x, skip_special_tokens=True), how["stop"]) for x in ids]
            if call == 0:
                continue  # compiles
            seconds[path] += dt
            for i, d in enumerate(batch):
                k, _ = queries.filter_queries(texts[i * ns:(i + 1) * ns], content_stems(document_text(d.title, d.text)),
                                              examples)
                kept[path] += len(k)
            firsts[path] += [queries.clean_completion(t) for t in texts]
            print(f"call {call} {path}: {dt:.1f} s", flush=True)
    timed_docs = len(docs) - per
    same = float(np.mean([a == b for a, b in zip(*firsts.values())]))
    results = {"temperature": args.temperature, "top_p": args.top_p, "documents": timed_docs, "queries_per_doc": ns,
               "docs_per_call": per,
               "shared_prefix_tokens": prefix_lengths, "mean_prompt_tokens": float(np.mean([len(p) for p in encoded])),
               "paths": {p: {"seconds": seconds[p], "seconds_per_doc": seconds[p] / timed_docs,
                             "kept_queries": kept[p], "samples": timed_docs * ns} for p in PATHS},
               "same_first_line_share": same,
               "speedup": seconds["whole_prompts_no_stop"] / seconds["shared_prefix_stop_at_newline"]}
    for p, r in results["paths"].items():
        print(f"{p:>30}: {r['seconds_per_doc']:.2f} s/doc, kept {r['kept_queries']}/{r['samples']}")
    print(f"speedup {results['speedup']:.2f}x; same first line in {same:.0%} of samples")
    result_files.write(args.name, result_files.record(
        f"pseudo-query generation, {args.collection}, B = {ns}, T = {args.temperature}, top-p = {args.top_p}, "
        f"SmolLM2-135M f32", results, started=started))


if __name__ == "__main__":
    main()
