"""The rerank head's ranking step with each group's prompt run once (`pairs.split_group_prefixes`) against whole
rows (every row carries the group's query; the collection's prefix shared, as before session 15): same model, same
groups, same state, the two steps alternating batch by batch.

    python experiments/bench_rank_step.py --index /work/runs/med_head/index --steps 6 --rounds 3

The step is the one `zerogr train` runs for `experiments/configs/rerank_head.py` (cpu_top12.py with the head
overrides: SmolLM2-135M, top 12 of 30 layers trained, 16 rows = 2 groups of 1 positive + 7 BM25 negatives, the
head's RankNet loss); the groups are the index's own (`build_examples`, the same seed for both sides). Each round
times `--steps` steps per side (each side on its own copy of the state, so both see the same parameters at step
i); the first call of each side is reported as its compile time, then dropped. Also checks that the two sides' first
losses agree. Writes experiments/results/<name>.json.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import time

import jax
import numpy as np

from experiments import result_files
from zerogr_jax import config as config_lib
from zerogr_jax import rerank_head
from zerogr_jax.training import input_pipeline as pipe
from zerogr_jax.training import step as tr
from zerogr_jax.training.loop import load_base_model
from zerogr_jax.retrieval_contract import load_index
from zerogr_jax.training.pairs import (build_examples, docid_vocabulary, split_group_prefixes,
                                      split_shared_prefixes)

REPO = pathlib.Path(__file__).resolve().parents[1]
HEAD_OVERRIDES = ["train.epochs=1", "data.negatives=7", "train.rank_every=1", "train.rank_batch_size=16",
                  "train.rank_score=head"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True, help="an index directory (its documents give the ranking groups)")
    ap.add_argument("--config", default=str(REPO / "experiments" / "configs" / "cpu_top12.py"))
    ap.add_argument("--set", action="append", default=[], help="more train overrides")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per side per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="bench_rank_step")
    args = ap.parse_args(argv)
    started, load_at_start = time.time(), list(os.getloadavg())
    exp = config_lib.override(config_lib.load_config_file(args.config), HEAD_OVERRIDES + args.set)
    tc = exp.train
    model, cfg, params = load_base_model(exp)
    indexes = [load_index(args.index)]
    data = build_examples(indexes, model.tokenizer, exp.data)
    head_vocab = docid_vocabulary(indexes, model.tokenizer) if exp.model.docid_head else None
    g = data.group_size
    trainable, frozen = tr.split_params(params, cfg, tc.trainable)
    prefixes, (whole,) = split_shared_prefixes([data.rank], 1, data.pad_id)
    grouped = split_group_prefixes(data.rank, g, data.pad_id)
    sides = {"whole_rows": (whole, tr.step_constants(frozen, head_vocab, cfg.vocab_size, prefixes)),
             "group_prefix": (grouped, tr.step_constants(frozen, head_vocab, cfg.vocab_size))}
    tx = tr.make_optimizer(tc, 1000)
    step = tr.make_train_step(cfg, tx, group_size=g, rank_weight=tc.rank_weight,
                              head_token=rerank_head.token_id(model.tokenizer, tc.rerank_token))
    batch = tc.rank_batch_size
    iters = {k: pipe.BatchIterator(ex, batch, seed=tc.seed + 1, group_size=g) for k, (ex, _) in sides.items()}
    states = {k: tr._state_from(jax.tree.map(np.array, trainable), tx, jax.random.key_data(jax.random.key(0)))
              for k in sides}
    times = {k: [] for k in sides}
    first, losses, tokens = {}, {k: [] for k in sides}, {k: [] for k in sides}

    def call(k):
        b = next(iters[k])
        t0 = time.perf_counter()
        states[k], m = step(states[k], b, sides[k][1])
        m = jax.device_get(m)
        dt = time.perf_counter() - t0
        losses[k].append(float(m["rank_loss"]))
        tokens[k].append(float(m["input_tokens"]))
        return dt

    for k in sides:
        first[k] = call(k)
    for r in range(args.rounds):
        for k in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[k] += [call(k) for _ in range(args.steps)]
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"sides": {k: {"median_step_s": round(med[k], 3), "steps_timed": len(times[k]),
                         "first_call_s": round(first[k], 2), "compile_s": round(first[k] - med[k], 2),
                         "row_width": int(sides[k][0].tokens.shape[1]),
                         "prefix_width": None if sides[k][0].prefix is None else int(sides[k][0].prefix.shape[1]),
                         "mean_input_tokens": round(float(np.mean(tokens[k])), 1),
                         "rank_losses": [round(x, 4) for x in losses[k]]} for k in sides},
           "speedup": round(med["whole_rows"] / med["group_prefix"], 3),
           "max_rank_loss_difference": max(abs(a - b) for a, b in zip(losses["whole_rows"], losses["group_prefix"])),
           "rank_groups": len(data.rank) // g, "rank_batch_size": batch, "group_size": g, "index": args.index,
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_average_at_start": load_at_start}
    result_files.write(args.name, result_files.record(
        "the rerank head's ranking step: each group's prompt once against whole rows, alternating", out,
        started=started))
    print({k: v for k, v in out.items() if k != "sides"}, {k: {kk: vv for kk, vv in v.items() if kk != "rank_losses"}
                                                          for k, v in out["sides"].items()})


if __name__ == "__main__":
    main()
