"""Docid-prior rescoring (`search.prior_weight`): one trained retriever, one decoded candidate pool per query, the
pool ranked by log p(d | q) - w log p(d | empty query) for several weights w, each paired against w = 0.

    python experiments/prior_rescoring.py --workdir /work/runs/demo_med_try1 --collection med --pool 30 \
        --weights 0,0.25,0.5,0.75,1 --name prior_med_demo
    python experiments/prior_rescoring.py --workdir /work/runs/demo_med_prior --collection med --strategy exact \
        --weights 0,0.25,0.5,0.75,1 --name prior_exact_med_demo

The pool is the `--pool` best docids of a beam of that width (`search.strategy=beam`, `beam_width`), decoded once
(with `--strategy exact`, each weight's exact top K of every docid: `docid_scoring.top_docids`, one search per w);
the prior is every docid's teacher-forced constrained log-probability after the instruction with an empty query
(`docid_scoring`), scored once. w = 0 is the plain beam ranking (the top K of a `--pool`-wide beam), so each
weight's paired test isolates the rescoring. Runs are written to experiments/results/runs/<name>_w<w>.trec and
the paired tests to experiments/results/<name>.json.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

from experiments import compare_runs, finished_run, result_files
from zerogr_jax.evaluation import runfile
from zerogr_jax.retrieval.search import SearchConfig, decode_candidates, rank_documents


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--pool", type=int, default=30, help="beam width = candidates per query")
    ap.add_argument("--strategy", choices=("beam", "exact"), default="beam",
                    help="exact: each weight's exact top K of every docid (branch and bound), --pool is ignored")
    ap.add_argument("--k", type=int, default=10, help="docids kept per query after rescoring")
    ap.add_argument("--weights", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    weights = [float(w) for w in args.weights.split(",")]
    if 0.0 not in weights:
        weights = [0.0, *weights]
    work = pathlib.Path(args.workdir)
    fr = finished_run.load(work, args.collection)
    model, index, trie, doc_ids, queries = fr.retriever, fr.index, fr.trie, fr.doc_ids, fr.queries
    config = SearchConfig(num_docids=args.k, strategy=args.strategy, beam_width=args.pool,
                          batch_size=args.batch_size, prior_weight=1.0)  # 1.0 asks for the pool and the prior
    label = "every docid (exact top K per weight)" if args.strategy == "exact" else f"a {args.pool}-wide beam"
    out_dir = result_files.RESULTS / "runs"
    tag = "exact" if args.strategy == "exact" else f"beam{args.pool}"
    decode = lambda c, prior=None: decode_candidates(model.cfg, model.params, model.tokenizer, trie, queries,  # noqa: E731
                                                     index.instruction, c, prior=prior)
    t0 = time.perf_counter()
    candidates = decode(config) if args.strategy == "beam" else None  # beam: one pool for every weight
    paths, seconds = {}, {}
    for w in weights:
        t1 = time.perf_counter()
        wconfig = dataclasses.replace(config, prior_weight=w)
        if args.strategy == "exact":  # every weight has its own exact top K (the prior scored once, then reused)
            candidates = decode(wconfig, prior=candidates.prior if candidates else None)
        run = rank_documents(trie, doc_ids, candidates, wconfig)
        seconds[w] = round(time.perf_counter() - t1, 1)
        paths[w] = out_dir / f"{args.name}_w{w:g}.trec"
        runfile.write_run(paths[w], run, tag=f"zerogr-{tag}-prior{w:g}")
    decode_s = time.perf_counter() - t0
    out = compare_runs.compare(args.collection, str(paths[0.0]), [str(paths[w]) for w in weights if w != 0.0])
    result_files.write(args.name, result_files.record(
        f"docid-prior rescoring of {label} on {args.collection}, each weight against w = 0",
        out["results"], started=started,
        extra={"workdir": str(work), "queries": out["queries"], "baseline": str(paths[0.0]),
               "decode_and_prior_s": round(decode_s, 1), "seconds_per_weight": seconds, "weights": weights,
               "strategy": args.strategy,
               "pool": trie.num_docids if args.strategy == "exact" else args.pool, "k": args.k}))


if __name__ == "__main__":
    main()
