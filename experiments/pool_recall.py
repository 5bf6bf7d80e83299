"""How many of the relevant documents a saved generative pool holds, beside BM25's run: Recall@N of the pool's best N
by the generative score (w times the docid prior subtracted) and of BM25's top N, per collection. No model runs.

    python experiments/pool_recall.py --workdir /work/runs/med_head --collection med \
        --candidates experiments/results/runs/pool100_med_head.candidates.npz \
        --bm25-run experiments/results/runs/bm25_head_med_bm25.trec --name pool_recall_med_head

Recall@N is the project's (`evaluation.metrics.evaluate`, trec_eval's `recall.N` over every judged query). No ranking
quality is read: this says what a re-ordering of the pool could reach, not what it does. Writes
experiments/results/<name>.json.
"""

from __future__ import annotations

import json
import pathlib
import time

from experiments import finished_run, result_files
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.metrics import evaluate
from zerogr_jax.retrieval.search import Candidates, SearchConfig, rank_documents


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--candidates", required=True, help="the pool, from rerank_rows.py --save-candidates")
    ap.add_argument("--bm25-run", required=True)
    ap.add_argument("--depths", default="10,30,100")
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection)
    candidates = Candidates.load(args.candidates)
    depths = [int(d) for d in args.depths.split(",")]
    if max(depths) > candidates.docids.shape[1]:
        raise SystemExit(f"depth {max(depths)} is deeper than the saved pool ({candidates.docids.shape[1]})")
    pool = rank_documents(fr.trie, fr.doc_ids, candidates, SearchConfig(
        num_docids=max(depths), strategy="exact", prior_weight=args.prior_weight))
    bm25 = runfile.read_run(args.bm25_run)
    rows = {f"Recall@{n}": {side: evaluate(fr.qrels, run, recall_k=n).metrics[f"Recall@{n}"]
                             for side, run in (("pool", pool), ("bm25", bm25))} for n in depths}
    result_files.write(args.name, result_files.record(
        f"Recall@N of the generative pool (by the generative score) and of BM25 on {args.collection}", rows,
        started=started, extra={"workdir": str(args.workdir), "candidates": args.candidates,
                                "bm25_run": args.bm25_run, "prior_weight": args.prior_weight}))
    print(json.dumps({k: {s: round(v, 3) for s, v in r.items()} for k, r in rows.items()}))


if __name__ == "__main__":
    main()
