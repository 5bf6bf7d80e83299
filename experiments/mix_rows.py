"""One saved exact pool (`rerank_rows.py --save-candidates`) ordered every way `search.rerank_mix` allows, at each
head depth, each row paired against the recipe's row (the head alone over the best 30): no model runs, so every
ordering of the same pool costs seconds.

    python experiments/mix_rows.py --workdir /work/runs/med_head --collection med \
        --candidates experiments/results/runs/pool100_med_head.candidates.npz --name mix_med_head

Rows `<mix><N>`: the pool's best N by log p(d | q) - w log p(d | empty query) re-ordered by the head alone (`head`),
by z(head) + z(generative score) (`zsum`), or by the RRF of the two orders (`rrf`); top K. Pure generative retrieval:
only the retriever's own scores. Runs go to experiments/results/runs/<name>_<mix><N>.trec, the paired tests to
experiments/results/<name>.json.
"""

from __future__ import annotations

import json
import pathlib
import time

from experiments import compare_runs, finished_run, rerank_rows, result_files
from zerogr_jax.evaluation import runfile
from zerogr_jax.retrieval.search import Candidates, SearchConfig, rank_documents


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--candidates", required=True, help="the pool, from rerank_rows.py --save-candidates")
    ap.add_argument("--depths", default="30,100", help="comma-separated; `all` = every docid (a pool of all)")
    ap.add_argument("--mixes", default="head,zsum,rrf")
    ap.add_argument("--baseline", default="head30", help="the row every other row is paired against")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection)
    candidates = Candidates.load(args.candidates)
    if set(candidates.qids) != set(fr.queries):
        raise SystemExit(f"{args.candidates}: its queries are not {args.collection}'s judged queries")
    out_dir = result_files.RESULTS / "runs"
    paths = {}
    u = fr.trie.num_docids
    for depth in rerank_rows.parse_depths(args.depths, u):
        if depth > candidates.docids.shape[1]:
            raise SystemExit(f"depth {depth} is deeper than the saved pool ({candidates.docids.shape[1]})")
        for mix in args.mixes.split(","):
            config = SearchConfig(num_docids=args.k, strategy="exact", prior_weight=args.prior_weight,
                                  rerank_depth=depth, rerank_mix=mix)
            label = f"{mix}{rerank_rows.depth_label(depth, u)}"
            paths[label] = out_dir / f"{args.name}_{label}.trec"
            runfile.write_run(paths[label], rank_documents(fr.trie, fr.doc_ids, candidates, config),
                              tag=f"zerogr-exact-prior{args.prior_weight:g}-{label}")
    if args.baseline not in paths:
        raise SystemExit(f"--baseline {args.baseline} is not one of the rows {sorted(paths)}")
    base = str(paths[args.baseline])
    out = compare_runs.compare(args.collection, base, [str(p) for k, p in paths.items() if k != args.baseline])
    result_files.write(args.name, result_files.record(
        f"one exact pool on {args.collection} ordered by the head, z-sum and RRF of head and generative score, "
        f"against {args.baseline}", out["results"], started=started,
        extra={"workdir": str(args.workdir), "candidates": str(args.candidates), "queries": out["queries"],
               "baseline": base, "k": args.k, "prior_weight": args.prior_weight}))
    rows = {args.baseline: next(iter(out["results"].values()))["nDCG@10"]["mean_a"]}
    rows.update({pathlib.Path(p).stem.rsplit("_", 1)[1]: r["nDCG@10"]["mean_b"] for p, r in out["results"].items()})
    print(json.dumps({k: round(v, 4) for k, v in rows.items()}, indent=1))


if __name__ == "__main__":
    main()
