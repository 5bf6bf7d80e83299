"""Top-K reverse-annealed docids per query: zerogr-jax's compiled loop vs the reference procedure, side by side.

    python experiments/bench_decode.py --k 100 10 --num-queries 16 --batch 16 --ref-queries 4 --dtypes float32

Same model (embedded SmolLM2-135M-Instruct, dense weights), same scifact title trie, same prompts (judged scifact
test queries with the task instruction, chat-formatted), same K. Three engines **alternate** so that all see the
same machine load: per chunk of `--batch` queries, zerogr-jax decodes the chunk in one call
(`decoding.reverse_annealed_topk`), then for each of its queries among the first `--ref-queries`, the reference
(experiments/reference_decode_torch.py: K `generate` calls with `prefix_allowed_tokens_fn`, batch 1) and zerogr-jax
at batch 1 decode that query. Each jax engine's first call (compile + one call's work) runs before the timed loop;
`compile_s` = that first call minus the median timed call. Ratios: the reference's s/query over its queries against
each jax engine's s/query (batch 1: over the same queries).

Also, at the same batch: the decode step with and without the trie constraint (mask + removal + child lookup), and
a **roofline**: the step's weight matmuls alone (same shapes, no attention, cache or constraint), timed in this
process, against the whole unconstrained step — achieved GFLOP/s of the step as a fraction of that compute-bound
limit. Writes experiments/results/bench_decode.json (with the machine and its load average at start and end).
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
from zerogr_jax import atomic_files
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


# zerogr-jax's loop as it was before a change, timed beside today's on the same chunk (flag -> decoding keywords)
VARIANTS = {"dense": ("dense draws", {"dense_draws": True}),  # every draw over the vocabulary (before session 20)
            "full": ("every docid token fed", {"skip_determined": False})}  # before session 22


def alternating(model, inputs, trie, k: int, batch: int, ref_queries: int, dtype: str, *, batch1: bool = True,
                independent_rows: bool = False, variants: tuple[str, ...] = ()) -> list[dict]:
    """Rows for zerogr-jax at `batch`, zerogr-jax at batch 1 (unless not `batch1`) and the reference, alternating
    (docstring). `variants` (names in VARIANTS): zerogr-jax at `batch` as it was before a change, right after each
    chunk's call, on the same chunk; its docids must be the same (`same_docids_as_<variant>`)."""
    step_model = decoding.LlamaStepModel(model.cfg)
    rng = jax.random.key(0)
    chunks, singles = batches(inputs.prompts, batch, inputs.eos_id), batches(inputs.prompts, 1, inputs.eos_id)

    def call(tokens, mask, offset, variant=None):
        start = time.perf_counter()
        out = decoding.reverse_annealed_topk(step_model, model.params, tokens, mask, trie, k, rng, key_offset=offset,
                                             independent_rows=independent_rows,
                                             **(VARIANTS[variant][1] if variant else {}))
        docids = np.asarray(out.docids)
        return docids, time.perf_counter() - start

    first = {"batch": call(*chunks[0][:2], 0)[1], "one": call(*singles[0][:2], 0)[1] if batch1 else 0.0}
    first.update({v: call(*chunks[0][:2], 0, v)[1] for v in variants})
    ref = None
    if ref_queries:
        from reference_decode_torch import ReferenceDecoder
        ref = ReferenceDecoder(inputs, k, dtype, threads=os.cpu_count())
    times = {name: [] for name in ("batch", "one", "ref", *variants)}
    produced = dict.fromkeys(times, 0)
    same = dict.fromkeys(variants, True)
    for tokens, mask, real, offset in chunks:
        docids, seconds = call(tokens, mask, offset)
        times["batch"].append(seconds)
        produced["batch"] += int(np.sum(docids[:real] >= 0))
        for v in variants:
            before, seconds = call(tokens, mask, offset, v)
            times[v].append(seconds)
            produced[v] += int(np.sum(before[:real] >= 0))
            same[v] &= bool(np.array_equal(before[:real], docids[:real]))
        for q in range(offset, min(offset + real, ref_queries)):
            if batch1:
                docids, seconds = call(*singles[q][:2], q)
                times["one"].append(seconds)
                produced["one"] += int(np.sum(docids >= 0))
            if ref is not None:
                found, seconds = ref.decode(inputs.prompts[q])
                times["ref"].append(seconds)
                produced["ref"] += len(found)
    n = len(inputs.prompts)
    rows = []
    for name, queries, b in (("batch", n, batch), ("one", len(times["one"]), 1), *((v, n, batch) for v in variants)):
        if not times[name]:
            continue
        total = sum(times[name])
        label = f", {VARIANTS[name][0]}" if name in VARIANTS else ""
        rows.append(dict(engine=f"zerogr-jax reverse_annealed_topk, batch {b}{label}", dtype=model.cfg.dtype, batch=b,
                         variant=name if name in VARIANTS else "today",
                         queries=queries, k=k, docids=produced[name], seconds=round(total, 2),
                         s_per_query=round(total / queries, 3), docids_per_s=round(produced[name] / total, 2),
                         first_call_s=round(first[name], 2), independent_rows=independent_rows,
                         compile_s=round(first[name] - float(np.median(times[name])), 2),
                         prompt_len=int(chunks[0][0].shape[1])))
    for v in variants:
        rows[0].update({f"same_docids_as_{v}": same[v],
                        f"speedup_vs_{v}": round(sum(times[v]) / sum(times["batch"]), 2)})
    if times["ref"]:
        total = sum(times["ref"])
        rows.append(dict(engine="transformers.generate + prefix_allowed_tokens_fn, batch 1", dtype=dtype, batch=1,
                         queries=len(times["ref"]), k=k, docids=produced["ref"], seconds=round(total, 2),
                         s_per_query=round(total / len(times["ref"]), 2), docids_per_s=round(produced["ref"] / total, 3),
                         per_query_s=[round(t, 2) for t in times["ref"]], torch_threads=ref.torch_threads))
        for r in rows[:-1]:
            r["speedup_vs_reference"] = round(rows[-1]["s_per_query"] / r["s_per_query"], 2)
    return rows


