"""Search speed: compact-vocabulary decoding (the default) vs full-vocabulary decoding, side by side, same run.

    python experiments/bench_search.py --workdir runs/zero_shot/cranfield --collection cranfield --queries 64

`--workdir` is a finished `zerogr run` directory. Each mode runs once to compile and once timed, over the same first
`--queries` judged queries, batch 32, K docids, reverse annealing; greedy rankings of both modes are compared (they
must be identical). Writes experiments/results/bench_search.json.
"""

from __future__ import annotations

import pathlib
import time

from experiments import finished_run
from experiments import result_files
from zerogr_jax.retrieval.search import SearchConfig, search


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    started = time.time()
    work = pathlib.Path(args.workdir)
    fr = finished_run.load(work, args.collection, args.queries)
    queries, model, trie = fr.queries, fr.retriever, fr.trie

    def run(restrict: bool, strategy: str):
        cfg = SearchConfig(num_docids=args.k, strategy=strategy, batch_size=args.batch_size, restrict_head=restrict)
        return search(model.cfg, model.params, model.tokenizer, trie, fr.doc_ids, queries, fr.index.instruction,
                      cfg, progress=False)

    results = {}
    for restrict in (True, False):
        name = "compact_vocabulary" if restrict else "full_vocabulary"
        run(restrict, "reverse_annealing")  # compile
        t0 = time.perf_counter()
        run(restrict, "reverse_annealing")
        seconds = time.perf_counter() - t0
        results[name] = {"seconds": round(seconds, 2), "queries_per_s": round(len(queries) / seconds, 3)}
        print(name, results[name], flush=True)
    greedy_equal = run(True, "greedy") == run(False, "greedy")
    body = result_files.record(
        f"search speed on {args.collection} ({len(queries)} queries, K={args.k}, batch {args.batch_size}, reverse "
        f"annealing), retriever {work}/train/model", results, started=started,
        extra={"speedup": round(results["full_vocabulary"]["seconds"] / results["compact_vocabulary"]["seconds"], 2),
               "greedy_rankings_identical": greedy_equal, "trie": trie.metadata()})
    result_files.write("bench_search", body)
    print(body["speedup"], "x; greedy identical:", greedy_equal)


if __name__ == "__main__":
    main()
