"""Retriever training: configs, train state, docid loss and the sharded, jit-compiled train step.

Choices, and why:

* **Trainable split, not gradient masking.** `trainable="top_layers:N"` splits the stacked `[L, ...]` layer params
  into a frozen lower slice `[:L-N]` and a trainable upper slice `[L-N:]` (plus the final norm, and the LM head when
  it is untied; the tied embedding stays frozen). Only the trainable tree is differentiated, gets AdamW state and is
  checkpointed; the frozen tree is a constant argument of the step. Against masking the gradient on the layer axis,
  this saves the two Adam moments of every frozen weight (2x their size), the backward pass through the frozen
  layers (JAX never differentiates them), and frozen weights in every checkpoint. The price is a second layer
  stack (`_LayerStack`, the same `nn.scan` as `models.llama`; a test checks both give the same hidden states).
* **Gradient accumulation as a `lax.scan` over micro-batches inside the step**, not `optax.MultiSteps`: one call =
  one optimizer update, so the step counter, LR schedule, checkpoints and the data position all count optimizer
  steps, no half-accumulated gradient ever needs checkpointing, and there is no per-micro-batch host dispatch. The
  loss is a *sum* over label tokens divided by the batch's total label count after accumulation, so A micro-batches
  of B/A give the same update as one batch of B (up to float summation order).
* **Docid head** (`ModelConfig.docid_head`): logits only over the token ids that occur in some docid (+ EOS), a
  gather of `[V_docid, D]` rows of the (tied) embedding. At search time the trie-constrained decoder masks every other
  token to -inf before the softmax, so the probabilities it samples from are the same softmax over the allowed
  subset either way: the restricted head changes the training normalisation (no gradient pushes non-docid tokens
  down) but not what constrained search can produce or how it ranks. What it gives up: the trained model is no
  longer trained as a free-form generator, and docids of a *new* corpus may use tokens outside this vocabulary.
* **Label window**: only the hidden states at the docid label positions (`target_index`) go through the LM head.
* **Shared prefixes** (`TrainConfig.share_prefix`): the chat-template + instruction prefix common to a collection's
  rows is run once per step and reached by every row through the KV cache (`hidden_states`); the rows hold only
  query + docid. Same function (a test checks loss and gradients), roughly half the tokens for short queries.
* **Ranking steps** (`TrainConfig.rank_every`, the reference's every-8th-step ranking signal): a RankNet loss over a
  query's positive and BM25-mined negative docids, on one of two scores (`TrainConfig.rank_score`): the sequence
  log-probability search ranks by (the ranking it learns is the one exact search uses, at no cost at search), or the
  reference's rerank head (`rerank_head`: a reserved token's logit after the docid, read at search by
  `search.rerank_depth`). Its own jit-compiled step over whole groups (`rank_loss_terms`); the frozen features cache
  does not cover its rows (they run through every layer), so only the rows the ranking steps use are ever computed.
  With `share_prefix` a group's rows share its whole prompt (template, instruction, query), which runs once per
  group as the rows' KV prefix (`pairs.split_group_prefixes`): the rows hold only their docids.
  Off by default: on the sequence score it lowered nDCG@10 and raised the held-out docid loss on med and cisi
  (RESULTS.md, session 12).
* **Mixed precision**: params and optimizer state in float32; matmuls in `TrainConfig.dtype` (the model casts);
  the loss (log-softmax) in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from zerogr_jax import rerank_head, sharding as shd
from zerogr_jax.training.pairs import PairsConfig, SharedPrefixes
from zerogr_jax.models import llama

Params = Any


# ------------------------------------------------------------------------------------------------------ configs

@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "smollm2-135m-instruct"  # embedded name, a .gguf file or an HF Llama directory
    num_layers: int = 0  # keep only the first N decoder layers (0 = all of them)
    docid_head: bool = False  # LM head and softmax restricted to the tokens that occur in docids


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-5
    warmup_steps: int = 100
    schedule: Literal["constant", "cosine"] = "constant"  # after the linear warm-up
    epochs: float = 5.0  # used when total_steps == 0
    total_steps: int = 0
    batch_size: int = 32  # global examples per optimizer step
    grad_accum_steps: int = 1  # micro-batches per step (batch_size must divide)
    grad_clip: float = 1.0
    weight_decay: float = 0.0  # AdamW decoupled decay, not applied to norm scales
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    seed: int = 0
    dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    trainable: str = "all"  # "all" | "top_layers:N"
    # compute each collection's common prompt prefix once per step, and each ranking group's prompt once per group
    # (same loss)
    share_prefix: bool = True
    # trainable="top_layers:N": run the frozen layers over every example once, keep their outputs on the host, and
    # train only the top layers on them (same loss; each epoch after the first skips the frozen layers' forward)
    cache_frozen_features: bool = False
    length_buckets: int = 1  # >1: batches of similar-length rows cut to one of this many widths (more compiles)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    async_checkpoints: bool = True
    eval_every: int = 500  # 0 = only at the end
    eval_max_examples: int = 512
    log_every: int = 10
    # ranking steps (needs data.negatives > 0): after every `rank_every` docid-loss steps, one step over
    # `rank_batch_size` rows of ranking groups (query + positive docid + negatives) whose loss is the positive's docid
    # cross-entropy + rank_weight x RankNet on the docids' sequence log-probabilities; 0 = no ranking steps
    rank_every: int = 0
    rank_weight: float = 1.0
    rank_batch_size: int = 0  # rows (whole groups); 0 = batch_size
    # what the ranking steps rank by: "sequence" = log p(docid | query) (the score search ranks by; + the positive's
    # docid loss), "head" = the rerank head's logit (`rerank_head`, RankNet alone; search.rerank_depth reads it)
    rank_score: Literal["sequence", "head"] = "sequence"
    rerank_token: str = rerank_head.DEFAULT_TOKEN  # the head's token (rank_score="head")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = ModelConfig()
    mesh: shd.MeshConfig = shd.MeshConfig()
    data: PairsConfig = PairsConfig()
    train: TrainConfig = TrainConfig()


def parse_trainable(spec: str, num_layers: int) -> int:
    """Number of top layers trained (num_layers for "all"); raises on a malformed spec."""
    if spec == "all":
        return num_layers
    if spec.startswith("top_layers:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = -1
        if 0 <= n <= num_layers:
            return n
        raise ValueError(f"trainable={spec!r}: N must be an integer in [0, {num_layers}]")
    raise ValueError(f"trainable={spec!r}: expected 'all' or 'top_layers:N'")


# ------------------------------------------------------------------------------------------------ param split

@flax.struct.dataclass
class StepConstants:
    """Inputs of the step that are not trained: frozen params, the docid-head vocabulary, shared prefixes."""

    frozen: Params  # {} for trainable="all"
    head_vocab: jax.Array | None = None  # [V_docid] int32 token ids, or None for the full head
    label_to_head: jax.Array | None = None  # [V] int32: token id -> row of head_vocab (-1 if absent)
    prefix_tokens: jax.Array | None = None  # [C, P] int32: per collection, the prefix its rows omit (right-padded)
    prefix_mask: jax.Array | None = None  # [C, P] bool
    prefix_len: jax.Array | None = None  # [C] int32


def _layer_slice(a, lo: int, hi: int):
    if isinstance(a, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct((hi - lo,) + a.shape[1:], a.dtype)
    return a[lo:hi]


def split_params(params: Params, cfg: llama.LlamaConfig, trainable: str) -> tuple[Params, Params]:
    """(trainable, frozen) trees of arrays or ShapeDtypeStructs; `merge_params` inverts it."""
    if trainable == "all":
        return params, {}
    cut = cfg.num_layers - parse_trainable(trainable, cfg.num_layers)
    train = {"layers": jax.tree.map(lambda a: _layer_slice(a, cut, cfg.num_layers), params["layers"]),
             "final_norm": params["final_norm"]}
    frozen = {"embedding": params["embedding"],
              "layers": jax.tree.map(lambda a: _layer_slice(a, 0, cut), params["layers"])}
    if "lm_head" in params:
        train["lm_head"] = params["lm_head"]
    return train, frozen


def merge_params(trainable: Params, frozen: Params) -> Params:
    """The full model params from the split trees."""
    if not frozen:
        return trainable
    full = {**frozen, **{k: v for k, v in trainable.items() if k != "layers"}}
    full["layers"] = jax.tree.map(lambda lo, up: jnp.concatenate([lo, up], axis=0), frozen["layers"],
                                  trainable["layers"])
    return full


def split_logical_axes(cfg: llama.LlamaConfig, trainable: str) -> tuple[Params, Params]:
    axes = llama.param_logical_axes(cfg)
    if trainable == "all":
        return axes, {}
    train = {"layers": axes["layers"], "final_norm": axes["final_norm"]}
    frozen = {"embedding": axes["embedding"], "layers": axes["layers"]}
    if "lm_head" in axes:
        train["lm_head"] = axes["lm_head"]
    return train, frozen


# ----------------------------------------------------------------------------------------------------- forward

class _LayerStack(nn.Module):
    """A slice of the decoder's scanned layer stack, applied to hidden states (same scan as `llama.Llama`)."""

    cfg: llama.LlamaConfig

    @nn.compact
    def __call__(self, x, positions, kv_mask, caches, cache_index):
        return llama.apply_layer_stack(llama.layer_stack(self.cfg), self.cfg, x, caches, positions, cache_index,
                                       kv_mask)


