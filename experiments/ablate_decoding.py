"""Decoding-strategy ablation (paper section 6): one trained retriever and index, five ways to produce K docids.

    python experiments/ablate_decoding.py --workdir runs/zero_shot/cranfield --collection cranfield --k 20

`--workdir` is a finished `zerogr run` directory (index/, train/model). Strategies: greedy (greedy per iteration,
the produced docid removed), beam (exact constrained beam search, K beams), nucleus (top-p 0.9, T 1), fixed
temperature (T 1), reverse annealing (T_max 1.5, k 10, m 0.1). Writes experiments/results/<name>.json with Acc@1,
nDCG@10, Recall@100, MRR@10 and search seconds per strategy, and <name>.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import result_files  # noqa: E402
from zerogr_jax.data import beir, collections  # noqa: E402
from zerogr_jax.data.training_pairs import load_index  # noqa: E402
from zerogr_jax.evaluation import metrics, runfile  # noqa: E402
from zerogr_jax.models.loading import load_model  # noqa: E402
from zerogr_jax.search import STRATEGIES, SearchConfig, build_index_trie, search  # noqa: E402

SHOWN = ("Acc@1", "nDCG@10", "Recall@100", "MRR@10")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True, help="a finished `zerogr run` directory")
    ap.add_argument("--collection", required=True)
    ap.add_argument("--k", type=int, default=20, help="docids per query (K)")
    ap.add_argument("--strategies", default="greedy,beam,nucleus,fixed_temperature,reverse_annealing")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-queries", type=int, default=0, help="the first N judged queries (0 = all)")
    ap.add_argument("--name", default=None, help="results/<name>.json (default ablate_decoding_<collection>)")
    args = ap.parse_args(argv)
    started = time.time()
    name = args.name or f"ablate_decoding_{args.collection}"
    work = pathlib.Path(args.workdir)
    spec = collections.get_collection(args.collection)
    data = beir.load_beir(collections.collection_dir(args.collection), spec.split)
    judged = beir.evaluation_queries(data.queries, data.qrels)
    if args.max_queries:
        judged = dict(list(judged.items())[: args.max_queries])
    queries = {q: v.text for q, v in judged.items()}
    qrels = {q: data.qrels[q] for q in judged}
    retriever = load_model(str(work / "train" / "model"))
    index = load_index(work / "index")
    trie, doc_ids = build_index_trie(index, retriever.tokenizer, retriever.cfg.vocab_size)

    results: dict[str, dict] = {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        if strategy not in STRATEGIES:
            raise SystemExit(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
        config = SearchConfig(num_docids=args.k, strategy=strategy, batch_size=args.batch_size)
        t0 = time.perf_counter()
        run = search(retriever.cfg, retriever.params, retriever.tokenizer, trie, doc_ids, queries,
                     index.instruction, config)
        seconds = time.perf_counter() - t0
        runfile.write_run(work / f"run.{strategy}.trec", run, tag=f"zerogr-{strategy}")
        res = metrics.evaluate(qrels, run, ignore_identical_ids=spec.ignore_identical_ids,
                               corpus_ids=data.corpus.keys())
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
