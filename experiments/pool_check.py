"""Does a workdir's retriever reproduce a saved pool? Re-searches the pool's first `--queries` queries (and the docid
prior) with the search that made it, and compares docids, scores and head scores with the saved arrays.

    python experiments/pool_check.py --workdir /work/runs/cranfield_head_s4r1 --collection cranfield \
        --candidates experiments/results/runs/pool300_cranfield_head_s4r1.candidates.npz --queries 4

For a retriever retrained after its workdir was lost: rows computed later from the saved pool (`mix_rows.py`,
`free_rows.py`) combine the saved scores with the new model's, which is sound only if the two models are the same.
Exits 1 when any array differs by more than `--atol`; writes nothing.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from experiments import finished_run
from zerogr_jax.retrieval.search import Candidates, SearchConfig, decode_candidates


def differences(saved: Candidates, new: Candidates, n: int) -> dict[str, float]:
    """Max |difference| per array over the first n queries (docids: the number of differing entries)."""
    out = {"docids": float(np.sum(saved.docids[:n] != new.docids))}
    finite = lambda a: np.where(np.isfinite(a), a, 0.0)  # noqa: E731 (-inf / NaN padding sits at the same places)
    out["logprobs"] = float(np.max(np.abs(finite(saved.logprobs[:n]) - finite(new.logprobs))))
    if saved.prior is not None:
        out["prior"] = float(np.max(np.abs(saved.prior - new.prior)))
    if saved.rerank is not None:
        out["rerank"] = float(np.max(np.abs(finite(saved.rerank[:n]) - finite(new.rerank))))
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
    same = diff["docids"] == 0 and all(v <= args.atol for k, v in diff.items() if k != "docids")
    print(json.dumps({"candidates": args.candidates, "workdir": args.workdir, "queries": len(qids),
                      "max_abs_difference": diff, "same": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