def step_weight_shapes(cfg) -> dict[str, tuple[int, int]]:
    """(in, out) of each weight matrix one decode step multiplies per layer, and of the head ("head", once)."""
    d, q, kv, f = cfg.hidden_size, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim, cfg.intermediate_size
    return dict(q=(d, q), k=(d, kv), v=(d, kv), o=(q, d), gate=(d, f), up=(d, f), down=(f, d), head=(d, cfg.vocab_size))


def step_matmul_flops(cfg, batch: int) -> int:
    """FLOPs of one decode step's weight matmuls (q, k, v, o, gate, up, down per layer; the head) at `batch` rows."""
    shapes = step_weight_shapes(cfg)
    head = shapes.pop("head")
    return 2 * batch * (cfg.num_layers * sum(i * o for i, o in shapes.values()) + head[0] * head[1])


def step_attention_flops(cfg, batch: int, cache_len: int) -> int:
    """FLOPs of one decode step's attention over `cache_len` slots (scores and weighted values, every layer)."""
    return 4 * batch * cfg.num_layers * cfg.num_heads * cfg.head_dim * cache_len


def roofline(cfg, batch: int, rounds: int = 10) -> dict:
    """The step's weight matmuls alone, as one jit-compiled chain of the same shapes: best seconds and GFLOP/s."""
    shapes = step_weight_shapes(cfg)
    keys = jax.random.split(jax.random.key(0), len(shapes) + 1)
    dt, n = cfg.compute_dtype, cfg.num_layers
    weights = {name: 0.02 * jax.random.normal(key, ((n,) if name != "head" else ()) + shape, dt)
               for (name, shape), key in zip(shapes.items(), keys)}
    head = weights.pop("head")
    x0 = jax.random.normal(keys[-1], (batch, cfg.hidden_size), dt)

    @jax.jit
    def chain(weights, head, x):
        def layer(x, w):
            side = (x @ w["k"]).sum(-1, keepdims=True) + (x @ w["v"]).sum(-1, keepdims=True)  # keep k, v computed
            x = x + (x @ w["q"]) @ w["o"] + 1e-6 * side
            return x + (jax.nn.silu(x @ w["gate"]) * (x @ w["up"])) @ w["down"], None
        return jax.lax.scan(layer, x, weights)[0] @ head

    jax.block_until_ready(chain(weights, head, x0))
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(chain(weights, head, x0))
        best = min(best, time.perf_counter() - start)
    flops = step_matmul_flops(cfg, batch)
    return dict(matmul_only_ms=round(1e3 * best, 2), matmul_gflops_per_s=round(flops / best / 1e9, 1))


