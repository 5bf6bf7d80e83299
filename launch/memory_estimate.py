#!/usr/bin/env python3
"""Expected memory per device of a retriever train step, from the model shape, the mesh and the batch.

    python launch/memory_estimate.py --preset llama-3.2-1b --fsdp 64 --data 1 --micro-batch 4 --seq-len 160
    python launch/memory_estimate.py --preset llama-3.2-1b --fsdp 8 --data 2 --micro-batch 16 --xla-check

The arithmetic (printed term by term, see launch/README.md) counts, per device:

  states       params f32 + AdamW mu, nu f32 + grads f32 = 16 bytes/param, divided by the fsdp size (every weight
               has a hidden ("embed") dimension, which the rules shard over fsdp; the data axis replicates);
  activations  what the backward pass keeps per token and layer (no rematerialisation in `models.llama`):
               layer input, 2 norm outputs, q/k/v, attention probabilities (f32 + a compute-dtype copy,
               heads x seq_len per token), attention output, the residual, and the MLP's gate, up and product;
  head         logits over the label window (f32, 3 copies: logits, softmax, gradient);
  gathers      fsdp all-gathers XLA materialises: the tied embedding for the LM head and its gradient (f32, full
               size, the worst case), and two decoder layers' weights and gradients in flight (f32);
  update       temporaries of the weight update (compute-dtype weight copies and gradients, clipping, AdamW):
               12 bytes/param, sharded like the params. `--xla-check` found ~11 bytes/param beyond the f32 gradient
               per added layer on XLA:CPU with bfloat16 compute (~2 with float32); TPU/GPU XLA fuses the update
               more, so this is a ceiling.

The terms are summed as if all were live at once; XLA frees the activations before the update runs, so the total is
an upper bound (on XLA:CPU the measured temp arena of a 2-layer step was about half the summed temporaries).

`--xla-check` compiles the real train step (`training.make_train_step`) on this machine's CPU for 1 and 2 layers
of the model's width, one device, and prints XLA's temp-buffer sizes: their difference is one layer's activation
and gradient working set, a check on the per-layer term (CPU fusion differs from TPU/GPU; same order expected).
"""

from __future__ import annotations

import argparse
import dataclasses

PRESETS = {  # name -> (vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, tied)
    "llama-3.2-1b": (128256, 2048, 8192, 16, 32, 8, 64, True),
    "llama-3.2-3b": (128256, 3072, 8192, 28, 24, 8, 128, True),
    "smollm2-135m": (49152, 576, 1536, 30, 9, 3, 64, True),
}
GB = 1e9
UPDATE_TEMP_BYTES = 12  # temporaries per trainable param beyond its f32 grad (XLA:CPU, bf16 compute: ~11; --xla-check)


@dataclasses.dataclass(frozen=True)
class Shape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @property
    def layer_params(self) -> int:
        d, e = self.hidden, self.head_dim
        return d * e * (2 * self.heads + 2 * self.kv_heads) + 3 * d * self.intermediate + 2 * d

    @property
    def params(self) -> int:
        head = 0 if self.tied else self.hidden * self.vocab
        return self.vocab * self.hidden + self.layers * self.layer_params + self.hidden + head


def activation_bytes_per_token_layer(s: Shape, seq_len: int, compute_bytes: int) -> tuple[int, dict]:
    """Bytes one token keeps for the backward pass in one decoder layer, and the element counts behind it."""
    d, f = s.hidden, s.intermediate
    elems = {  # saved tensors in the compute dtype, elements per token
        "layer input": d, "attn_norm out": d, "q": s.heads * s.head_dim, "k": s.kv_heads * s.head_dim,
        "v": s.kv_heads * s.head_dim, "probs (compute dtype)": s.heads * seq_len, "attn out": s.heads * s.head_dim,
        "residual": d, "mlp_norm out": d, "gate": f, "up": f, "silu(gate)*up": f,
    }
    probs_f32 = s.heads * seq_len  # the softmax runs in f32; its output is what softmax's gradient needs
    return sum(elems.values()) * compute_bytes + probs_f32 * 4, {**elems, "probs (f32)": probs_f32}


def estimate(s: Shape, *, fsdp: int, data: int, tensor: int = 1, micro_batch: int, seq_len: int,
             label_len: int = 16, head_vocab: int | None = None, compute_bytes: int = 2) -> dict:
    """Bytes per device by term (see the module docstring)."""
    states = 16 * s.params / fsdp  # params f32 + Adam mu, nu + grads
    per_token_layer, _ = activation_bytes_per_token_layer(s, seq_len, compute_bytes)
    activations = micro_batch * seq_len * s.layers * per_token_layer / tensor
    v = head_vocab or s.vocab
    head = 3 * micro_batch * label_len * v * 4 / tensor
    gathers = (2 * s.vocab * s.hidden * 4 + 2 * 2 * s.layer_params * 4) / tensor if fsdp > 1 else 0.0
    update = UPDATE_TEMP_BYTES * s.params / fsdp
    return {"states": states, "activations": activations, "head": head, "gathers": gathers, "update": update,
            "total": states + activations + head + gathers + update, "per_token_layer": per_token_layer,
            "devices": fsdp * data * tensor}


