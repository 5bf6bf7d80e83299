"""Reverse annealing with rows advancing independently against lockstep iterations, side by side in one process.

    python experiments/bench_row_advance.py --k 10 --num-queries 16 --batch 16 --rounds 3

Same model (embedded SmolLM2-135M-Instruct), scifact title trie and prompts as bench_decode.py. Lockstep
(`independent_rows=False`): every iteration runs until the batch's longest docid ends, so rows that finished wait.
Independent (`independent_rows=True`): a row starts its next docid when its last one ends
(`decoding._independent_rows`, the cache written at one slot per row). Both give the same docids (checked here on
every call, and by tests/test_decoding.py). Each engine's first call is its compile (reported: first call minus the
median timed call); then `--rounds` rounds over every chunk of `--batch` queries, the two engines alternating and the
first of them swapped each round. Writes experiments/results/<--name>.json with the load average at start and end.
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
ENGINES = {"lockstep": False, "independent rows": True}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA)
    ap.add_argument("--num-queries", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="bench_row_advance")
    args = ap.parse_args(argv)
    started, load_start = time.time(), os.getloadavg()
    model = load_model()
    inputs = scifact_inputs(model.tokenizer, args.data_dir, args.num_queries)
    trie = build_trie(inputs.docid_tokens, eos_id=inputs.eos_id, vocab_size=model.cfg.vocab_size,
                      width=16).to_device()  # bench_decode.py's width
    step_model = decoding.LlamaStepModel(model.cfg)
    chunks = batches(inputs.prompts, args.batch, inputs.eos_id)
    rng = jax.random.key(0)

    def run(independent: bool) -> tuple[float, list[np.ndarray]]:
        t0, outs = time.perf_counter(), []
        for tokens, mask, real, offset in chunks:
            out = decoding.reverse_annealed_topk(step_model, model.params, tokens, mask, trie, args.k, rng,
                                                 key_offset=offset, independent_rows=independent)
            outs.append(np.asarray(out.docids)[:real])
        return time.perf_counter() - t0, outs

    first, times, docids = {}, {name: [] for name in ENGINES}, {}
    for name, flag in ENGINES.items():
        first[name], docids[name] = run(flag)
    names = list(ENGINES)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            seconds, outs = run(ENGINES[name])
            times[name].append(round(seconds, 2))
            assert all(np.array_equal(a, b) for a, b in zip(outs, docids[name])), "a rerun changed the docids"
            print(name, "round", r, times[name][-1], "s", flush=True)
    identical = all(np.array_equal(a, b) for a, b in zip(docids["lockstep"], docids["independent rows"]))
    rows = {name: {"median_s": statistics.median(times[name]), "seconds_per_round": times[name],
                   "compile_s": round(first[name] - statistics.median(times[name]), 2),
                   "s_per_query": round(statistics.median(times[name]) / args.num_queries, 3)} for name in names}
    ratio = rows["lockstep"]["median_s"] / rows["independent rows"]["median_s"]
    body = {"command": "python experiments/bench_row_advance.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": str(jax.devices()[0]),
                        "jax": jax.__version__, "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "k": args.k,
            "batch": args.batch, "queries": args.num_queries, "rows": rows, "identical_docids": identical,
            "speedup_independent_vs_lockstep": round(ratio, 3)}
    atomic_files.atomic_write_json(RESULTS / f"{args.name}.json", body)
    print({name: (r["median_s"], r["compile_s"]) for name, r in rows.items()}, "ratio", round(ratio, 3),
          "identical", identical)


if __name__ == "__main__":
    main()
