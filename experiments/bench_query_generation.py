"""Pseudo-query generation: the shared-prefix + stop-at-line-break path vs running every prompt whole to its EOS or
the token cap, side by side in one run on the same documents and seeds.

    python experiments/bench_query_generation.py --docs 24 --queries-per-doc 4
    python experiments/bench_query_generation.py --docs 16 --top-p 0.9 --name bench_query_generation_top_p09
    python experiments/bench_query_generation.py --docs 32 --docs-per-call 8 32 --paths shared_prefix_stop_at_newline \
        --name bench_query_generation_batch

The prompt is indexing's (`QueryPrompt`: system turn, two worked examples, the task instruction, the document's
first 128 words), B samples per document at temperature 1 (`--temperature`, `--top-p`), up to 64 new tokens,
`--docs-per-call` documents (B rows each) per call. Every (path, documents per call) pair is a side: the sides take
turns over the same block of documents (the largest documents per call; smaller ones run it in several calls), after
one untimed compile block each (its seconds recorded as first_block_seconds), so load drifts reach all of them.
`zerogr index` runs index.batch_size / B documents per call (32 rows: 8 documents at B = 4, `JaxTextGenerator.chat`).
Reported per side: seconds per document, how many samples the query filters keep, and why they drop the others.
The first lines kept agree between the paths except where float reassociation in the split prefill flips a draw
(sides with different documents per call draw with other seeds). Writes experiments/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

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
    ap.add_argument("--docs-per-call", type=int, nargs="+", default=[8])
    ap.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--name", default="bench_query_generation")
    args = ap.parse_args(argv)
    started = time.time()
    model = load_model("smollm2-135m-instruct", dtype="float32")
    block, ns = max(args.docs_per_call), args.queries_per_doc
    if args.docs % block:
        raise SystemExit(f"--docs {args.docs} must be a multiple of the largest --docs-per-call ({block})")
    sides = [(p, per) for p in args.paths for per in args.docs_per_call]
    name = lambda p, per: p if len(args.docs_per_call) == 1 else f"{p}@{per}"  # noqa: E731
    prompt, docs, encoded = indexing_prompts(model.tokenizer, args.collection, args.docs + block)
    examples = [q for _, q in prompt.examples]
    seconds = {name(*s): 0.0 for s in sides}
    kept = {name(*s): 0 for s in sides}
    dropped = {name(*s): Counter() for s in sides}  # samples the query filters drop, per reason
    first_block = {}  # seconds of each side's untimed first block: its compiles and one block of generation
    firsts: dict[str, list[str]] = {name(*s): [] for s in sides}
    prefix_lengths = []
    for call, start in enumerate(range(0, len(docs), block)):
        prefix_lengths.append(tg.shared_prefix_length(encoded[start:start + block], 32))
        for path, per in sides:
            how, side = PATHS[path], name(path, per)
            dt, texts = 0.0, []
            for sub in range(start, start + block, per):
                t0 = time.perf_counter()
                ids = tg.generate_tokens(model, encoded[sub:sub + per], max_new_tokens=64,
                                         temperature=args.temperature, top_p=args.top_p, batch_size=per,
                                         num_samples=ns, seed=call, share_prefix=how["share_prefix"],
                                         stop_ids=tg.stop_token_ids(model.tokenizer, how["stop"]))
                dt += time.perf_counter() - t0
                texts += [tg.cut_at_stop(model.tokenizer.decode(x, skip_special_tokens=True), how["stop"])
                          for x in ids]
            if call == 0:
                first_block[side] = dt
                continue
            seconds[side] += dt
            for i, d in enumerate(docs[start:start + block]):
                k, why = queries.filter_queries(texts[i * ns:(i + 1) * ns],
                                                content_stems(document_text(d.title, d.text)), examples)
                kept[side] += len(k)
                dropped[side].update(why)
            firsts[side] += [queries.clean_completion(t) for t in texts]
            print(f"block {call} {side}: {dt:.1f} s", flush=True)
    timed_docs = len(docs) - block
    first_lines = list(firsts.values())
    same = float(np.mean([a == b for a, b in zip(first_lines[0], first_lines[-1])]))
    results = {"temperature": args.temperature, "top_p": args.top_p, "documents": timed_docs, "queries_per_doc": ns,
               "docs_per_call": args.docs_per_call[0] if len(args.docs_per_call) == 1 else args.docs_per_call,
               "shared_prefix_tokens": prefix_lengths, "mean_prompt_tokens": float(np.mean([len(p) for p in encoded])),
               "paths": {s: {"seconds": seconds[s], "seconds_per_doc": seconds[s] / timed_docs,
                             "kept_queries": kept[s], "samples": timed_docs * ns, "dropped": dict(dropped[s]),
                             "first_block_seconds": first_block[s]} for s in seconds},
               "same_first_line_share": same,
               "speedup": seconds[name(*sides[0])] / seconds[name(*sides[-1])]}
    for p, r in results["paths"].items():
        print(f"{p:>33}: {r['seconds_per_doc']:.2f} s/doc, kept {r['kept_queries']}/{r['samples']}")
    print(f"speedup (first side / last side) {results['speedup']:.2f}x; same first line in {same:.0%} of samples")
    result_files.write(args.name, result_files.record(
        f"pseudo-query generation, {args.collection}, B = {ns}, T = {args.temperature}, top-p = {args.top_p}, "
        f"SmolLM2-135M f32", results, started=started))


if __name__ == "__main__":
    main()