def _num_layers(layer_params: Params | None) -> int:
    return 0 if not layer_params else jax.tree.leaves(layer_params)[0].shape[0]


def _apply_layers(layer_params: Params, cfg: llama.LlamaConfig, x, positions, kv_mask, caches=None, cache_index=0):
    """(hidden states, per-layer (k, v) caches [n, B, K, S, E] or None) after the stacked layers."""
    n = _num_layers(layer_params)
    if n == 0:
        return x, caches
    return _LayerStack(cfg.replace(num_layers=n)).apply(
        {"params": {"layers": layer_params}}, x, positions, kv_mask, caches, jnp.asarray(cache_index, jnp.int32))


def hidden_states(trainable: Params, consts: StepConstants, cfg: llama.LlamaConfig, batch: dict, *,
                  frozen_only: bool = False) -> jax.Array:
    """Final-norm hidden states [B, T, D] (compute dtype) of the batch rows.

    With shared prefixes (`consts.prefix_tokens [C, P]`), each stack of layers first runs the C prefixes and keeps
    their keys/values, then runs the rows with the row's collection prefix in slots [0, P) of its KV cache and RoPE
    positions continuing after the prefix: the attention and positions of the unsplit sequence, computed once per
    prefix instead of once per row.

    With `batch["features"]` [B, T, D] (the frozen layers' outputs of the rows, computed once before training:
    `train.cache_frozen_features`), the rows enter at the trained layers; the prefixes, a few dozen tokens, still run
    through every layer. `frozen_only=True` returns those frozen outputs instead (no final norm): what the cache holds.
    """
    tokens, kv_mask = batch["tokens"], batch["kv_mask"]  # [B, T]
    b, t = tokens.shape
    frozen = consts.frozen
    cached = "features" in batch
    if (cached or frozen_only) and not frozen:
        raise ValueError("cached frozen-layer features need frozen layers (train.trainable='top_layers:N')")
    if not frozen and consts.prefix_tokens is None:  # the whole model, trained: the model's own forward
        positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        hidden, _ = llama.forward(trainable, cfg, tokens, positions, kv_mask=kv_mask, return_hidden=True)
        return hidden.astype(cfg.compute_dtype)
    dt = cfg.compute_dtype
    embedding = (frozen or trainable)["embedding"]
    # lower (frozen), upper (trained)
    stacks = [frozen["layers"]] if frozen_only else [frozen["layers"] if frozen else None, trainable["layers"]]
    rows_from = 1 if cached else 0  # the first stack the rows run through
    x = batch["features"].astype(dt) if cached else jnp.take(embedding, tokens, axis=0).astype(dt)  # [B, T, D]
    if consts.prefix_tokens is None:
        positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        for stack in stacks[rows_from:]:
            x, _ = _apply_layers(stack, cfg, x, positions, kv_mask)
    else:
        c, p = consts.prefix_tokens.shape
        col = batch["collection"]  # [B]
        prefix_positions = jnp.broadcast_to(jnp.arange(p, dtype=jnp.int32), (c, p))
        positions = consts.prefix_len[col][:, None] + jnp.arange(t, dtype=jnp.int32)[None, :]  # [B, T]
        row_mask = jnp.concatenate([consts.prefix_mask[col], kv_mask], axis=1)  # [B, P + T]
        xp = jnp.take(embedding, consts.prefix_tokens, axis=0).astype(dt)  # [C, P, D]
        for i, stack in enumerate(stacks):
            n = _num_layers(stack)
            if n == 0:
                continue
            empty = jnp.zeros((n, c, cfg.num_kv_heads, p, cfg.head_dim), dt)
            xp, (kp, vp) = _apply_layers(stack, cfg, xp, prefix_positions, consts.prefix_mask, (empty, empty), 0)
            if i < rows_from:
                continue
            room = jnp.zeros((n, b, cfg.num_kv_heads, t, cfg.head_dim), dt)  # the rows' own slots [P, P + T)
            caches = (jnp.concatenate([kp[:, col], room], axis=3), jnp.concatenate([vp[:, col], room], axis=3))
            x, _ = _apply_layers(stack, cfg, x, positions, row_mask, caches, p)
    if frozen_only:
        return x
    norm = llama.RMSNorm(cfg.rms_norm_eps, dt)
    return norm.apply({"params": trainable["final_norm"]}, x)


