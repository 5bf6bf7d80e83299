"""Exact search with docids packed as prefix trees (`docid_scoring.score_tree`, the default since 1e61647) against
one row per docid (`layout="rows"`, the search before), the two alternating over the same retriever, trie and
queries, in one process.

    python experiments/bench_tree_rows.py --workdir /work/runs/demo_med --collection med --queries 10 --k 10
    python experiments/bench_tree_rows.py --workdir /work/runs/med_head --collection med --k 300 --head

First the docid prior (every docid scored once after the empty query), twice per layout in the order rows, tree,
tree, rows: each layout's first call holds its compiles and is reported apart. Then `top_docids` query by query
(K = `--k`, w = `--prior-weight`; `--head`: the rerank head scored in the same pass, as the head recipe's pool), the
side that goes first alternating; the first query (compiles) is reported apart and left out of the ratio. Checks
that both layouts return the same docids with the same scores up to float rounding (docids whose scores differ by
less than that may trade ranks: counted, with the largest difference of the score at a rank), and records the token
slots each layout runs (padding included). Writes experiments/results/<name>.json.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import time

import jax
import numpy as np

from experiments import finished_run, result_files
from zerogr_jax import rerank_head
from zerogr_jax.retrieval import docid_scoring
from zerogr_jax.retrieval.docid_scoring import score_all_docids, top_docids
from zerogr_jax.retrieval_contract import PromptBuilder

LAYOUTS = ("rows", "tree")


def count_slots() -> dict[str, int]:
    """Wraps the two full-scoring programs to count the token slots they run, per layout (shape [C, W] tokens)."""
    slots = {"rows": 0, "tree": 0}
    for layout, attr in (("rows", "_score_rows"), ("rows", "_score_head_rows"), ("tree", "_score_tree_rows")):
        fn = getattr(docid_scoring, attr)

        def run(*a, _fn=fn, _layout=layout, _attr=attr, **kw):
            tokens = a[6]  # (model, params, first, shared, next_pos, trie, tokens, ...)
            fed = tokens.shape[1] - 1 if _attr == "_score_rows" else tokens.shape[1]  # `_score_rows` feeds L - 1
            slots[_layout] += tokens.shape[0] * fed
            return _fn(*a, **kw)

        setattr(docid_scoring, attr, run)
    return slots


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--queries", type=int, default=10, help="judged queries timed per side (the first is compile)")
    ap.add_argument("--k", type=int, default=10, help="docids per query (the pool size with --head)")
    ap.add_argument("--head", action="store_true", help="score the rerank head in the same pass (the head recipe)")
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--name", default="bench_tree_rows")
    args = ap.parse_args(argv)
    started, load_at_start = time.time(), list(os.getloadavg())
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection, max_queries=args.queries)
    tok = fr.retriever.tokenizer
    trie, dev, model, params, paths, pad = fr.exact_scoring()
    head_token = rerank_head.token_id(tok, rerank_head.DEFAULT_TOKEN) if args.head else None
    builder = PromptBuilder(tok)
    slots = count_slots()

    prior_s = {layout: [] for layout in LAYOUTS}
    priors = {}
    empty = builder.ids(fr.index.instruction, [""])[0]
    for layout in ("rows", "tree", "tree", "rows"):
        t0 = time.perf_counter()
        priors[layout] = jax.block_until_ready(score_all_docids(model, params, empty, trie, dev, pad_id=pad,
                                                                paths=paths, layout=layout))
        prior_s[layout].append(round(time.perf_counter() - t0, 2))
    prior_diff = float(np.max(np.abs(priors["rows"] - priors["tree"])))
    prior_slots = {layout: n // 2 for layout, n in slots.items()}  # per call (two calls each)
    prior = priors["rows"]

    seconds = {layout: [] for layout in LAYOUTS}
    answers = {layout: [] for layout in LAYOUTS}
    query_slots = {layout: 0 for layout in LAYOUTS}
    prompts = builder.ids(fr.index.instruction, list(fr.queries.values()))
    for n, prompt in enumerate(prompts):
        for layout in (LAYOUTS if n % 2 == 0 else LAYOUTS[::-1]):  # who goes first alternates
            before = slots[layout]
            t0 = time.perf_counter()
            answers[layout].append(top_docids(model, params, prompt, trie, dev, args.k, prior=prior,
                                              prior_weight=args.prior_weight, pad_id=pad, paths=paths,
                                              head_token=head_token, layout=layout))
            seconds[layout].append(time.perf_counter() - t0)
            if n:
                query_slots[layout] += slots[layout] - before
    pairs = list(zip(answers["rows"], answers["tree"]))
    same_ids = all(np.array_equal(a.ids, b.ids) for a, b in pairs)
    # two docids whose scores differ by less than the layouts' rounding (~1e-5) may trade ranks: compare the corrected
    # score at each rank, and each docid both answers hold by its own scores
    corrected = lambda t: t.logprobs - args.prior_weight * prior[t.ids]
    rank_score_diff = max(float(np.max(np.abs(corrected(a) - corrected(b)))) for a, b in pairs)
    swapped = sum(int((a.ids != b.ids).sum()) for a, b in pairs)

    def by_docid(a, b, values):
        common, ia, ib = np.intersect1d(a.ids, b.ids, return_indices=True)
        return float(np.max(np.abs(values(a)[ia] - values(b)[ib]))) if len(common) else 0.0

    logprob_diff = max(by_docid(a, b, lambda t: t.logprobs) for a, b in pairs)
    head_diff = max(by_docid(a, b, lambda t: t.head) for a, b in pairs) if args.head else None
    rows = {layout: {"prior_s": prior_s[layout], "prior_slots": prior_slots[layout],
                     "first_query_s": round(s[0], 2), "median_s_per_query": round(statistics.median(s[1:]), 2),
                     "total_s_after_first": round(sum(s[1:]), 1), "full_scoring_slots_after_first": query_slots[layout],
                     "scored_in_full_mean": round(float(np.mean([a.scored for a in answers[layout]])), 1),
                     "per_query_s": [round(x, 2) for x in s]}
            for layout, s in seconds.items()}
    ratio = rows["rows"]["total_s_after_first"] / rows["tree"]["total_s_after_first"]
    prior_ratio = prior_s["rows"][1] / prior_s["tree"][1]
    result_files.write(args.name, result_files.record(
        f"exact search on {args.collection}: docids as prefix-tree rows vs one row each, K = {args.k}"
        + (", head in the same pass" if args.head else ""), rows, started=started,
        extra={"workdir": str(args.workdir), "queries": len(prompts), "k": args.k, "head": args.head,
               "prior_weight": args.prior_weight, "load_average_at_start": load_at_start,
               "ratio_queries_after_first": round(ratio, 3), "ratio_prior_second_call": round(prior_ratio, 3),
               "same_docids_in_order": same_ids, "ranks_holding_another_docid": swapped,
               "max_rank_score_abs_diff": rank_score_diff, "max_logprob_abs_diff_same_docid": logprob_diff,
               "max_head_abs_diff_same_docid": head_diff, "max_prior_abs_diff": prior_diff}))
    print({k: (r["prior_s"], r["median_s_per_query"]) for k, r in rows.items()},
          f"queries {ratio:.2f}x, prior {prior_ratio:.2f}x", same_ids, swapped, rank_score_diff, logprob_diff,
          head_diff)


if __name__ == "__main__":
    main()
