"""Top-K reverse-annealed docids per query: zerogr-jax's compiled loop vs the reference procedure, side by side.

    python experiments/bench_decode.py                          # 16 queries, batch 16, K=100, f32 and bf16,
                                                                # reference on 2 queries per dtype
    python experiments/bench_decode.py --num-queries 64 --batch 32 --ref-queries 0

Same model (embedded SmolLM2-135M-Instruct, dense weights), same scifact title trie, same prompts (judged scifact
test queries with the task instruction, chat-formatted). Ours: `decoding.reverse_annealed_topk`, timed after a
warm-up call that compiles (compile time reported apart). Reference: experiments/reference_decode_torch.py
(K `generate` calls per query with `prefix_allowed_tokens_fn`). Also: per-token step time of the same decode step
with and without the trie constraint (mask + removal + child lookup) at the same batch. Prints a table and writes
experiments/results/bench_decode.json (with the machine and its load average, since timings depend on both).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.decode_setup import DEFAULT_DATA, scifact_inputs
from zerogr_jax import atomic_files, sampling
from zerogr_jax.retrieval import decoding
from zerogr_jax.models.loading import load_model
from zerogr_jax.tokenization import left_pad
from zerogr_jax.retrieval.trie import build_trie

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def batches(prompts, batch: int, pad_id: int, multiple: int = 32):
    """Fixed-shape [batch, P] chunks (the last one filled with copies of its first row), one compile for all."""
    length = max(len(p) for p in prompts)
    out = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        real = len(chunk)
        chunk = chunk + [chunk[0]] * (batch - real)
        tokens, mask = left_pad(chunk, pad_id, length=length, multiple_of=multiple)
        out.append((tokens, mask, real, start))
    return out


def run_ours(model, inputs, trie, k: int, batch: int) -> dict:
    step_model = decoding.LlamaStepModel(model.cfg)
    chunks = batches(inputs.prompts, batch, inputs.eos_id)
    rng = jax.random.key(0)
    tokens, mask, _, _ = chunks[0]
    start = time.perf_counter()
    jax.block_until_ready(decoding.reverse_annealed_topk(step_model, model.params, tokens, mask, trie, k, rng))
    first_call = time.perf_counter() - start
    produced, start = 0, time.perf_counter()
    for tokens, mask, real, offset in chunks:
        out = decoding.reverse_annealed_topk(step_model, model.params, tokens, mask, trie, k, rng, key_offset=offset)
        produced += int(np.sum(np.asarray(out.docids)[:real] >= 0))
    seconds = time.perf_counter() - start
    n = len(inputs.prompts)
    return dict(engine="zerogr-jax reverse_annealed_topk", dtype=model.cfg.dtype, queries=n, batch=batch, k=k,
                docids=produced, first_call_s=round(first_call, 2), seconds=round(seconds, 2),
                s_per_query=round(seconds / n, 3), docids_per_s=round(produced / seconds, 2),
                prompt_len=int(chunks[0][0].shape[1]))


def _step_loop(model, params, prompt_tokens, prompt_mask, trie, rng, n_steps, *, constrained: bool, k: int):
    """n_steps decode steps of the real loop's per-token work, with or without the trie (cycling docid slots)."""
    b, p = prompt_tokens.shape
    depth = max(trie.max_depth, 2)
    cache_len = p + depth - 1
    logits, cache, next_pos = model.prefill(params, prompt_tokens, prompt_mask, cache_len)
    prompt_kv = jnp.concatenate([prompt_mask, jnp.zeros((b, cache_len - p), bool)], axis=1)
    slots = jnp.arange(cache_len)
    paths = jnp.full((b, k, trie.max_depth), -1, jnp.int32)  # removal work is dense: same cost as real paths
    keys0 = decoding.row_keys(rng, b)

    def body(j, carry):
        token, node, logits, cache, total = carry
        keys = jax.vmap(lambda key: jax.random.fold_in(key, j))(keys0)
        if constrained:
            d = jnp.minimum(j % (depth - 1), trie.max_depth - 1)
            allowed = decoding.remove_exhausted(trie, decoding.children_mask(trie, node), node, paths, d)
            logits = jnp.where(allowed, logits, sampling.NEG_INF)
        token = jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), token[:, None], -1)[:, 0]
        if constrained:
            child = decoding.child_by_token(trie, node, token)
            node = jnp.where(trie.node_docid[child] >= 0, 0, child)  # a finished docid restarts at the root
        slot = p + j % (depth - 1)
        kv = prompt_kv | ((slots >= p) & (slots <= slot))[None, :]
        logits, cache = model.step(params, cache, token[:, None], (next_pos + j % (depth - 1))[:, None], slot, kv)
        return token, node, logits, cache, total + logp

    init = (jnp.zeros((b,), jnp.int32), jnp.zeros((b,), jnp.int32), logits, cache, jnp.zeros((b,), jnp.float32))
    return jax.lax.fori_loop(0, n_steps, body, init)[-1]


def _constraint_loop(trie, logits, rng, n_steps, *, k: int):
    """The constraint's per-token work alone (mask, removal, masked sampling, child lookup) on fixed logits."""
    b = logits.shape[0]
    paths = jnp.full((b, k, trie.max_depth), -1, jnp.int32)
    keys0 = decoding.row_keys(rng, b)

    def body(j, carry):
        node, total = carry
        keys = jax.vmap(lambda key: jax.random.fold_in(key, j))(keys0)
        d = jnp.minimum(j % trie.max_depth, trie.max_depth - 1)
        allowed = decoding.remove_exhausted(trie, decoding.children_mask(trie, node), node, paths, d)
        masked = jnp.where(allowed, logits + total[:, None], sampling.NEG_INF)
        token = jax.vmap(jax.random.categorical)(keys, masked).astype(jnp.int32)
        child = decoding.child_by_token(trie, node, token)
        return jnp.where(trie.node_docid[child] >= 0, 0, child), total + masked[jnp.arange(b), token] * 1e-9

    return jax.lax.fori_loop(0, n_steps, body, (jnp.zeros((b,), jnp.int32), jnp.zeros((b,), jnp.float32)))[1]