def make_frozen_features_step(cfg: llama.LlamaConfig, mesh: Mesh | None = None, batch_sharding: Any = None,
                              consts_sharding: Any = None):
    """`features(batch, consts) -> [B, T, D]` float32: the rows' outputs of the frozen layers, batch-sharded."""
    def step(batch, consts):
        return hidden_states({}, consts, cfg, batch, frozen_only=True).astype(jnp.float32)
    if batch_sharding is None:
        return jax.jit(step)
    return jax.jit(step, in_shardings=(batch_sharding, consts_sharding),
                   out_shardings=NamedSharding(mesh, P(shd.BATCH, None, None)))


def head_logits(trainable: Params, consts: StepConstants, cfg: llama.LlamaConfig, h: jax.Array) -> jax.Array:
    """Logits [..., V or V_docid] float32 for hidden states h [..., D]."""
    full = {**consts.frozen, **trainable}
    dt = cfg.compute_dtype
    if cfg.tie_word_embeddings:
        w = full["embedding"]  # [V, D]
        if consts.head_vocab is not None:
            w = jnp.take(w, consts.head_vocab, axis=0)  # [V_docid, D]
        logits = jnp.einsum("...d,vd->...v", h.astype(dt), w.astype(dt))
    else:
        w = full["lm_head"]  # [D, V]
        if consts.head_vocab is not None:
            w = jnp.take(w, consts.head_vocab, axis=1)  # [D, V_docid]
        logits = jnp.einsum("...d,dv->...v", h.astype(dt), w.astype(dt))
    return logits.astype(jnp.float32)


