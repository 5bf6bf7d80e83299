"""Does a workdir's retriever reproduce a saved pool? Re-searches the pool's first `--queries` queries (and the docid
prior) with the search that made it, and compares docids, scores and head scores with the saved arrays.

    python experiments/pool_check.py --workdir /work/runs/cranfield_head_s4r1 --collection cranfield \
        --candidates experiments/results/runs/pool300_cranfield_head_s4r1.candidates.npz --queries 4

For a retriever retrained after its workdir was lost: rows computed later from the saved pool (`mix_rows.py`,
`free_rows.py`) combine the saved scores with the new model's, which is sound only if the two models are the same.
Each query's docids are compared as a set, and each docid's scores with its own (two docids whose corrected scores
tie to float noise may trade places in the pool's order; `positions` counts those places). Exits 1 when a docid is
in one pool and not the other, or when any score differs by more than `--atol`; writes nothing.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from experiments import finished_run
from zerogr_jax.retrieval.search import Candidates, SearchConfig, decode_candidates


def differences(saved: Candidates, new: Candidates, n: int) -> dict[str, float]:
    """Over the first n queries: `docids`, how many (query, docid) pairs are in one pool and not the other;
    `positions`, how many pool positions hold another docid (docids whose scores tie to float noise may trade
    places: the pool is sorted by a score computed in float32); `logprobs` and `rerank`, the max |difference| of a
    docid's score between the pools, each docid matched to itself; `prior`, the max |difference| of the docid prior."""
    a, b = saved.docids[:n], new.docids
    out = {"docids": 0.0, "positions": float(np.sum(a != b))}
    finite = lambda x: np.where(np.isfinite(x), x, 0.0)  # noqa: E731 (-inf / NaN padding sits at the same places)
    arrays = {"logprobs": (saved.logprobs, new.logprobs)}
    if saved.rerank is not None:
        arrays["rerank"] = (saved.rerank, new.rerank)
    worst = {k: 0.0 for k in arrays}
    for q in range(n):
        ia, ib = np.flatnonzero(a[q] >= 0), np.flatnonzero(b[q] >= 0)  # -1: padding; a pool's docids are unique
        common, i, j = np.intersect1d(a[q, ia], b[q, ib], assume_unique=True, return_indices=True)
        i, j = ia[i], ib[j]
        out["docids"] += len(ia) + len(ib) - 2 * len(common)
        for k, (x, y) in arrays.items():
            if len(common):
                worst[k] = max(worst[k], float(np.max(np.abs(finite(x[q, i]) - finite(y[q, j])))))
    out.update(worst)
    if saved.prior is not None:
        out["prior"] = float(np.max(np.abs(saved.prior - new.prior)))
    return out


def main(argv=None) -> int:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--candidates", required=True, help="a saved pool (rerank_rows.py --save-candidates)")
    ap.add_argument("--queries", type=int, default=4, help="how many of its first queries to re-search")
    ap.add_argument("--prior-weight", type=float, default=0.5, help="the pool's search.prior_weight")
    ap.add_argument("--atol", type=float, default=1e-4)
    args = ap.parse_args(argv)
    saved = Candidates.load(args.candidates)
    depth = int(np.sum(np.isfinite(saved.rerank[0]))) if saved.rerank is not None else 0
    config = SearchConfig(num_docids=10, strategy="exact", prior_weight=args.prior_weight, rerank_depth=depth)
    if saved.docids.shape[1] != max(10, depth):  # checked before the model loads
        raise SystemExit(f"{args.candidates}: a pool of {saved.docids.shape[1]}, not what this check searches")
    fr = finished_run.load(args.workdir, args.collection)
    qids = saved.qids[:args.queries]
    if any(q not in fr.queries for q in qids):
        raise SystemExit(f"{args.candidates}: queries not judged in {args.collection}: the pool is another collection's")
    new = decode_candidates(fr.retriever.cfg, fr.retriever.params, fr.retriever.tokenizer, fr.trie,
                            {q: fr.queries[q] for q in qids}, fr.index.instruction, config, progress=False)
    diff = differences(saved, new, len(qids))
    same = diff["docids"] == 0 and all(v <= args.atol for k, v in diff.items() if k not in ("docids", "positions"))
    print(json.dumps({"candidates": args.candidates, "workdir": args.workdir, "queries": len(qids),
                      "max_abs_difference": diff, "same": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
