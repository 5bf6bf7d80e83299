"""The rerank head's rows (`train.rank_score=head`, `search.rerank_depth`): one trained retriever, one exact pool per
query, ranked two ways — by the generative score (the pure generative row the main job reports) and by the rerank
head (the reference's rescoring) — each head depth paired against the generative ranking of the same pool.

    python experiments/rerank_rows.py --workdir /work/runs/med_head --collection med --depths 10,30 \
        --prior-weight 0.5 --name rerank_med_head

The pool: the exact top max(depths) docids by log p(d | q) - w log p(d | empty query) (`search.strategy=exact`,
branch and bound); the head scores every pooled docid once (`docid_scoring.head_scores`). Row `gen` is the pool's
top K (the exact top K: what `zerogr run` reports without the head), row `head<N>` the pool's best N re-ordered by the
head, top K. Both are the retriever's own scores, no BM25: pure generative retrieval. Runs go to
experiments/results/runs/<name>_{gen,head<N>}.trec, the paired tests to experiments/results/<name>.json.
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
    ap.add_argument("--depths", default="10,30", help="head re-ranking depths N (the pool is the largest)")
    ap.add_argument("--k", type=int, default=10, help="docids kept per query")
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--name", required=True)
    ap.add_argument("--save-candidates", action="store_true",
                    help="also write the pool with its scores to experiments/results/runs/<name>.candidates.npz")
    args = ap.parse_args(argv)
    started = time.time()
    depths = sorted({int(d) for d in args.depths.split(",")})
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection)
    model = fr.retriever
    config = SearchConfig(num_docids=args.k, strategy="exact", prior_weight=args.prior_weight,
                          rerank_depth=max(depths))
    t0 = time.perf_counter()
    candidates = decode_candidates(model.cfg, model.params, model.tokenizer, fr.trie, fr.queries,
                                   fr.index.instruction, config)
    search_s = time.perf_counter() - t0
    out_dir = result_files.RESULTS / "runs"
    if args.save_candidates:
        candidates.save(out_dir / f"{args.name}.candidates.npz")
    paths = {}
    for depth in [0, *depths]:
        label = "gen" if not depth else f"head{depth}"
        run = rank_documents(fr.trie, fr.doc_ids, candidates, dataclasses.replace(config, rerank_depth=depth))
        paths[label] = out_dir / f"{args.name}_{label}.trec"
        runfile.write_run(paths[label], run, tag=f"zerogr-exact-prior{args.prior_weight:g}-{label}")
    out = compare_runs.compare(args.collection, str(paths["gen"]), [str(p) for k, p in paths.items() if k != "gen"])
    result_files.write(args.name, result_files.record(
        f"rerank head on {args.collection}: the exact pool re-ordered by the head, against its generative order",
        out["results"], started=started,
        extra={"workdir": str(args.workdir), "queries": out["queries"], "baseline": str(paths["gen"]),
               "search_and_head_s": round(search_s, 1), "depths": depths, "k": args.k,
               "prior_weight": args.prior_weight}))


if __name__ == "__main__":
    main()
