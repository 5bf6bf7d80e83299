"""Fusion rows: a generative run fused with BM25 by reciprocal rank fusion (k = 60, equal weights: nothing fitted to
the collection), scored beside BM25 alone with paired tests (`compare_runs.compare`).

    python experiments/fusion_rows.py --collection med --run runs/demo_med/run.trec --name fusion_med

Writes, next to the generative run, `bm25.trec` (when it is not there yet) and `zerogr+bm25.trec`, and
experiments/results/<name>.json: paired tests of the fused run and of the generative run against BM25.

`--weights 0.1,0.3,1` adds runs with the generative run's RRF weight w (BM25's stays 1), `zerogr+bm25.w<w>.trec`,
each paired against BM25 too. Choosing w on a collection's own test queries would tune to them: use it to see
whether any weight could help, and pick weights on another collection or on held-out pseudo-queries.
"""

from __future__ import annotations

import argparse
import pathlib
import time

from experiments import compare_runs
from experiments import result_files
from zerogr_jax.data import beir, collections
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.baselines import run_baseline
from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collection", required=True)
    ap.add_argument("--run", required=True, help="the generative TREC run")
    ap.add_argument("--name", required=True, help="results/<name>.json")
    ap.add_argument("--weights", default="1", help="comma-separated RRF weights of the generative run (BM25: 1)")
    args = ap.parse_args(argv)
    started = time.time()
    run_path = pathlib.Path(args.run)
    bm25_path, fused_path = run_path.parent / "bm25.trec", run_path.parent / "zerogr+bm25.trec"
    spec = collections.get_collection(args.collection)
    data = beir.load_beir(collections.collection_dir(args.collection), spec.split)
    queries = {q: v.text for q, v in beir.evaluation_queries(data.queries, data.qrels).items()}
    if not bm25_path.exists():
        runfile.write_run(bm25_path, run_baseline("bm25", data.corpus, queries, 100).run, tag="bm25")
    generative, lexical = runfile.read_run(run_path), runfile.read_run(bm25_path)
    fused_paths = []
    for w in [float(x) for x in args.weights.split(",") if x.strip()]:
        path = fused_path if w == 1.0 else fused_path.with_name(f"zerogr+bm25.w{w:g}.trec")
        runfile.write_run(path, reciprocal_rank_fusion([generative, lexical], weights=[w, 1.0]), tag="zerogr+bm25-rrf")
        fused_paths.append(str(path))
    out = compare_runs.compare(args.collection, str(bm25_path), [*fused_paths, str(run_path)])
    result_files.write(args.name, result_files.record(
        f"RRF(zerogr, BM25) and zerogr against BM25 on {args.collection}", out["results"], started=started,
        extra={"baseline": str(bm25_path), "queries": out["queries"],
               "fusion": f"rrf k=60, generative weights {args.weights}, BM25 weight 1"}))


if __name__ == "__main__":
    main()
