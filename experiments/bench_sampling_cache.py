"""Sampling with prompts held once per group (`llama.SharedKV`) against `generation.py` as it was at a git revision
(default b7754c2: one cache of prompt + new slots per row), alternating call by call in one process.

    python experiments/bench_sampling_cache.py --docs 16
    python experiments/bench_sampling_cache.py --baseline-rev none --docs 32 --docs-per-call 16 --name bench_sampling_cache_16

Both sides run on the current `models/llama.py` (the baseline never passes `shared`, so it computes what it did),
on indexing's pseudo-query prompts (cranfield, shared prefix cut, B samples per document at temperature 1, up to 64
new tokens, stop at the first line break) with the same seeds. b7754c2 drew tokens with `jax.random.categorical`;
this tree inverts the CDF (same distribution, other draws), so completions agree only where the sampler is the same.
Writes experiments/results/<--name>.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from experiments import result_files
from experiments.bench_query_generation import indexing_prompts
from zerogr_jax import generation, tokenization
from zerogr_jax import text_generator as tg
from zerogr_jax.models.loading import load_model

REPO = pathlib.Path(__file__).resolve().parents[1]


def module_at(rev: str, path: str, name: str):
    """`path` as it was at git revision `rev`, imported as module `name` (it imports today's package otherwise)."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    file = pathlib.Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default="b7754c2", help="'none': time this tree alone")
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--docs", type=int, default=16, help="documents timed per side (after one compile call)")
    ap.add_argument("--queries-per-doc", type=int, default=4)
    ap.add_argument("--docs-per-call", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--name", default="bench_sampling_cache")
    args = ap.parse_args(argv)
    started = time.time()
    sides = {"shared prompt segments (this tree)": generation}
    if args.baseline_rev != "none":
        sides = {f"per-row cache ({args.baseline_rev})": module_at(args.baseline_rev, "zerogr_jax/generation.py",
                                                                   "generation_baseline"), **sides}
    model = load_model("smollm2-135m-instruct", dtype="float32")
    tok = model.tokenizer
    per, ns = args.docs_per_call, args.queries_per_doc
    _, docs, encoded = indexing_prompts(tok, args.collection, args.docs + per)
    stop_ids = tg.stop_token_ids(tok, ("\n",))
    pad = tokenization.pad_id_of(tok)
    fns = {side: mod.compile_generate(model.cfg, max_new_tokens=args.max_new_tokens, eos_ids=model.eos_ids,
                                      pad_id=pad, num_samples=ns, stop_ids=stop_ids, with_prefix=True)
           for side, mod in sides.items()}
    seconds = {s: 0.0 for s in sides}
    outputs: dict[str, list[list[int]]] = {s: [] for s in sides}
    steps = {s: 0 for s in sides}
    for call, start in enumerate(range(0, len(docs), per)):
        chunk = encoded[start:start + per]
        chunk += [chunk[-1]] * (per - len(chunk))
        p0 = tg.shared_prefix_length(chunk, 32)
        tokens, mask = tokenization.left_pad([c[p0:] for c in chunk], pad, multiple_of=32)
        sampling = generation.SamplingParams.make(per * ns, 1.0)
        rng = jax.random.fold_in(jax.random.key(0), call)
        for side, fn in fns.items():
            t0 = time.perf_counter()
            out = jax.device_get(fn(model.params, tokens, mask, rng, sampling, np.asarray(chunk[0][:p0], np.int32)))
            dt = time.perf_counter() - t0
            if call == 0:
                continue  # compiles
            seconds[side] += dt
            steps[side] += int(out.lengths.max())
            outputs[side] += [list(map(int, r[:n])) for r, n in zip(out.tokens, out.lengths)]
        if call:
            print(f"call {call}: " + ", ".join(f"{s} {seconds[s]:.1f} s" for s in sides), flush=True)
    names = list(sides)
    same = np.mean([a == b for a, b in zip(outputs[names[0]], outputs[names[-1]])])
    timed_docs = len(docs) - per
    results = {"baseline_rev": args.baseline_rev, "documents": timed_docs, "queries_per_doc": ns,
               "docs_per_call": per, "max_new_tokens": args.max_new_tokens,
               "mean_prompt_tokens": float(np.mean([len(p) for p in encoded])),
               "sides": {s: {"seconds": seconds[s], "seconds_per_doc": seconds[s] / timed_docs,
                             "decode_steps": steps[s], "seconds_per_step": seconds[s] / max(steps[s], 1)}
                         for s in sides},
               "identical_completions": float(same),
               "speedup_per_doc": seconds[names[0]] / seconds[names[-1]],
               "speedup_per_step": (seconds[names[0]] / max(steps[names[0]], 1))
               / (seconds[names[-1]] / max(steps[names[-1]], 1))}
    for s in sides:
        r = results["sides"][s]
        print(f"{s:>40}: {r['seconds_per_doc']:.2f} s/doc, {r['seconds_per_step']:.3f} s per decode step")
    print(f"speedup {results['speedup_per_doc']:.2f}x per document, {results['speedup_per_step']:.2f}x per step; "
          f"identical completions {same:.0%}")
    result_files.write(args.name, result_files.record(
        f"sampling cache layout, {args.collection}, B = {ns}, {per} documents per call, SmolLM2-135M f32", results,
        started=started))


if __name__ == "__main__":
    main()
