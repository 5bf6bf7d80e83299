"""The main job's search stage, two ways side by side in one process: a 30-wide beam whose pool is rescored with
the docid prior (the main job until session 11) against exact search by branch and bound with the same prior
(`search.strategy=exact`, `docid_scoring.top_docids`), same retriever, queries and K.

    python experiments/bench_main_search.py --workdir /work/runs/demo_med_prior --collection med --rounds 2

Each engine first runs once over the first 2 queries (the compile, timed and reported in its own column: it also
includes 2 queries' work and the prior). Then `--rounds` rounds over every judged query, the two engines alternating
and the first of them swapped every round; each timed search is the whole stage's work (the prior scored, docids
decoded, documents ranked), as `zerogr search` runs it. nDCG@10 of each engine's run is reported beside its time.
Writes experiments/results/<--name>.json.
"""

from __future__ import annotations

import os
import statistics
import time

from experiments import finished_run, result_files
from zerogr_jax.evaluation import metrics
from zerogr_jax.retrieval.search import SearchConfig, search

ENGINES = {
    "beam30_prior0.5": SearchConfig(num_docids=10, strategy="beam", beam_width=30, prior_weight=0.5, batch_size=32),
    "exact_prior0.5": SearchConfig(num_docids=10, strategy="exact", prior_weight=0.5, batch_size=32),
}


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--name", default="bench_main_search")
    args = ap.parse_args(argv)
    started = time.time()
    fr = finished_run.load(args.workdir, args.collection)
    model = fr.retriever

    def run(config: SearchConfig, queries: dict[str, str]):
        return search(model.cfg, model.params, model.tokenizer, fr.trie, fr.doc_ids, queries, fr.index.instruction,
                      config, progress=False)

    first_two = dict(list(fr.queries.items())[:2])
    compile_s, times, runs, loads = {}, {name: [] for name in ENGINES}, {}, []
    for name, config in ENGINES.items():
        t0 = time.perf_counter()
        run(config, first_two)
        compile_s[name] = round(time.perf_counter() - t0, 1)
    names = list(ENGINES)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            runs[name] = run(ENGINES[name], fr.queries)
            times[name].append(round(time.perf_counter() - t0, 1))
            loads.append(round(os.getloadavg()[0], 2))
            print(name, "round", r, times[name][-1], "s", flush=True)
    results = {}
    for name in names:
        scores = metrics.evaluate(fr.qrels, runs[name], corpus_ids=fr.corpus_ids).metrics
        results[name] = {"first_2_queries_s (compile + work)": compile_s[name], "stage_s_per_round": times[name],
                         "stage_s_median": statistics.median(times[name]),
                         "s_per_query": round(statistics.median(times[name]) / len(fr.queries), 2),
                         "nDCG@10": round(scores["nDCG@10"], 4)}
    base, new = (results[n]["stage_s_median"] for n in names)
    body = result_files.record(
        f"the main job's search stage on {args.collection} ({len(fr.queries)} queries, K = 10): beam + prior vs exact "
        f"+ prior, alternating", results, started=started,
        extra={"workdir": args.workdir, "speedup_exact_over_beam": round(base / new, 2), "load_1min_after_each": loads,
               "trie": fr.trie.metadata()})
    result_files.write(args.name, body)
    print(results, "speedup", body["speedup_exact_over_beam"])


if __name__ == "__main__":
    main()
