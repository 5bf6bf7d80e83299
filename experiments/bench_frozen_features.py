"""Training the top layers on cached frozen-layer outputs (`train.cache_frozen_features`) vs running every layer.

    python experiments/bench_frozen_features.py [--batch 16 --seq 64 --rounds 5 --top 4]

The embedded SmolLM2-135M at full depth, top `--top` layers trained, docid-vocabulary head (2,000 rows), a 16-token
label window: experiments/configs/cpu_full_depth.py's step on random tokens. Three steps, alternating round by round
so a shared machine slows them alike (medians reported): the ordinary train step (all 30 layers forward), the
frozen-features step (the lower layers forward, once per example per run), and the train step on cached features
(only the top layers). Step 1's loss of both train steps is recorded: they must agree. From the medians, the cost
of E epochs: ordinary E * step vs cached features + E * cached step. Writes experiments/results/bench_frozen_features.json.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import result_files
from zerogr_jax.training import step as tr
from zerogr_jax.models.loading import load_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--top", type=int, default=4)
    args = ap.parse_args(argv)
    started = time.time()
    model = load_model("smollm2-135m-instruct", dtype="float32")
    cfg, b, t, window = model.cfg, args.batch, args.seq, 16
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (b, t)).astype(np.int32)  # [B, T]
    batch = {"tokens": jnp.asarray(tokens), "kv_mask": jnp.ones((b, t), bool),
             "target_index": jnp.asarray(np.tile(np.arange(t - 1 - window, t - 1), (b, 1)), jnp.int32),
             "labels": jnp.asarray(tokens[:, t - window:] % 2000, jnp.int32), "label_mask": jnp.ones((b, window), bool)}
    tc = tr.TrainConfig(lr=3e-4, warmup_steps=0, trainable=f"top_layers:{args.top}")
    tx = tr.make_optimizer(tc, 1000)
    trainable, frozen = tr.split_params(model.params, cfg, tc.trainable)
    consts = tr.step_constants(frozen, np.arange(2000, dtype=np.int32), cfg.vocab_size)
    step = tr.make_train_step(cfg, tx, 1)
    features_step = tr.make_frozen_features_step(cfg)

    def fresh_state():
        params = jax.tree.map(jnp.copy, trainable)  # the state is donated
        return tr.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                             rng=jax.random.key_data(jax.random.key(0)))

    states = {"ordinary": fresh_state(), "cached": fresh_state()}
    cached_batch = {**batch, "features": features_step(batch, consts)}
    first_loss, times = {}, {"ordinary": [], "features": [], "cached": []}
    for r in range(args.rounds + 1):  # round 0 compiles
        for name in ("ordinary", "features", "cached"):
            t0 = time.perf_counter()
            if name == "features":
                jax.block_until_ready(features_step(batch, consts))
            else:
                states[name], metrics = step(states[name], cached_batch if name == "cached" else batch, consts)
                loss = float(jax.device_get(metrics["loss"]))
                first_loss.setdefault(name, loss)
            if r:
                times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    epochs = {e: {"ordinary_s": e * med["ordinary"], "cached_s": med["features"] + e * med["cached"],
                  "speedup": e * med["ordinary"] / (med["features"] + e * med["cached"])} for e in (1, 2, 3, 5)}
    results = {"batch": b, "seq": t, "top_layers": args.top, "median_step_s": med,
               "step_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
               "first_loss": first_loss, "per_batch_cost_by_epochs": epochs}
    for k, v in med.items():
        print(f"{k:>9}: {v:.3f} s per batch of {b} x {t}")
    for e, v in epochs.items():
        print(f"{e} epochs: ordinary {v['ordinary_s']:.2f} s, cached {v['cached_s']:.2f} s per batch ({v['speedup']:.2f}x)")
    print("step-1 loss:", first_loss)
    result_files.write("bench_frozen_features", result_files.record(
        "train step on cached frozen-layer features vs all layers, SmolLM2-135M full depth, f32", results,
        started=started))


if __name__ == "__main__":
    main()
