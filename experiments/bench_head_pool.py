"""The head recipe's search per query (exact pool of the best N by the prior-corrected score, the rerank head on all
N): the head scored in the pass that scores each docid (`top_docids(head_token=...)`, since fd53f1f) against a
second pass over the pool (`top_docids`, then `head_scores`: the search before), the two alternating query by query
over the same queries, trie and retriever.

    python experiments/bench_head_pool.py --workdir /work/runs/med_head --collection med --queries 10 --depth 100

The docid prior is scored once and shared. Each side's first query (its compiles) is reported apart and left out of
the per-query figures. Also checks that both sides return the same docids and (up to float rounding) the same head
scores. Writes experiments/results/<name>.json.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import time

import numpy as np

from experiments import finished_run, result_files
from zerogr_jax import rerank_head
from zerogr_jax.retrieval.docid_scoring import head_scores, score_all_docids, top_docids
from zerogr_jax.retrieval_contract import PromptBuilder


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--queries", type=int, default=10, help="judged queries timed per side (the first is compile)")
    ap.add_argument("--depth", type=int, default=100, help="pool size N, all of it scored by the head")
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--name", default="bench_head_pool")
    args = ap.parse_args(argv)
    started, load_at_start = time.time(), list(os.getloadavg())
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection, max_queries=args.queries)
    tok = fr.retriever.tokenizer
    trie, dev, model, params, paths, pad = fr.exact_scoring()
    head_token = rerank_head.token_id(tok, rerank_head.DEFAULT_TOKEN)
    builder = PromptBuilder(tok)
    prior = score_all_docids(model, params, builder.ids(fr.index.instruction, [""])[0], trie, dev, pad_id=pad)
    common = dict(prior=prior, prior_weight=args.prior_weight, pad_id=pad, paths=paths)

    def two_passes(prompt):
        top = top_docids(model, params, prompt, trie, dev, args.depth, **common)
        return top.ids, head_scores(model, params, prompt, trie, top.ids, head_token, pad_id=pad, paths=paths)

    def one_pass(prompt):
        top = top_docids(model, params, prompt, trie, dev, args.depth, head_token=head_token, **common)
        return top.ids, top.head

    sides = {"two passes (before)": two_passes, "one pass": one_pass}
    seconds = {name: [] for name in sides}
    answers = {name: [] for name in sides}
    prompts = builder.ids(fr.index.instruction, list(fr.queries.values()))
    for n, prompt in enumerate(prompts):
        order = list(sides) if n % 2 == 0 else list(sides)[::-1]  # who goes first alternates too
        for name in order:
            t0 = time.perf_counter()
            answers[name].append(sides[name](prompt))
            seconds[name].append(time.perf_counter() - t0)
    before, after = answers["two passes (before)"], answers["one pass"]
    same_ids = all(np.array_equal(a[0], b[0]) for a, b in zip(before, after))
    head_diff = max(float(np.max(np.abs(a[1] - b[1]))) for a, b in zip(before, after))
    rows = {name: {"first_query_s": round(s[0], 2), "median_s_per_query": round(statistics.median(s[1:]), 2),
                   "total_s_after_first": round(sum(s[1:]), 1), "per_query_s": [round(x, 2) for x in s]}
            for name, s in seconds.items()}
    ratio = rows["two passes (before)"]["total_s_after_first"] / rows["one pass"]["total_s_after_first"]
    result_files.write(args.name, result_files.record(
        f"the head recipe's search on {args.collection}: head in the scoring pass vs a second pass, depth {args.depth}",
        rows, started=started,
        extra={"workdir": str(args.workdir), "queries": len(prompts), "depth": args.depth,
               "prior_weight": args.prior_weight, "load_average_at_start": load_at_start,
               "ratio_after_first": round(ratio, 3), "same_docids": same_ids, "max_head_abs_diff": head_diff}))
    print({name: r["median_s_per_query"] for name, r in rows.items()}, f"ratio {ratio:.2f}x", same_ids, head_diff)


if __name__ == "__main__":
    main()
