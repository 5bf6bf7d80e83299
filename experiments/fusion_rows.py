"""Fusion rows: a generative run fused with BM25, by rank (reciprocal rank fusion, k = 60) and optionally by score
(z-score sums), each scored beside BM25 alone with paired tests (`compare_runs.compare`).

    python experiments/fusion_rows.py --collection med --run runs/demo_med/run.trec --name fusion_med
    python experiments/fusion_rows.py --collection med --run experiments/results/runs/mix300k100_med_head_s4r1_zsum300.trec \
        --bm25-run experiments/results/runs/med_bm25.trec --weights 1,0.5,0.25 \
        --out-dir experiments/results/runs --name fusion_med_s4r1

BM25's run is `--bm25-run`, or `bm25.trec` beside the generative run (computed and written when it is not there).
Rows, each fusing the two runs' top `--depth` documents, written to `<out-dir>/<name>_<row>.trec` (out-dir: the
generative run's folder unless given):
  rrf        RRF, equal weights (`--weights` 1: the paper's RRF, nothing fitted to the collection)
  rrf_w<w>   RRF with the generative run weighted w, BM25 1 (one row per other value of `--weights`)
  zsum_b<b>  z(BM25) + b z(generative score) (`--zscore-weights`; `evaluation.fusion.zscore_fusion`): only for a run
             whose scores are scores (a search run's are 1 / (rank + 1))
Paired tests of every row and of the generative run against BM25 go to experiments/results/<name>.json. Choosing a
weight on a collection's own test queries would tune to them: pick rows on other collections (RESULTS.md, rule H).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from experiments import compare_runs
from experiments import result_files
from zerogr_jax.data import beir, collections
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.baselines import run_baseline
from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion, zscore_fusion


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collection", required=True)
    ap.add_argument("--run", required=True, help="the generative TREC run")
    ap.add_argument("--name", required=True, help="results/<name>.json and the fused runs' file prefix")
    ap.add_argument("--bm25-run", help="BM25's TREC run (default: bm25.trec beside --run, computed when missing)")
    ap.add_argument("--weights", default="1", help="comma-separated RRF weights of the generative run (BM25: 1)")
    ap.add_argument("--zscore-weights", default="", help="comma-separated z-score weights b of the generative run")
    ap.add_argument("--depth", type=int, default=100, help="each run's top N taking part")
    ap.add_argument("--out-dir", help="where the fused runs go (default: the generative run's folder)")
    args = ap.parse_args(argv)
    started = time.time()
    run_path = pathlib.Path(args.run)
    out_dir = pathlib.Path(args.out_dir) if args.out_dir else run_path.parent
    bm25_path = pathlib.Path(args.bm25_run) if args.bm25_run else run_path.parent / "bm25.trec"
    if args.bm25_run and not bm25_path.exists():
        raise SystemExit(f"--bm25-run {bm25_path}: no such file")
    if not bm25_path.exists():
        spec = collections.get_collection(args.collection)
        data = beir.load_beir(collections.collection_dir(args.collection), spec.split)
        queries = {q: v.text for q, v in beir.evaluation_queries(data.queries, data.qrels).items()}
        runfile.write_run(bm25_path, run_baseline("bm25", data.corpus, queries, args.depth).run, tag="bm25")
    generative, lexical = runfile.read_run(run_path), runfile.read_run(bm25_path)
    rows = {}
    for w in _floats(args.weights):
        rows["rrf" if w == 1.0 else f"rrf_w{w:g}"] = reciprocal_rank_fusion(
            [generative, lexical], weights=[w, 1.0], depth=args.depth)
    for b in _floats(args.zscore_weights):
        rows[f"zsum_b{b:g}"] = zscore_fusion([lexical, generative], weights=[1.0, b], depth=args.depth)
    if not rows:
        raise SystemExit("no fusion rows: give --weights and/or --zscore-weights")
    paths = {}
    for label, run in rows.items():
        paths[label] = str(out_dir / f"{args.name}_{label}.trec")
        runfile.write_run(paths[label], run, tag=f"zerogr+bm25-{label}")
    out = compare_runs.compare(args.collection, str(bm25_path), [*paths.values(), str(run_path)])
    result_files.write(args.name, result_files.record(
        f"the generative run fused with BM25 on {args.collection}, and the generative run alone, against BM25",
        out["results"], started=started,
        extra={"baseline": str(bm25_path), "run": str(run_path), "queries": out["queries"], "depth": args.depth,
               "fusion": paths,
               "weights": {"rrf_k": 60, "rrf_generative": args.weights, "zscore_generative": args.zscore_weights,
                           "bm25": 1}}))
    summary = {"bm25": next(iter(out["results"].values()))["nDCG@10"]["mean_a"]}
    summary.update({label: out["results"][p]["nDCG@10"]["mean_b"] for label, p in paths.items()})
    summary["generative"] = out["results"][str(run_path)]["nDCG@10"]["mean_b"]
    print(json.dumps({k: round(v, 4) for k, v in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