def xla_check(s: Shape, micro_batch: int, seq_len: int, label_len: int, dtype: str) -> dict[tuple[int, int], int]:
    """XLA's temp bytes of the compiled train step on one CPU device, by (layers, micro-batch)."""
    import jax
    import jax.numpy as jnp

    from zerogr_jax.training import step as tr
    from zerogr_jax.models import llama

    out = {}
    for layers, b in ((1, micro_batch), (2, micro_batch), (2, 2 * micro_batch)):
        cfg = llama.LlamaConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                                num_layers=layers, num_heads=s.heads, num_kv_heads=s.kv_heads, head_dim=s.head_dim,
                                tie_word_embeddings=s.tied, dtype=dtype)
        params = llama.abstract_params(cfg)
        tx = tr.make_optimizer(tr.TrainConfig(), 100)
        state = jax.eval_shape(lambda p: tr.TrainState(step=jnp.zeros((), jnp.int32), params=p,
                                                       opt_state=tx.init(p), rng=jnp.zeros((2,), jnp.uint32)),
                               params)
        t, n = seq_len, label_len
        batch = {"tokens": jax.ShapeDtypeStruct((b, t), jnp.int32), "kv_mask": jax.ShapeDtypeStruct((b, t), bool),
                 "target_index": jax.ShapeDtypeStruct((b, n), jnp.int32),
                 "labels": jax.ShapeDtypeStruct((b, n), jnp.int32),
                 "label_mask": jax.ShapeDtypeStruct((b, n), bool)}
        consts = tr.StepConstants(frozen={}, head_vocab=None, label_to_head=None)
        compiled = tr.make_train_step(cfg, tx).lower(state, batch, consts).compile()
        out[layers, b] = compiled.memory_analysis().temp_size_in_bytes
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="llama-3.2-1b")
    p.add_argument("--fsdp", type=int, required=True)
    p.add_argument("--data", type=int, default=1)
    p.add_argument("--tensor", type=int, default=1)
    p.add_argument("--micro-batch", type=int, required=True, help="sequences per device per micro-batch")
    p.add_argument("--seq-len", type=int, default=160)
    p.add_argument("--label-len", type=int, default=16, help="label window (docid tokens + EOS)")
    p.add_argument("--head-vocab", type=int, default=None, help="docid-head vocabulary size (default: full)")
    p.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="compute dtype")
    p.add_argument("--xla-check", action="store_true")
    args = p.parse_args(argv)
    s = Shape(*PRESETS[args.preset])
    cb = 2 if args.dtype == "bfloat16" else 4
    e = estimate(s, fsdp=args.fsdp, data=args.data, tensor=args.tensor, micro_batch=args.micro_batch,
                 seq_len=args.seq_len, label_len=args.label_len, head_vocab=args.head_vocab, compute_bytes=cb)
    per_tok, elems = activation_bytes_per_token_layer(s, args.seq_len, cb)
    print(f"{args.preset}: {s.params:,} params ({s.layer_params:,} per layer); mesh data={args.data} "
          f"fsdp={args.fsdp} tensor={args.tensor} ({e['devices']} devices); micro-batch {args.micro_batch} x "
          f"{args.seq_len} tokens, label window {args.label_len}, compute {args.dtype}")
    print(f"  states      16 B x {s.params:,} / {args.fsdp} = {e['states'] / GB:.2f} GB")
    in_compute_dtype = sum(v for k, v in elems.items() if k != "probs (f32)")
    print(f"  activations {args.micro_batch} x {args.seq_len} tokens x {s.layers} layers x {per_tok:,} B "
          f"= {e['activations'] / GB:.2f} GB   (per token-layer: {in_compute_dtype:,} x {cb} B + "
          f"{elems['probs (f32)']:,} x 4 B)")
    print(f"  head        3 x {args.micro_batch} x {args.label_len} x {args.head_vocab or s.vocab:,} x 4 B "
          f"= {e['head'] / GB:.2f} GB")
    print(f"  gathers     2 x {s.vocab * s.hidden:,} x 4 B + 4 x {s.layer_params:,} x 4 B = {e['gathers'] / GB:.2f} GB"
          if args.fsdp > 1 else "  gathers     none (fsdp=1: every device holds the whole model)")
    print(f"  update      {UPDATE_TEMP_BYTES} B x {s.params:,} / {args.fsdp} = {e['update'] / GB:.2f} GB")
    print(f"  total       {e['total'] / GB:.2f} GB per device")
    if args.xla_check:
        mb = args.micro_batch
        temps = xla_check(s, mb, args.seq_len, args.label_len, args.dtype)
        per_layer = temps[2, mb] - temps[1, mb]
        per_batch = temps[2, 2 * mb] - temps[2, mb]
        print("  xla-check   CPU temp bytes of the compiled step (1 device): "
              + ", ".join(f"{k[0]} layer(s) x micro-batch {k[1]}: {v / GB:.3f} GB" for k, v in temps.items()))
        print(f"              +1 layer: +{per_layer / GB:.3f} GB; arithmetic: activations "
              f"{mb * args.seq_len * per_tok / GB:.3f} + grads {4 * s.layer_params / GB:.3f} + update temporaries "
              f"{UPDATE_TEMP_BYTES * s.layer_params / GB:.3f} GB")
        head = 3 * mb * args.label_len * (args.head_vocab or s.vocab) * 4
        print(f"              +{mb} sequences (2 layers): +{per_batch / GB:.3f} GB; arithmetic: activations "
              f"{mb * args.seq_len * 2 * per_tok / GB:.3f} + head {head / GB:.3f} GB")


if __name__ == "__main__":
    main()