def _label_terms(trainable: Params, consts: StepConstants, cfg: llama.LlamaConfig, batch: dict,
                 hidden: jax.Array | None = None):
    """(cross-entropy [B, L] f32, label mask [B, L], argmax-correct [B, L] (True off the labels)) of the batch rows;
    `hidden` [B, T, D]: the rows' final hidden states when the caller has them already."""
    if hidden is None:
        hidden = hidden_states(trainable, consts, cfg, batch)  # [B, T, D]
    h = jnp.take_along_axis(hidden, batch["target_index"][..., None], axis=1)  # [B, L, D]
    logits = head_logits(trainable, consts, cfg, h)  # [B, L, V'] f32
    labels = batch["labels"]  # [B, L]
    if consts.label_to_head is not None:
        labels = jnp.take(consts.label_to_head, labels)
    mask = batch["label_mask"]
    labels = jnp.where(mask, labels, 0)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # [B, L]
    correct = (jnp.argmax(logits, -1) == labels) | ~mask
    return ce, mask, correct


def _input_tokens(consts: StepConstants, batch: dict) -> jax.Array:
    """Real tokens the batch's rows run through the model, their shared prefixes included: [] float32."""
    n = batch["kv_mask"].sum().astype(jnp.float32)
    if consts.prefix_len is not None:
        n += consts.prefix_len[batch["collection"]].sum().astype(jnp.float32)
    return n


