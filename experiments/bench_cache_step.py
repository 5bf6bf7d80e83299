"""One decode step of a Llama with and without a KV cache, same run: what the cache layout costs per step.

    python experiments/bench_cache_step.py --model runs/zero_shot/cranfield/train/model

A step is one new token per row through every layer (`llama.forward`, hidden states only); with a cache the token
is written at one slot and attends over `--slots` slots, without one it attends to itself. The difference is the
cache's cost (the update and the attention reads). 20 steps inside one compiled `fori_loop`, after a warm-up run.
Writes experiments/results/bench_cache_step.json.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from experiments import result_files
from zerogr_jax.models import llama
from zerogr_jax.models.loading import load_model


def step_ms(params, cfg, batch: int, slots: int, with_cache: bool, steps: int = 20) -> float:
    cache = llama.init_cache(cfg, batch, slots)

    def loop(params, cache):
        def body(i, carry):
            cache, acc = carry
            x = jnp.zeros((batch, 1), jnp.int32)
            pos = jnp.full((batch, 1), 5, jnp.int32) + i
            if with_cache:
                h, cache = llama.forward(params, cfg, x, pos, cache, 5 + i % 10, jnp.ones((batch, slots), bool),
                                         return_hidden=True)
            else:
                h, _ = llama.forward(params, cfg, x, pos, None, 0, None, return_hidden=True)
            return cache, acc + h.sum()
        return jax.lax.fori_loop(0, steps, body, (cache, 0.0))

    f = jax.jit(loop)
    jax.block_until_ready(f(params, cache))
    t = time.perf_counter()
    jax.block_until_ready(f(params, cache))
    return (time.perf_counter() - t) / steps * 1e3


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--shapes", default="1x180,8x180,32x16,32x180", help="BATCHxSLOTS,...")
    args = ap.parse_args(argv)
    started = time.time()
    model = load_model(args.model)
    results = {}
    for shape in args.shapes.split(","):
        b, s = (int(v) for v in shape.split("x"))
        cached, plain = step_ms(model.params, model.cfg, b, s, True), step_ms(model.params, model.cfg, b, s, False)
        results[shape] = {"with_cache_ms": round(cached, 1), "without_cache_ms": round(plain, 1),
                          "ratio": round(cached / plain, 2)}
        print(shape, results[shape], flush=True)
    body = result_files.record(f"decode step with/without KV cache, model {args.model} "
                               f"({model.cfg.num_layers} layers), f32", results, started=started)
    result_files.write("bench_cache_step", body)


if __name__ == "__main__":
    main()
