"""Fusion by rescoring: BM25's top N documents per query scored by a trained generative retriever (each candidate's
docid log-probability, exact, minus w times its docid prior; `zerogr_jax/retrieval/candidate_scoring.py`), then

* `rerank_w<w>`: BM25's N candidates in the retriever's order (BM25 chooses the pool, the retriever orders it);
* `rrf_w<w>`: RRF (k = 60, equal weights: nothing fitted) of BM25's ranking and that reranking.

With `--head` (a retriever trained with train.rank_score=head, experiments/configs/rerank_head.py) the candidates
are scored by the rerank head instead (`candidate_scoring.head_candidates`), rows

* `rerank_head`: BM25's N candidates in the head's order;
* `rrf_head`: RRF (k = 60, equal weights) of BM25's ranking and that reranking.

Every row is paired against BM25 (`compare_runs.compare`). These are fusion rows: BM25 picks the candidates, so they
are never reported as pure generative retrieval.

    python experiments/bm25_rescoring.py --workdir /work/runs/med_demo --collection med --depth 100 \
        --prior-weights 0,0.5,1 --name bm25_rescoring_med_demo
    python experiments/bm25_rescoring.py --workdir /work/runs/med_head --collection med --depth 100 \
        --prior-weights '' --head --name bm25_head_med

The candidates' scores are written to experiments/results/runs/<name>.scores.json (query -> doc -> log p, and the
prior), so other combinations can be computed without the model.
"""

from __future__ import annotations

import json
import pathlib
import time

from experiments import compare_runs, finished_run, result_files
from zerogr_jax.atomic_files import atomic_write_json
from zerogr_jax.retrieval.candidate_scoring import head_candidates, score_candidates
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.baselines import run_baseline
from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion
from zerogr_jax.evaluation.metrics import trec_order


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--depth", type=int, default=100, help="BM25 candidates per query")
    ap.add_argument("--prior-weights", default="0,0.5,1")
    ap.add_argument("--head", action="store_true", help="also rows ordered by the rerank head")
    ap.add_argument("--head-token", default="<empty_output>", help="the head's token (train.rerank_token)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    started = time.time()
    work = pathlib.Path(args.workdir)
    fr = finished_run.load(work, args.collection)
    queries, model = fr.queries, fr.retriever
    lexical = run_baseline("bm25", fr.corpus, queries, args.depth).run
    out_dir = result_files.RESULTS / "runs"
    bm25_path = out_dir / f"{args.name}_bm25.trec"
    runfile.write_run(bm25_path, lexical, tag="bm25")

    candidates = {q: [d for d, _ in trec_order(lexical.get(q, {}))] for q in queries}
    weights = [float(x) for x in args.prior_weights.split(",") if x.strip()]
    paths, timings = [], {}
    if weights:
        t0 = time.perf_counter()
        scored = score_candidates(model.cfg, model.params, model.tokenizer, fr.trie, fr.doc_ids, queries,
                                  fr.index.instruction, candidates, progress=not args.no_progress)
        timings["score_candidates_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(out_dir / f"{args.name}.scores.json", {"logprobs": scored.logprobs, "prior": scored.prior})
    for w in weights:
        rerank = scored.scores(w)
        paths.append(out_dir / f"{args.name}_rerank_w{w:g}.trec")
        runfile.write_run(paths[-1], rerank, tag=f"bm25-top{args.depth}-zerogr-rerank-prior{w:g}")
        paths.append(out_dir / f"{args.name}_rrf_w{w:g}.trec")
        runfile.write_run(paths[-1], reciprocal_rank_fusion([lexical, rerank]), tag=f"rrf-bm25-zerogr-prior{w:g}")
    if args.head:
        t0 = time.perf_counter()
        head = head_candidates(model.cfg, model.params, model.tokenizer, fr.trie, fr.doc_ids, queries,
                               fr.index.instruction, candidates, args.head_token, progress=not args.no_progress)
        timings["head_candidates_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(out_dir / f"{args.name}.head_scores.json", head)
        paths.append(out_dir / f"{args.name}_rerank_head.trec")
        runfile.write_run(paths[-1], head, tag=f"bm25-top{args.depth}-zerogr-head")
        paths.append(out_dir / f"{args.name}_rrf_head.trec")
        runfile.write_run(paths[-1], reciprocal_rank_fusion([lexical, head]), tag="rrf-bm25-zerogr-head")
    if not paths:
        raise SystemExit("nothing to score: give --prior-weights or --head")
    out = compare_runs.compare(args.collection, str(bm25_path), [str(p) for p in paths])
    result_files.write(args.name, result_files.record(
        f"BM25 top-{args.depth} rescored by the generative retriever ({work}) on {args.collection}, against BM25",
        out["results"], started=started,
        extra={"workdir": str(work), "queries": out["queries"], "baseline": str(bm25_path), "depth": args.depth,
               "prior_weights": args.prior_weights, "head": args.head, "head_token": args.head_token, **timings,
               "scores": str(out_dir / f"{args.name}.scores.json") if weights else None}))
    print(json.dumps({str(pathlib.Path(p).name): round(r["nDCG@10"]["mean_b"], 4)
                      for p, r in out["results"].items()}, indent=1))


if __name__ == "__main__":
    main()
