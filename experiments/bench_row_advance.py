"""Reverse annealing with rows advancing independently, with and without prefix reuse, against lockstep
iterations, side by side in one process.

    python experiments/bench_row_advance.py --k 10 --num-queries 16 --batch 16 --rounds 3

Same model (embedded SmolLM2-135M-Instruct), scifact title trie and prompts as bench_decode.py. Lockstep
(`independent_rows=False`): every iteration runs until the batch's longest docid ends, so rows that finished wait.
Independent (`independent_rows=True`): a row starts its next docid when its last one ends
(`decoding._independent_rows`, the cache written at one slot per row). Prefix reuse (`reuse_prefix=True` on top):
the tokens a docid shares with the row's previous docid are drawn from kept logits without a model step. All give
the same docids (checked here on every call, and by tests/test_decoding.py); `fed_tokens_per_query` counts the
docid tokens the model fed per query (the work), `model_steps` is what the loop ran (the longest row's count).
Each engine's first call is its compile (reported: first call minus the median timed call); then `--rounds` rounds
over every chunk of `--batch` queries, the engines alternating and their order reversed every other round.
Writes experiments/results/<--name>.json with the load average at start and end.

    python experiments/bench_row_advance.py --workdir runs/demo_med --collection med --k 10 --num-queries 16

decodes with a finished run's retriever instead (its compact-head step model, its index's docid trie and its
judged queries' prompts, as `zerogr search` builds them): how much consecutive docids share depends on the model
and the docids, so the untrained model on titles is not the only case worth timing.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import numpy as np

from experiments.bench_decode import batches
from experiments.decode_setup import DEFAULT_DATA, scifact_inputs
from zerogr_jax import atomic_files
from zerogr_jax.models.loading import load_model
from zerogr_jax.retrieval import decoding
from zerogr_jax.retrieval.trie import build_trie

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
ENGINES = {"lockstep": {}, "independent rows": {"independent_rows": True},
           "independent rows + prefix reuse": {"independent_rows": True, "reuse_prefix": True}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA)
    ap.add_argument("--num-queries", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="bench_row_advance")
    ap.add_argument("--workdir", help="a finished `zerogr run` directory: decode with its retriever and trie")
    ap.add_argument("--collection", help="the workdir's collection (its judged queries)")
    args = ap.parse_args(argv)
    if bool(args.workdir) != bool(args.collection):
        ap.error("--workdir and --collection go together (a finished run and its collection's judged queries)")
    started, load_start = time.time(), os.getloadavg()
    if args.workdir:
        step_model, params, trie, prompts, pad = _finished_run_inputs(args.workdir, args.collection,
                                                                      args.num_queries)
    else:
        model = load_model()
        inputs = scifact_inputs(model.tokenizer, args.data_dir, args.num_queries)
        trie = build_trie(inputs.docid_tokens, eos_id=inputs.eos_id, vocab_size=model.cfg.vocab_size,
                          width=16).to_device()  # bench_decode.py's width
        step_model, params = decoding.LlamaStepModel(model.cfg), model.params
        prompts, pad = inputs.prompts, inputs.eos_id
    chunks = batches(prompts, args.batch, pad)
    rng = jax.random.key(0)

    work = {}

    def run(name: str) -> tuple[float, list[np.ndarray]]:
        t0, outs, fed, steps = time.perf_counter(), [], [], 0
        for tokens, mask, real, offset in chunks:
            out = decoding.reverse_annealed_topk(step_model, params, tokens, mask, trie, args.k, rng,
                                                 key_offset=offset, **ENGINES[name])
            outs.append(np.asarray(out.docids)[:real])
            if out.fed_tokens is not None:
                fed += np.asarray(out.fed_tokens)[:real].tolist()
                steps += int(np.asarray(out.fed_tokens).max())
        seconds = time.perf_counter() - t0
        if fed:
            work[name] = {"fed_tokens_per_query": round(float(np.mean(fed)), 1), "model_steps": steps}
        return seconds, outs

    first, times, docids = {}, {name: [] for name in ENGINES}, {}
    for name in ENGINES:
        first[name], docids[name] = run(name)
    names = list(ENGINES)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            seconds, outs = run(name)
            times[name].append(round(seconds, 2))
            assert all(np.array_equal(a, b) for a, b in zip(outs, docids[name])), "a rerun changed the docids"
            print(name, "round", r, times[name][-1], "s", flush=True)
    identical = all(all(np.array_equal(a, b) for a, b in zip(docids["lockstep"], docids[name])) for name in names)
    rows = {name: {"median_s": statistics.median(times[name]), "seconds_per_round": times[name],
                   "compile_s": round(first[name] - statistics.median(times[name]), 2),
                   "s_per_query": round(statistics.median(times[name]) / args.num_queries, 3), **work.get(name, {})}
            for name in names}
    ratio = rows["lockstep"]["median_s"] / rows["independent rows"]["median_s"]
    reuse = "independent rows + prefix reuse"
    reuse_ratios = {"vs_lockstep": round(rows["lockstep"]["median_s"] / rows[reuse]["median_s"], 3),
                    "vs_independent_rows": round(rows["independent rows"]["median_s"] / rows[reuse]["median_s"], 3)}
    body = {"command": "python experiments/bench_row_advance.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": str(jax.devices()[0]),
                        "jax": jax.__version__, "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "k": args.k,
            "inputs": f"{args.workdir} ({args.collection})" if args.workdir else "scifact titles, untrained model",
            "batch": args.batch, "queries": args.num_queries, "rows": rows, "identical_docids": identical,
            "speedup_independent_vs_lockstep": round(ratio, 3), "speedup_prefix_reuse": reuse_ratios}
    atomic_files.atomic_write_json(RESULTS / f"{args.name}.json", body)
    print({name: (r["median_s"], r["compile_s"]) for name, r in rows.items()}, "ratio", round(ratio, 3),
          "prefix reuse", reuse_ratios, "identical", identical)


def _finished_run_inputs(workdir, collection: str, num_queries: int):
    from experiments import finished_run
    from zerogr_jax import tokenization
    from zerogr_jax.retrieval import search
    from zerogr_jax.retrieval_contract import PromptBuilder

    run = finished_run.load(workdir, collection, num_queries)
    tok = run.retriever.tokenizer
    scored_trie, step_model, params = search.step_model(run.retriever.cfg, run.retriever.params, run.trie)
    prompts = PromptBuilder(tok).ids(run.index.instruction, list(run.queries.values()))
    return step_model, params, scored_trie.to_device(), prompts, tokenization.pad_id_of(tok)


if __name__ == "__main__":
    main()
