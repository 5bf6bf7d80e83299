"""Are the differences between runs real? Paired tests of each run against a baseline run, per metric, over the
collection's judged queries (`zerogr_jax/evaluation/significance.py`).

    python experiments/compare_runs.py --collection cranfield --baseline runs/x/run.reverse_annealing.trec \
        --runs runs/x/run.greedy.trec,runs/x/run.beam.trec --name compare_decoding_cranfield_top12

Writes experiments/results/<name>.json: per run and metric, both means, the mean difference (run - baseline), how
many queries each side wins, and two-sided p-values of the paired randomization test and the paired t-test.
"""

from __future__ import annotations

import argparse
import time

from experiments import result_files
from zerogr_jax.data import beir, collections
from zerogr_jax.evaluation import metrics, runfile
from zerogr_jax.evaluation.significance import paired_test

SHOWN = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")


def compare(collection: str, baseline: str, runs: list[str], *, resamples: int = 10_000) -> dict:
    """{run path: {metric: paired_test(baseline, run)}} over the collection's judged queries."""
    spec = collections.get_collection(collection)
    data = beir.load_beir(collections.collection_dir(collection), spec.split)
    judged = beir.evaluation_queries(data.queries, data.qrels)
    qrels = {q: data.qrels[q] for q in judged}

    def per_query(path: str) -> dict[str, dict[str, float]]:
        return metrics.evaluate(qrels, runfile.read_run(path), corpus_ids=data.corpus.keys(),
                                ignore_identical_ids=spec.ignore_identical_ids).per_query

    base = per_query(baseline)
    results = {}
    for path in runs:
        other = per_query(path)
        results[path] = {m: paired_test({q: v[m] for q, v in base.items()}, {q: v[m] for q, v in other.items()},
                                        resamples=resamples) for m in SHOWN}
        row = results[path]["nDCG@10"]
        print(f"{path}: nDCG@10 {row['mean_b']:.3f} vs {row['mean_a']:.3f} ({row['diff']:+.3f}), "
              f"p = {row['p_randomization']:.3f} (randomization), {row['p_ttest']:.3f} (t)", flush=True)
    return {"queries": len(qrels), "results": results}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collection", required=True)
    ap.add_argument("--baseline", required=True, help="TREC run file every other run is compared with")
    ap.add_argument("--runs", required=True, help="comma-separated TREC run files")
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--name", required=True, help="results/<name>.json")
    args = ap.parse_args(argv)
    started = time.time()
    out = compare(args.collection, args.baseline, [p.strip() for p in args.runs.split(",") if p.strip()],
                  resamples=args.resamples)
    result_files.write(args.name, result_files.record(
        f"paired tests against {args.baseline} on {args.collection}", out["results"], started=started,
        extra={"baseline": args.baseline, "queries": out["queries"]}))


if __name__ == "__main__":
    main()
