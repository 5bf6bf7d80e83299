"""Fusion rows from a saved head-scored BM25 pool (`bm25_rescoring.py --head`): BM25's top N and the rerank head's
scores of the same N, fused by rank (RRF, equal and 2:1 weights) and by score (z-score sums, the head weighted b),
each row paired against BM25. No model runs.

    python experiments/head_fusion_rows.py --collection med --bm25-run experiments/results/runs/bm25_head_med_bm25.trec \
        --head-scores experiments/results/runs/bm25_head_med.head_scores.json --name fusion_med_head

Rows: `rrf_head` (RRF k = 60, equal weights: session 14's row), `rrf2_head` (BM25's ranks weighted 2),
`zsum_head_b<b>` (z(BM25) + b z(head) over the query's candidates, `evaluation.fusion.zscore_fusion`); with
`--gen-run` (bm25_rescoring's `<name>_rerank_w<w>.trec`: the same candidates with their generative scores, log p(d | q)
- w log p(d | empty query)) also `zsum3_b<b>` (z(BM25) + b z(head) + b z(generative): the recipe's own ordering,
z(head) + z(generative), given weight b). BM25 picks the candidates, so these are fusion rows, never pure
generative retrieval. Runs go to
experiments/results/runs/<name>_<row>.trec, the paired tests to experiments/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from experiments import compare_runs, result_files
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion, zscore_fusion


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collection", required=True)
    ap.add_argument("--bm25-run", required=True, help="BM25's run over the pool (bm25_rescoring's <name>_bm25.trec)")
    ap.add_argument("--head-scores", required=True, help="query -> doc -> head score (<name>.head_scores.json)")
    ap.add_argument("--gen-run", default="", help="the candidates' generative scores (<name>_rerank_w<w>.trec)")
    ap.add_argument("--betas", default="0.25,0.5,1", help="the head's weights b in the z-score rows")
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    bm25 = runfile.read_run(args.bm25_run)
    head = json.loads(pathlib.Path(args.head_scores).read_text())
    generative = runfile.read_run(args.gen_run) if args.gen_run else None
    for qid, ranking in bm25.items():
        if set(head.get(qid, {})) != set(ranking):
            raise SystemExit(f"{args.head_scores}: query {qid}'s scored documents are not {args.bm25_run}'s")
        if generative is not None and set(generative.get(qid, {})) != set(ranking):
            raise SystemExit(f"{args.gen_run}: query {qid}'s scored documents are not {args.bm25_run}'s")
    depth = max(len(r) for r in bm25.values())
    rows = {"rrf_head": reciprocal_rank_fusion([bm25, head], depth=depth),
            "rrf2_head": reciprocal_rank_fusion([bm25, head], weights=[2.0, 1.0], depth=depth)}
    for b in [float(x) for x in args.betas.split(",")]:
        rows[f"zsum_head_b{b:g}"] = zscore_fusion([bm25, head], weights=[1.0, b], depth=depth)
        if generative is not None:
            rows[f"zsum3_b{b:g}"] = zscore_fusion([bm25, head, generative], weights=[1.0, b, b], depth=depth)
    out_dir = result_files.RESULTS / "runs"
    paths = []
    for label, run in rows.items():
        paths.append(str(out_dir / f"{args.name}_{label}.trec"))
        runfile.write_run(paths[-1], run, tag=f"bm25-head-{label}")
    out = compare_runs.compare(args.collection, args.bm25_run, paths)
    result_files.write(args.name, result_files.record(
        f"BM25's pool and the rerank head's scores of it on {args.collection}, fused by rank and by score, "
        "against BM25", out["results"], started=started,
        extra={"queries": out["queries"], "baseline": args.bm25_run, "head_scores": args.head_scores,
               "gen_run": args.gen_run or None, "depth": depth}))
    print(json.dumps({"bm25": round(next(iter(out["results"].values()))["nDCG@10"]["mean_a"], 4),
                      **{pathlib.Path(p).stem[len(args.name) + 1:]: round(r["nDCG@10"]["mean_b"], 4)
                         for p, r in out["results"].items()}}, indent=1))


if __name__ == "__main__":
    main()
