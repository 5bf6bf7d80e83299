"""Train-step throughput: our jit-compiled step vs `transformers` + `torch.optim.AdamW`, same model, batch, dtype.

    python experiments/bench_train.py [--batch 8 --seq 64 --rounds 3 --dtypes float32,bfloat16]

Both sides run the embedded SmolLM2-135M (ours from the GGUF-derived HF directory through `load_model`; torch's
`LlamaForCausalLM` from the same directory) on the same random [batch, seq] tokens with the plain causal-LM
objective (next-token cross-entropy at every position, full 49K vocabulary), global-norm clipping at 1.0 and AdamW
(lr 5e-5, no weight decay): the same work per step. Mixed precision on both sides = float32 master weights with
bfloat16 compute (torch: `torch.autocast("cpu", torch.bfloat16)`).

The two sides alternate round by round (jax step, torch step, jax step, ...), so a machine shared with other jobs
slows both alike; the median of the rounds is reported. Step 1's loss of both sides is recorded as a check that they
compute the same thing.

Extra rows (ours only, not comparable with torch because they do less work, which is the point):
  retriever   the step `zerogr train` runs: loss on a 16-token docid label window only (LM head on 16 positions);
  cpu_small   experiments/configs/cpu_small.py's step: 8 layers, top 4 trained, docid-vocabulary head (2,000 rows).
  xnnpack     the f32 LM step again in a subprocess with XLA_FLAGS=--xla_cpu_use_xnnpack=true.

Writes experiments/results/bench_train.json and prints a table.
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

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]

LR = 5e-5


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def make_batch(batch: int, seq: int, vocab: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (batch, seq)).astype(np.int32)  # [B, T]


# ------------------------------------------------------------------------------------------------------ ours

class JaxStep:
    """One of our train steps, ready to call; `kind` in {"lm", "retriever", "cpu_small"}."""

    def __init__(self, model, tokens: np.ndarray, dtype: str, kind: str = "lm"):
        import jax
        import jax.numpy as jnp

        from zerogr_jax.training import step as tr
        from zerogr_jax.models import llama

        cfg, params = model.cfg.replace(dtype=dtype), model.params
        b, t = tokens.shape
        trainable, head_vocab = "all", None
        if kind == "lm":  # every position predicts the next token
            window = t - 1
            target_index = np.tile(np.arange(window), (b, 1))
            labels = tokens[:, 1:]
        else:  # a docid label window at the end of each row
            window = 16
            target_index = np.tile(np.arange(t - 1 - window, t - 1), (b, 1))
            labels = tokens[:, t - window:]
        if kind == "cpu_small":
            params, cfg = llama.truncate_layers(params, cfg, 8)
            trainable = "top_layers:4"
            head_vocab = np.arange(2000, dtype=np.int32)
            labels = labels % 2000
        self.batch = {"tokens": jnp.asarray(tokens), "kv_mask": jnp.ones(tokens.shape, bool),
                      "target_index": jnp.asarray(target_index, jnp.int32), "labels": jnp.asarray(labels, jnp.int32),
                      "label_mask": jnp.ones((b, window), bool)}
        tc = tr.TrainConfig(lr=LR, warmup_steps=0, grad_clip=1.0, weight_decay=0.0, trainable=trainable, dtype=dtype)
        tx = tr.make_optimizer(tc, 1000)
        train_params, frozen = tr.split_params(params, cfg, trainable)
        train_params = jax.tree.map(jnp.copy, train_params)  # the state is donated; keep the model's arrays
        self.consts = tr.step_constants(frozen, head_vocab, cfg.vocab_size)
        self.state = tr.TrainState(step=jnp.int32(0), params=train_params, opt_state=tx.init(train_params),
                                   rng=jax.random.key_data(jax.random.key(0)))
        self.step_fn = tr.make_train_step(cfg, tx, 1)

    def __call__(self) -> float:
        import jax
        self.state, metrics = self.step_fn(self.state, self.batch, self.consts)
        return float(jax.device_get(metrics["loss"]))


# ----------------------------------------------------------------------------------------------------- torch

class TorchStep:
    def __init__(self, hf_dir: pathlib.Path, tokens: np.ndarray, dtype: str):
        import torch
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32, local_files_only=True)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        self.ids = torch.from_numpy(tokens.astype(np.int64))
        self.autocast = dtype == "bfloat16"

    def __call__(self) -> float:
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.model(input_ids=self.ids, labels=self.ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return float(loss.detach())


# ------------------------------------------------------------------------------------------------------ runs

def timed(fn) -> tuple[float, float]:
    t0 = time.perf_counter()
    loss = fn()
    return time.perf_counter() - t0, loss


def summarize(name: str, tokens_per_step: int, first: tuple[float, float], times: list[float], **extra) -> dict:
    median = float(np.median(times))
    return {"name": name, "first_call_s": round(first[0], 2), "first_loss": first[1],
            "step_s": [round(t, 3) for t in times], "median_step_s": round(median, 3),
            "tokens_per_s": round(tokens_per_step / median, 1), **extra}


def run_pair(model, hf_dir, tokens, dtype: str, rounds: int) -> list[dict]:
    """Ours and torch alternating, round by round."""
    ours = JaxStep(model, tokens, dtype)
    first_jax = timed(ours)  # compile + step 1
    theirs = TorchStep(hf_dir, tokens, dtype)
    first_torch = timed(theirs)
    tj, tt = [], []
    for _ in range(rounds):
        tj.append(timed(ours)[0])
        tt.append(timed(theirs)[0])
    del theirs
    return [summarize(f"jax {dtype}", int(tokens.size), first_jax, tj, framework="jax", dtype=dtype),
            summarize(f"torch {dtype}", int(tokens.size), first_torch, tt, framework="torch", dtype=dtype)]


def run_single(model, tokens, dtype: str, kind: str, rounds: int) -> dict:
    step = JaxStep(model, tokens, dtype, kind)
    first = timed(step)
    times = [timed(step)[0] for _ in range(rounds)]
    return summarize(f"jax {dtype} {kind}", int(tokens.size), first, times, framework="jax", dtype=dtype, kind=kind)


def child_main(args) -> None:
    """Runs inside the XNNPACK subprocess: the f32 LM step only; prints one JSON line."""
    from zerogr_jax.models.loading import load_model

    model = load_model()
    tokens = make_batch(args.batch, args.seq, model.cfg.vocab_size)
    row = run_single(model, tokens, "float32", "lm", args.rounds)
    row.update(name="jax float32 lm (xnnpack)", xla_flags=os.environ.get("XLA_FLAGS", ""))
    print("RESULT" + json.dumps(row), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--extras", default="retriever,cpu_small,xnnpack")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "bench_train.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)

    import jax
    import torch
    import transformers

    from zerogr_jax.models.embedded import embedded_gguf_path
    from zerogr_jax.models.loading import gguf_as_hf_directory, load_model

    load_start = os.getloadavg()
    t_start = time.perf_counter()
    hf_dir = gguf_as_hf_directory(embedded_gguf_path())
    model = load_model()
    tokens = make_batch(args.batch, args.seq, model.cfg.vocab_size)
    rows = []
    for dtype in args.dtypes.split(","):
        rows += run_pair(model, hf_dir, tokens, dtype, args.rounds)
        print(json.dumps(rows[-2:]), flush=True)
    extras = [e for e in args.extras.split(",") if e]
    for kind in ("retriever", "cpu_small"):
        if kind in extras:
            rows.append(run_single(model, tokens, "float32", kind, args.rounds))
            print(json.dumps(rows[-1]), flush=True)
    if "xnnpack" in extras:
        env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_xnnpack=true").strip())
        proc = subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch), "--seq",
                               str(args.seq), "--rounds", str(args.rounds)], env=env, capture_output=True, text=True)
        if proc.returncode == 0 and "RESULT" in proc.stdout:
            rows.append(json.loads(proc.stdout.split("RESULT", 1)[1]))
        else:
            rows.append({"name": "jax float32 lm (xnnpack)", "error": proc.stderr.strip().splitlines()[-5:]})
        print(json.dumps(rows[-1]), flush=True)

    out = {
        "command": "python experiments/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "batch": args.batch, "seq": args.seq, "rounds": args.rounds, "model": "SmolLM2-135M-Instruct (embedded)",
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg(),
                    "note": "2-core CPU dev machine shared with other jobs while this ran; the two frameworks "
                            "alternate round by round so both see the same load"},
        "versions": {"jax": jax.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "python": sys.version.split()[0]},
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - t_start, 1), "rows": rows,
    }
    path = pathlib.Path(args.out)
    from zerogr_jax import atomic_files

    atomic_files.atomic_write_json(path, out)
    print_table(out)


def print_table(out: dict) -> None:
    print(f"\ntrain step, batch {out['batch']} x {out['seq']} tokens, {out['machine']['cpu']} "
          f"({out['machine']['cores']} cores), load {out['machine']['loadavg_start'][0]:.1f}")
    print(f"{'variant':<30}{'median step s':>15}{'tokens/s':>12}{'first call s':>14}{'step-1 loss':>13}")
    for r in out["rows"]:
        if "error" in r:
            print(f"{r['name']:<30}  error: {r['error'][-1] if r['error'] else '?'}")
            continue
        print(f"{r['name']:<30}{r['median_step_s']:>15.2f}{r['tokens_per_s']:>12.1f}{r['first_call_s']:>14.1f}"
              f"{r['first_loss']:>13.4f}")


if __name__ == "__main__":
    main()