def loss_terms(trainable: Params, consts: StepConstants, cfg: llama.LlamaConfig, batch: dict) -> tuple[jax.Array, dict]:
    """Summed cross-entropy over label tokens, and summed counts (so micro-batches add up exactly)."""
    ce, mask, correct = _label_terms(trainable, consts, cfg, batch)
    has_label = mask.any(-1)
    loss_sum = jnp.sum(jnp.where(mask, ce, 0.0))
    stats = {
        "loss_sum": loss_sum,
        "label_tokens": mask.sum().astype(jnp.float32),
        "correct_tokens": (correct & mask).sum().astype(jnp.float32),
        "sequences": has_label.sum().astype(jnp.float32),
        "correct_sequences": (correct.all(-1) & has_label).sum().astype(jnp.float32),  # teacher-forced exact match
        "input_tokens": _input_tokens(consts, batch),
    }
    return loss_sum, stats


def rank_loss_terms(trainable: Params, consts: StepConstants, cfg: llama.LlamaConfig, batch: dict,
                    group_size: int, rank_weight: float, head_token: int | None = None) -> tuple[jax.Array, dict]:
    """The ranking step's objective over groups of `group_size` rows (row 0 of a group: the query's own docid, the
    others: negatives' docids after the same query), and its stats.

    RankNet: rank_weight * sum over pairs softplus(s_negative - s_positive) / (number of pairs), i.e.
    -log sigmoid(s_pos - s_neg), on one of two scores:

    * `head_token` None — s = log p(docid | query), the teacher-forced sum over the docid's tokens + EOS: the score
      exact search ranks by, so a trained ranking needs no extra head or pass at search. The objective adds the
      positives' docid cross-entropy / (their label tokens), which keeps the positive's docid generable.
    * `head_token` t — s = the rerank head's logit (`rerank_head`): token t's logit at the row's last position
      (after the docid's EOS), the reference's. The objective is RankNet alone, as there: the docid loss belongs to
      the docid steps. The positives' cross-entropy is still reported (stats), not trained.
    """
    b, g = batch["tokens"].shape[0], group_size
    grouped = "prefix" in batch
    if grouped:  # each group's prompt once (pairs.split_group_prefixes): its rows reach it as their shared prefix
        prefix_mask = batch["prefix_mask"][::g]  # [B/G, P]
        consts = consts.replace(prefix_tokens=batch["prefix"][::g], prefix_mask=prefix_mask,
                                prefix_len=prefix_mask.sum(1).astype(jnp.int32))
        batch = {**batch, "collection": jnp.arange(b, dtype=jnp.int32) // g}
    hidden = hidden_states(trainable, consts, cfg, batch)  # [B, T, D]
    ce, mask, correct = _label_terms(trainable, consts, cfg, batch, hidden)  # [B, L]
    has = mask.any(-1).reshape(b // g, g)
    if head_token is None:
        seq = -jnp.sum(jnp.where(mask, ce, 0.0), -1).reshape(b // g, g)  # [B/G, G] log p(docid | query)
    else:
        row = llama.head_rows({**consts.frozen, **trainable}, cfg)[head_token]  # [D]
        seq = rerank_head.scores(hidden, rerank_head.last_positions(batch["kv_mask"]), row).reshape(b // g, g)
    pairs = has[:, :1] & has[:, 1:]  # [B/G, G-1]
    margin = seq[:, :1] - seq[:, 1:]  # positive minus negative
    rank_sum = jnp.sum(jnp.where(pairs, jax.nn.softplus(-margin), 0.0))
    positive = (jnp.arange(b) % g == 0)[:, None] & mask  # [B, L] the positives' label tokens
    ce_sum = jnp.sum(jnp.where(positive, ce, 0.0))
    label_tokens = positive.sum().astype(jnp.float32)
    num_pairs = pairs.sum().astype(jnp.float32)
    objective = rank_weight * rank_sum / jnp.maximum(num_pairs, 1.0)
    if head_token is None:
        objective += ce_sum / jnp.maximum(label_tokens, 1.0)
    pos_has = has[:, 0]
    stats = {
        "loss_sum": ce_sum,
        "label_tokens": label_tokens,
        "correct_tokens": (correct & positive).sum().astype(jnp.float32),
        "sequences": pos_has.sum().astype(jnp.float32),
        "correct_sequences": (correct.all(-1).reshape(b // g, g)[:, 0] & pos_has).sum().astype(jnp.float32),
        "input_tokens": (batch["kv_mask"].sum() + consts.prefix_len.sum()).astype(jnp.float32) if grouped
        else _input_tokens(consts, batch),
        "rank_sum": rank_sum,
        "pairs": num_pairs,
        "pairs_ordered": jnp.sum(pairs & (margin > 0)).astype(jnp.float32),  # positive scored above the negative
    }
    return objective, stats


# ------------------------------------------------------------------------------------------------- optimizer

def learning_rate_schedule(tc: TrainConfig, total_steps: int) -> optax.Schedule:
    warmup = min(tc.warmup_steps, total_steps)
    if tc.schedule == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, tc.lr, max(warmup, 1)), optax.constant_schedule(tc.lr)], [warmup])
    if tc.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, tc.lr, warmup, max(total_steps, warmup + 1))
    raise ValueError(f"schedule={tc.schedule!r}: expected 'constant' or 'cosine'")


def make_optimizer(tc: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW on the warm-up + constant/cosine schedule."""
    return optax.chain(
        optax.clip_by_global_norm(tc.grad_clip),
        optax.adamw(learning_rate_schedule(tc, total_steps), b1=tc.b1, b2=tc.b2, eps=tc.eps,
                    weight_decay=tc.weight_decay, mask=_decay_mask),
    )


def _decay_mask(params: Params) -> Params:
    """True for every weight except RMSNorm scales (decaying them towards 0 would shrink activations)."""
    def mask(path, _):
        return not any(str(getattr(k, "key", "")).endswith("norm") for k in path)
    return jax.tree_util.tree_map_with_path(mask, params)


# ------------------------------------------------------------------------------------------------------ state

@flax.struct.dataclass
class TrainState:
    step: jax.Array  # [] int32, optimizer steps taken
    params: Params  # the trainable params (float32)
    opt_state: optax.OptState
    rng: jax.Array  # [2] uint32: raw key data (`jax.random.key_data`), so Orbax saves it as a plain array


def _state_from(params: Params, tx: optax.GradientTransformation, rng_data: jax.Array) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng_data)


def state_shardings(mesh: Mesh, abstract_trainable: Params, trainable_axes: Params,
                    tx: optax.GradientTransformation) -> tuple[TrainState, TrainState]:
    """(abstract state, its shardings): optimizer moments get the shardings of their params.

    The trainable params are boxed with their logical axis names and pushed through `tx.init` under `eval_shape`;
    optax maps over the boxes, so every moment comes out carrying its param's names (MaxText's approach).
    """
    boxed = jax.tree.map(lambda a, names: nn.LogicallyPartitioned(a, tuple(names)), abstract_trainable,
                         trainable_axes)
    rng_abstract = jax.ShapeDtypeStruct((2,), jnp.uint32)
    boxed_state = jax.eval_shape(lambda p, r: _state_from(p, tx, r), boxed, rng_abstract)
    logical = nn.get_partition_spec(boxed_state)
    abstract = nn.unbox(boxed_state)
    # per leaf: `shd.tree_shardings` alone would take optax's NamedTuple states for logical-axis tuples
    shardings = jax.tree.map(lambda names, a: shd.tree_shardings(mesh, a, names), logical, abstract,
                             is_leaf=lambda x: isinstance(x, P))
    return abstract, shardings


def init_train_state(trainable: Params, tx: optax.GradientTransformation, seed: int,
                     shardings: TrainState) -> TrainState:
    """The initial state, built directly into its shardings (params copied from the loaded model)."""
    rng_data = jax.random.key_data(jax.random.key(seed))
    fn = jax.jit(lambda p, r: _state_from(p, tx, r), out_shardings=shardings)
    return fn(trainable, rng_data)


def with_shardings(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs that carry their target shardings (Orbax restores straight into them)."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


# ------------------------------------------------------------------------------------------------------- steps

def _micro_batches(batch: dict, accum: int, mesh: Mesh | None) -> dict:
    """[B, ...] -> [A, B/A, ...]; micro-batch a takes rows a, a+A, ... so each device keeps its own rows."""
    def split(x):
        b = x.shape[0]
        if b % accum:
            raise ValueError(f"batch {b} does not split into {accum} micro-batches")
        y = x.reshape(b // accum, accum, *x.shape[1:]).swapaxes(0, 1)
        if mesh is not None:
            y = jax.lax.with_sharding_constraint(y, NamedSharding(mesh, P(None, shd.BATCH)))
        return y
    return jax.tree.map(split, batch)


def make_train_step(cfg: llama.LlamaConfig, tx: optax.GradientTransformation, accum: int = 1,
                    mesh: Mesh | None = None, state_sharding: TrainState | None = None,
                    batch_sharding: Any = None, consts_sharding: Any = None, schedule: optax.Schedule | None = None,
                    group_size: int = 1, rank_weight: float = 1.0, head_token: int | None = None):
    """`step(state, batch, consts) -> (state, metrics)`, jit-compiled, state donated.

    With shardings given, in/out shardings are explicit (metrics replicated); without, jit picks (1 device).
    `group_size` > 1 makes it the ranking step (`rank_loss_terms` over groups of that many rows; no accumulation:
    micro-batches would cut groups apart); `head_token` ranks by the rerank head's logit instead of the docid's
    log-probability (`rank_loss_terms`).
    """
    ranking = group_size > 1
    if ranking and accum != 1:
        raise ValueError("the ranking step takes no gradient accumulation (set train.rank_batch_size instead)")
    if ranking:
        grad_fn = jax.value_and_grad(lambda p, c, b: rank_loss_terms(p, c, cfg, b, group_size, rank_weight, head_token),
                                     has_aux=True)
    else:
        grad_fn = jax.value_and_grad(lambda p, c, b: loss_terms(p, c, cfg, b), has_aux=True)

    def step(state: TrainState, batch: dict, consts: StepConstants):
        if ranking or accum == 1:  # (the ranking objective is normalised already)
            (_, stats), grads = grad_fn(state.params, consts, batch)
        else:
            def body(carry, micro):
                g_sum, s_sum = carry
                (_, s), g = grad_fn(state.params, consts, micro)
                return (jax.tree.map(jnp.add, g_sum, g), jax.tree.map(jnp.add, s_sum, s)), None
            zeros_g = jax.tree.map(jnp.zeros_like, state.params)
            zeros_s = {k: jnp.zeros((), jnp.float32) for k in _STAT_KEYS}
            (grads, stats), _ = jax.lax.scan(body, (zeros_g, zeros_s), _micro_batches(batch, accum, mesh))
        if not ranking:
            denom = jnp.maximum(stats["label_tokens"], 1.0)
            grads = jax.tree.map(lambda g: g / denom, grads)  # mean over the label tokens of the whole batch
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        rng = jax.random.key_data(jax.random.split(jax.random.wrap_key_data(state.rng))[0])
        metrics = _metrics(stats)
        metrics["grad_norm"] = optax.global_norm(grads)
        if schedule is not None:
            metrics["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, rng=rng)
        return new_state, metrics

    if state_sharding is None:
        return jax.jit(step, donate_argnums=0)
    replicated = NamedSharding(mesh, P())
    return jax.jit(step, in_shardings=(state_sharding, batch_sharding, consts_sharding),
                   out_shardings=(state_sharding, replicated), donate_argnums=0)


_STAT_KEYS = ("loss_sum", "label_tokens", "correct_tokens", "sequences", "correct_sequences", "input_tokens")


def _metrics(stats: dict) -> dict:
    tokens = jnp.maximum(stats["label_tokens"], 1.0)
    out = {
        "loss": stats["loss_sum"] / tokens,
        "token_accuracy": stats["correct_tokens"] / tokens,
        "docid_accuracy": stats["correct_sequences"] / jnp.maximum(stats["sequences"], 1.0),
        "label_tokens": stats["label_tokens"],
        "input_tokens": stats["input_tokens"],
    }
    if "pairs" in stats:  # a ranking step
        pairs = jnp.maximum(stats["pairs"], 1.0)
        out.update(rank_loss=stats["rank_sum"] / pairs, pair_accuracy=stats["pairs_ordered"] / pairs)
    return out


def make_eval_step(cfg: llama.LlamaConfig, mesh: Mesh | None = None, params_sharding: Any = None,
                   batch_sharding: Any = None, consts_sharding: Any = None):
    """`eval_step(params, batch, consts) -> summed stats` (rows without labels count for nothing)."""
    def step(params, batch, consts):
        return loss_terms(params, consts, cfg, batch)[1]
    if params_sharding is None:
        return jax.jit(step)
    return jax.jit(step, in_shardings=(params_sharding, batch_sharding, consts_sharding),
                   out_shardings=NamedSharding(mesh, P()))


def step_constants(frozen: Params, head_vocab: np.ndarray | None, vocab_size: int,
                   prefixes: SharedPrefixes | None = None) -> StepConstants:
    table = None
    if head_vocab is not None:
        table = np.full((vocab_size,), -1, np.int32)
        table[head_vocab] = np.arange(len(head_vocab), dtype=np.int32)
        head_vocab, table = jnp.asarray(head_vocab, jnp.int32), jnp.asarray(table)
    if prefixes is None:
        return StepConstants(frozen=frozen, head_vocab=head_vocab, label_to_head=table)
    return StepConstants(frozen=frozen, head_vocab=head_vocab, label_to_head=table,
                         prefix_tokens=jnp.asarray(prefixes.tokens), prefix_mask=jnp.asarray(prefixes.mask),
                         prefix_len=jnp.asarray(prefixes.length))


def constants_shardings(mesh: Mesh, consts: StepConstants, frozen_axes: Params) -> StepConstants:
    frozen = shd.tree_shardings(mesh, jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), consts.frozen),
                                frozen_axes) if consts.frozen else {}
    rep = NamedSharding(mesh, P())
    return jax.tree.map(lambda _: rep, consts.replace(frozen={})).replace(frozen=frozen)