def _prefill(model, params, prompt_tokens, prompt_mask, trie):
    """The prompts' cache, once: every timed loop starts from it (a batch-256 prefill costs about as much as a
    minute of steps, so it is kept out of the timed calls instead of cancelled by difference)."""
    cache_len = prompt_tokens.shape[1] + max(trie.max_depth, 2) - 1
    return model.prefill(params, prompt_tokens, prompt_mask, cache_len)


def _step_loop(model, params, prefilled, prompt_mask, trie, rng, n_steps, *, constrained: bool, k: int,
               dense_draws: bool = False):
    """n_steps decode steps of the real loop's per-token work from the prompts' cache (`_prefill`), with or without
    the trie (cycling docid slots). The constrained step draws as the loop does (`decoding._choose`: among the
    node's children, or with `dense_draws` over the masked vocabulary); the unconstrained one over the vocabulary
    (`jax.random.categorical`)."""
    logits, cache, next_pos = prefilled
    b, p = prompt_mask.shape
    depth = max(trie.max_depth, 2)
    cache_len = p + depth - 1
    prompt_kv = jnp.concatenate([prompt_mask, jnp.zeros((b, cache_len - p), bool)], axis=1)
    slots = jnp.arange(cache_len)
    paths = jnp.full((b, k, trie.max_depth), -1, jnp.int32)  # removal work is dense: same cost as real paths
    keys0 = decoding.row_keys(rng, b)

    def body(j, carry):
        token, node, logits, cache, total = carry
        if constrained:
            d = jnp.minimum(j % (depth - 1), trie.max_depth - 1)
            token, logp, child = decoding._choose(trie, keys0, logits, node, paths, j, d, jnp.float32(1.0), None,
                                                  False, dense_draws=dense_draws)
            node = jnp.where(trie.node_docid[child] >= 0, 0, child)  # a finished docid restarts at the root
        else:
            keys = jax.vmap(lambda key: jax.random.fold_in(key, j))(keys0)
            token = jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), token[:, None], -1)[:, 0]
        slot = p + j % (depth - 1)
        kv = prompt_kv | ((slots >= p) & (slots <= slot))[None, :]
        logits, cache = model.step(params, cache, token[:, None], (next_pos + j % (depth - 1))[:, None], slot, kv)
        return token, node, logits, cache, total + logp

    init = (jnp.zeros((b,), jnp.int32), jnp.zeros((b,), jnp.int32), logits, cache, jnp.zeros((b,), jnp.float32))
    return jax.lax.fori_loop(0, n_steps, body, init)[-1]


