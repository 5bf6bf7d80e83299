"""Batched generation throughput: zerogr-jax vs `transformers.generate`, same model, machine, dtype, shapes.

    python experiments/bench_generate.py                       # batch 1 and 32, prompt 128, 64 new tokens, f32
    python experiments/bench_generate.py --batches 1,8 --new 32

Each engine/variant runs in its own subprocess (XLA flags must be set before jax starts); the driver prints a table
and writes experiments/results/bench_generate.json. Every row forces exactly `--new` tokens (no early EOS).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).parent / "results"


def prompts(tokenizer, batch: int, length: int) -> list[list[int]]:
    text = ("Generative retrieval maps a query straight to document identifiers with a language model. " * 40)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [ids[i: i + length] for i in range(batch)]  # distinct rows of exactly `length` tokens


def run_jax(batch: int, length: int, new: int, dtype: str, repeats: int) -> dict:
    import jax

    import zerogr_jax as zg
    from zerogr_jax import generation, tokenization

    model = zg.load_model("smollm2-135m-instruct", dtype=dtype)
    tokens, mask = tokenization.left_pad(prompts(model.tokenizer, batch, length), 0)
    fn = generation.compile_generate(model.cfg, max_new_tokens=new, eos_ids=(-1,), pad_id=0)
    sp = generation.SamplingParams.make(batch)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(model.params, tokens, mask, jax.random.key(0), sp))
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(model.params, tokens, mask, jax.random.key(r), sp))
        times.append(time.perf_counter() - t0)
    assert int(out.lengths.min()) == new
    return {"first_call_s": compile_s, "times_s": times}


def run_torch(batch: int, length: int, new: int, dtype: str, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from zerogr_jax.models.embedded import embedded_gguf_path
    from zerogr_jax.models.loading import gguf_as_hf_directory
    from zerogr_jax.tokenization import load_tokenizer

    directory = gguf_as_hf_directory(embedded_gguf_path())  # the same dense weights our loader uses
    tok = load_tokenizer(directory)
    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=getattr(torch, dtype)).eval()
    x = torch.tensor(prompts(tok, batch, length))
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0,
              attention_mask=torch.ones_like(x))
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.generate(x, **kw)
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model.generate(x, **kw)
            times.append(time.perf_counter() - t0)
    assert out.shape[1] == length + new
    return {"first_call_s": first, "times_s": times, "torch_threads": torch.get_num_threads()}


VARIANTS = {
    "jax": {"XLA_FLAGS": ""},
    "jax+xnnpack": {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"},
    "torch": {},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        fn = run_torch if args.worker == "torch" else run_jax
        print("RESULT " + json.dumps(fn(args.batch, args.prompt, args.new, args.dtype, args.repeats)))
        return

    rows = []
    for batch in map(int, args.batches.split(",")):
        for variant in args.variants.split(","):
            env = dict(os.environ, **VARIANTS[variant])
            cmd = [sys.executable, __file__, "--worker", variant.split("+")[0], "--batch", str(batch),
                   "--prompt", str(args.prompt), "--new", str(args.new), "--dtype", args.dtype,
                   "--repeats", str(args.repeats)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = [l for l in res.stdout.splitlines() if l.startswith("RESULT ")]
            if res.returncode or not line:
                raise SystemExit(f"{variant} batch {batch} failed:\n{res.stderr[-3000:]}")
            r = json.loads(line[0][7:])
            best = min(r["times_s"])
            rows.append({"variant": variant, "batch": batch, "prompt": args.prompt, "new_tokens": args.new,
                         "dtype": args.dtype, "best_s": best, "tokens_per_s": batch * args.new / best, **r})
            print(f"{variant:>12} batch {batch:>3}: {batch * args.new / best:8.1f} new tokens/s "
                  f"({best:.2f} s per call, first call {r['first_call_s']:.1f} s)", flush=True)
    for batch in map(int, args.batches.split(",")):
        t = {r["variant"]: r["tokens_per_s"] for r in rows if r["batch"] == batch}
        for v in t:
            if v != "torch" and "torch" in t:
                print(f"batch {batch}: {v} / torch = {t[v] / t['torch']:.2f}x")
    out = {"command": "python " + " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "rows": rows}
    from zerogr_jax import atomic_files

    atomic_files.atomic_write_json(RESULTS / "bench_generate.json", out)


if __name__ == "__main__":
    main()
