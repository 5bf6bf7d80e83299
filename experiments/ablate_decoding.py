"""Decoding-strategy ablation (paper section 6): one trained retriever and index, five ways to produce K docids.

    python experiments/ablate_decoding.py --workdir runs/zero_shot/cranfield --collection cranfield --k 20

`--workdir` is a finished `zerogr run` directory (index/, train/model). Strategies: greedy (greedy per iteration,
the produced docid removed), beam (exact constrained beam search, K beams), nucleus (top-p 0.9, T 1), fixed
temperature (T 1), reverse annealing (T_max 1.5, k 10, m 0.1). Writes experiments/results/<name>.json with Acc@1,
nDCG@10, Recall@100, MRR@10 and search seconds per strategy, and <name>.png.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

from experiments import finished_run
from experiments import result_files
from zerogr_jax.evaluation import metrics, runfile
from zerogr_jax.retrieval.search import STRATEGIES, SearchConfig, search

SHOWN = ("Acc@1", "nDCG@10", "Recall@100", "MRR@10")


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--k", type=int, default=20, help="docids per query (K)")
    ap.add_argument("--strategies", default="greedy,beam,nucleus,fixed_temperature,reverse_annealing")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-queries", type=int, default=0, help="the first N judged queries (0 = all)")
    ap.add_argument("--name", default=None, help="results/<name>.json (default ablate_decoding_<collection>)")
    args = ap.parse_args(argv)
    started = time.time()
    name = args.name or f"ablate_decoding_{args.collection}"
    work = pathlib.Path(args.workdir)
    fr = finished_run.load(work, args.collection, args.max_queries)
    queries, retriever = fr.queries, fr.retriever

    results: dict[str, dict] = {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        if strategy not in STRATEGIES:
            raise SystemExit(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
        config = SearchConfig(num_docids=args.k, strategy=strategy, batch_size=args.batch_size)
        t0 = time.perf_counter()
        run = search(retriever.cfg, retriever.params, retriever.tokenizer, fr.trie, fr.doc_ids, queries,
                     fr.index.instruction, config)
        seconds = time.perf_counter() - t0
        runfile.write_run(work / f"run.{strategy}.trec", run, tag=f"zerogr-{strategy}")
        res = metrics.evaluate(fr.qrels, run, ignore_identical_ids=fr.spec.ignore_identical_ids,
                               corpus_ids=fr.corpus_ids)
        results[strategy] = {"metrics": res.metrics, "search_s": round(seconds, 1),
                             "config": dataclasses.asdict(config)}
        print(strategy, {m: round(res.metrics[m], 4) for m in SHOWN}, f"{seconds:.0f} s", flush=True)
        body = result_files.record(f"decoding ablation on {args.collection}, retriever {work}/train/model, K={args.k}",
                                   results, started=started, extra={"queries": len(queries)})
        result_files.write(name, body)
        result_files.grouped_bars(name, list(SHOWN), {s: [r["metrics"][m] for m in SHOWN] for s, r in results.items()},
                                  ylabel="score", title=f"decoding strategies, {args.collection}, K={args.k}")


if __name__ == "__main__":
    main()