def _constraint_loop(trie, logits, rng, n_steps, *, k: int):
    """The constrained draw's per-token work alone (`decoding._choose`: children, removal, draw, child) on fixed
    logits."""
    b = logits.shape[0]
    paths = jnp.full((b, k, trie.max_depth), -1, jnp.int32)
    keys0 = decoding.row_keys(rng, b)

    def body(j, carry):
        node, total = carry
        d = jnp.minimum(j % trie.max_depth, trie.max_depth - 1)
        _, logp, child = decoding._choose(trie, keys0, logits + total[:, None], node, paths, j, d, jnp.float32(1.0),
                                          None, False)
        return jnp.where(trie.node_docid[child] >= 0, 0, child), total + logp * 1e-9

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
    prefilled = jax.block_until_ready(jax.jit(lambda params, tokens, mask, trie: _prefill(
        step_model, params, tokens, mask, trie))(model.params, tokens, mask, trie))
    fns = {c: jax.jit(lambda params, prefilled, mask, trie, rng, n, c=c: _step_loop(
        step_model, params, prefilled, mask, trie, rng, n, constrained=c != "unconstrained", k=k,
        dense_draws=c == "dense")) for c in ("unconstrained", "constrained", "dense")}
    args = (model.params, prefilled, mask, trie, jax.random.key(0))
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
    limit = roofline(model.cfg, batch)
    cache_len = tokens.shape[1] + max(trie.max_depth, 2) - 1
    flops = step_matmul_flops(model.cfg, batch) + step_attention_flops(model.cfg, batch, cache_len)
    free, bound = per_step["unconstrained"], per_step["constrained"]
    step_gflops, loop_gflops = flops / free / 1e9, flops / bound / 1e9
    return dict(batch=batch, k=k, unconstrained_ms=round(1e3 * free, 2),
                constrained_ms=round(1e3 * bound, 2), ratio=round(bound / free, 3),
                constrained_dense_draws_ms=round(1e3 * per_step["dense"], 2),
                constraint_ops_alone_ms=round(1e3 * ops_s, 2),
                ratio_from_ops=round(1 + ops_s / free, 3),
                step_gflops_per_s=round(step_gflops, 1), **limit,
                step_fraction_of_matmul_limit=round(step_gflops / limit["matmul_gflops_per_s"], 3),
                constrained_step_gflops_per_s=round(loop_gflops, 1),
                constrained_step_fraction_of_matmul_limit=round(loop_gflops / limit["matmul_gflops_per_s"], 3))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DATA)
    ap.add_argument("--num-queries", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--k", type=int, nargs="+", default=[100, 10])
    ap.add_argument("--dtypes", nargs="+", default=["float32"])
    ap.add_argument("--ref-queries", type=int, default=4,
                    help="queries (the first ones) also decoded by the reference and by jax at batch 1 (0 = neither)")
    ap.add_argument("--skip-batch1", action="store_true",
                    help="the reference still decodes --ref-queries, zerogr-jax at batch 1 does not (its row is kept "
                         "from a run without this flag)")
    ap.add_argument("--independent-rows", action="store_true",
                    help="zerogr-jax rows advance independently (the search default since session 18); else lockstep")
    ap.add_argument("--dense-draws", action="store_true",
                    help="also time zerogr-jax at --batch drawing over the whole vocabulary (the loop before session "
                         "20), alternating chunk by chunk with the default, and check that the docids are the same")
    ap.add_argument("--full-docids", action="store_true",
                    help="also time zerogr-jax at --batch feeding every token of every docid (the loop before session "
                         "22: no skip once a docid is determined), alternating likewise, docids checked the same")
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
            for k in args.k:
                for row in alternating(model, inputs, trie, k, args.batch, args.ref_queries, dtype,
                                       batch1=not args.skip_batch1, independent_rows=args.independent_rows,
                                       variants=tuple(v for v, on in (("dense", args.dense_draws),
                                                                     ("full", args.full_docids)) if on)):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        if not args.skip_overhead:
            overhead[dtype] = step_overhead(model, inputs, trie, max(args.k), args.batch)
            print(json.dumps({dtype: overhead[dtype]}), flush=True)
        del model

    print("\nengine | dtype | K | queries | s/query | docids/s | compile s | speedup vs reference")
    for r in rows:
        print(f"{r['engine']} | {r['dtype']} | {r['k']} | {r['queries']} | {r['s_per_query']} | {r['docids_per_s']} | "
              f"{r.get('compile_s', '')} | {r.get('speedup_vs_reference', '')}")
    for dtype, o in overhead.items():
        print(f"constraint overhead {dtype}, batch {o['batch']}: {o['constrained_ms']} ms vs "
              f"{o['unconstrained_ms']} ms per step = {o['ratio']}x; constraint ops alone "
              f"{o['constraint_ops_alone_ms']} ms = {o['ratio_from_ops']}x; step {o['step_gflops_per_s']} GFLOP/s = "
              f"{o['step_fraction_of_matmul_limit']} of its matmuls alone ({o['matmul_gflops_per_s']} GFLOP/s); "
              f"constrained step {o['constrained_step_gflops_per_s']} GFLOP/s = "
              f"{o['constrained_step_fraction_of_matmul_limit']}; with dense draws {o['constrained_dense_draws_ms']} ms")
    result = dict(command="python experiments/bench_decode.py " + " ".join(argv or sys.argv[1:]),
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count(), device=str(jax.devices()[0]),
                               jax=jax.__version__, loadavg_start=load_start, loadavg_end=os.getloadavg()),
                  trie=trie_info, rows=rows, constraint_overhead=overhead)
    atomic_files.atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