def _per_step(fn, args, steps, rounds):
    """Seconds per loop step: (t(n2) - t(n1)) / (n2 - n1), best of `rounds` (prefill and dispatch cancel out)."""
    best = {n: np.inf for n in steps}
    for _ in range(rounds):
        for n in steps:
            start = time.perf_counter()
            jax.block_until_ready(fn(*args, n))
            best[n] = min(best[n], time.perf_counter() - start)
    return (best[steps[1]] - best[steps[0]]) / (steps[1] - steps[0])


def step_overhead(model, inputs, trie, k: int, batch: int, steps=(8, 72), rounds=3) -> dict:
    """Constrained vs unconstrained decode step at the same batch. On a shared machine the difference of two noisy
    model timings is itself noisy, so the constraint's own work is also timed alone (on fixed logits) and reported
    as a fraction of the unconstrained step."""
    step_model = decoding.LlamaStepModel(model.cfg)
    tokens, mask, _, _ = batches(inputs.prompts, batch, inputs.eos_id)[0]
    fns = {c: jax.jit(lambda params, tokens, mask, trie, rng, n, c=c: _step_loop(
        step_model, params, tokens, mask, trie, rng, n, constrained=c, k=k)) for c in (False, True)}
    args = (model.params, tokens, mask, trie, jax.random.key(0))
    for fn in fns.values():
        jax.block_until_ready(fn(*args, steps[0]))  # compile
    per_step = {c: np.inf for c in fns}
    for _ in range(rounds):  # interleaved, so both see the same machine load
        for c, fn in fns.items():
            per_step[c] = min(per_step[c], _per_step(fn, args, steps, 1))
    ops = jax.jit(lambda trie, logits, rng, n: _constraint_loop(trie, logits, rng, n, k=k))
    logits = jax.random.normal(jax.random.key(1), (batch, model.cfg.vocab_size), jnp.float32)
    jax.block_until_ready(ops(trie, logits, jax.random.key(0), steps[0]))
    ops_s = _per_step(ops, (trie, logits, jax.random.key(0)), steps, rounds)
    return dict(batch=batch, k=k, unconstrained_ms=round(1e3 * per_step[False], 2),
                constrained_ms=round(1e3 * per_step[True], 2), ratio=round(per_step[True] / per_step[False], 3),
                constraint_ops_alone_ms=round(1e3 * ops_s, 2),
                ratio_from_ops=round(1 + ops_s / per_step[False], 3))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA)
    ap.add_argument("--num-queries", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--ref-queries", type=int, default=2, help="queries run through the reference (0 = skip)")
    ap.add_argument("--max-docid-tokens", type=int, default=24)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--only-overhead", action="store_true", help="skip the top-K timings (and the reference)")
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS / "bench_decode.json")
    args = ap.parse_args(argv)
    load_start = os.getloadavg()

    rows, overhead, trie_info = [], {}, {}
    for dtype in args.dtypes:
        model = load_model("smollm2-135m-instruct", dtype=dtype)
        inputs = scifact_inputs(model.tokenizer, args.data_dir, args.num_queries, args.max_docid_tokens)
        if not trie_info:
            start = time.perf_counter()
            host = build_trie(inputs.docid_tokens, eos_id=inputs.eos_id, vocab_size=model.cfg.vocab_size,
                              width=args.width)
            trie_info = dict(build_s=round(time.perf_counter() - start, 3), documents=len(inputs.doc_ids),
                             **host.metadata())
            trie = host.to_device()
        if not args.only_overhead:
            ours = run_ours(model, inputs, trie, args.k, args.batch)
            rows.append(ours)
            print(json.dumps(ours), flush=True)
        if not args.skip_overhead:
            overhead[dtype] = step_overhead(model, inputs, trie, args.k, args.batch)
            print(json.dumps({dtype: overhead[dtype]}), flush=True)
        if args.ref_queries and not args.only_overhead:
            from reference_decode_torch import run_reference

            ref = run_reference(inputs, args.k, dtype, min(args.ref_queries, len(inputs.prompts)),
                                threads=os.cpu_count())
            rows.append(ref)
            ours["speedup_vs_reference"] = round(ref["s_per_query"] / ours["s_per_query"], 1)
            print(json.dumps(ref), flush=True)
        del model

    print("\nengine | dtype | queries | s/query | docids/s | speedup")
    for r in rows:
        print(f"{r['engine']} | {r['dtype']} | {r['queries']} | {r['s_per_query']} | {r['docids_per_s']} | "
              f"{r.get('speedup_vs_reference', '')}")
    for dtype, o in overhead.items():
        print(f"constraint overhead {dtype}, batch {o['batch']}: {o['constrained_ms']} ms vs "
              f"{o['unconstrained_ms']} ms per step = {o['ratio']}x; constraint ops alone "
              f"{o['constraint_ops_alone_ms']} ms = {o['ratio_from_ops']}x")
    result = dict(command="python experiments/bench_decode.py " + " ".join(argv or sys.argv[1:]),
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count(), device=str(jax.devices()[0]),
                               jax=jax.__version__, loadavg_start=load_start, loadavg_end=os.getloadavg()),
                  trie=trie_info, rows=rows, constraint_overhead=overhead)
    atomic_files.atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
