"""The training loop and the `zerogr train` command.

    zerogr train --config experiments/configs/cpu_small.py --index INDEX_DIR [--index DIR2 ...] --workdir DIR
                 [--resume] [--set train.lr=1e-4 ...]

The work directory holds `manifest.json` (config, model, data counts and fingerprints, library versions, status,
final metrics; written atomically at the start and the end), `metrics.jsonl` (one row per log step and per
evaluation), `checkpoints/` (Orbax, see `train_checkpoints`) and, at the end, `model/` (an HF Llama directory of the
trained weights, loadable by `models.loading.load_model`).

A run stopped at any point resumes with `--resume` from the newest good checkpoint, bit-identically: the state,
data position and rng are restored, the plan of every epoch is a pure function of (seed, epoch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import pathlib
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax import atomic_files
from zerogr_jax import config as config_lib
from zerogr_jax import distributed, rerank_head
from zerogr_jax import sharding as shd
from zerogr_jax.training import step as tr
from zerogr_jax.training import input_pipeline as pipe
from zerogr_jax.training.pairs import (PairsData, build_examples, docid_vocabulary, load_index,
                                            split_group_prefixes, split_shared_prefixes)
from zerogr_jax.models import llama
from zerogr_jax.training.checkpoints import TrainCheckpoints

log = logging.getLogger(__name__)

# Fields that may change between a run and its resume. All but the mesh keep the continuation bit-identical; a new
# mesh (e.g. resuming on other hardware) restores into the new shardings, equal up to float reduction order.
RESUME_MUTABLE = {"train.checkpoint_every", "train.keep_checkpoints", "train.async_checkpoints", "train.eval_every",
                  "train.eval_max_examples", "train.log_every", "train.total_steps", "train.epochs", "mesh.data",
                  "mesh.fsdp", "mesh.tensor"}

EvalCallback = Callable[[llama.LlamaConfig, Any, int], dict]  # (model cfg, full params, step) -> metrics


@dataclasses.dataclass
class TrainSetup:
    """Everything a run needs, built on the host."""

    experiment: tr.ExperimentConfig
    model_cfg: llama.LlamaConfig
    params: Any  # full model params (numpy or jax arrays)
    data: PairsData
    head_vocab: np.ndarray | None = None  # [V_docid] for the docid head
    tokenizer: Any = None
    model_source: str = ""


def _head_token(setup: TrainSetup, tc: tr.TrainConfig) -> int | None:
    """The rerank head's token id for `train.rank_score="head"` (None for the sequence score)."""
    if tc.rank_score != "head":
        return None
    if setup.tokenizer is None:
        raise ValueError("train.rank_score='head' needs the run's tokenizer to find train.rerank_token")
    return rerank_head.token_id(setup.tokenizer, tc.rerank_token)


@dataclasses.dataclass
class FitResult:
    state: tr.TrainState
    consts: tr.StepConstants
    model_cfg: llama.LlamaConfig
    data_position: dict
    history: list[dict]
    final_eval: dict
    rejected_checkpoints: list[str]
    total_steps: int


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _check_resume_config(saved: dict, current: dict) -> None:
    current = json.loads(json.dumps(current))  # tuples -> lists, as the saved copy went through JSON
    a, b = _flat(saved["experiment"]), _flat(current["experiment"])
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUME_MUTABLE)
    if changed:
        raise ValueError("cannot resume: the config differs from the checkpoint's in "
                         + ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in changed))
    if saved["fingerprints"] != current["fingerprints"]:
        raise ValueError(f"cannot resume: the index data changed (fingerprints {saved['fingerprints']} -> "
                         f"{current['fingerprints']})")


def evaluate(eval_step, params, consts, examples, global_batch: int, shardings, max_examples: int) -> dict:
    """Teacher-forced docid accuracy (all docid tokens + EOS right), token accuracy and loss on held-out examples."""
    if len(examples) == 0:
        return {}
    total: dict[str, float] = {}
    for batch in pipe.sequential_batches(examples, global_batch, shardings=shardings, max_examples=max_examples):
        stats = jax.device_get(eval_step(params, batch, consts))
        for k, v in stats.items():
            total[k] = total.get(k, 0.0) + float(v)
    tokens = max(total["label_tokens"], 1.0)
    return {"eval_loss": total["loss_sum"] / tokens, "eval_token_accuracy": total["correct_tokens"] / tokens,
            "eval_docid_accuracy": total["correct_sequences"] / max(total["sequences"], 1.0),
            "eval_examples": int(total["sequences"])}


def frozen_features(features_step, consts, examples, global_batch: int, shardings, *, hidden_size: int,
                    length_buckets: int = 1, progress: bool = True, desc: str = "frozen layers") -> np.ndarray:
    """[N, T, D] float32 host array: the frozen layers' output for every example, on every process (zero beyond
    each row's batch width). Rows run shortest first, each batch cut to one of the training's bucket widths."""
    n, t = examples.tokens.shape
    out = np.zeros((n, t, hidden_size), np.float32)
    lengths = examples.kv_mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    widths = pipe.bucket_widths(lengths, t, max(length_buckets, 1))
    batches = pipe.sequential_batches(examples.take(order), global_batch, shardings=shardings, widths=widths)
    with _progress(-(-n // global_batch), 0, progress, desc=desc) as bar:
        for start, batch in zip(range(0, n, global_batch), batches):
            feats = np.asarray(distributed.host_arrays(features_step(batch, consts)))  # [global_batch, w, D]
            rows = order[start:start + global_batch]
            out[rows, :feats.shape[1]] = feats[:len(rows)]
            bar.update(1)
    return out


def fit(setup: TrainSetup, workdir: str | os.PathLike, *, mesh: jax.sharding.Mesh | None = None,
        resume: bool = False, stop_after_step: int | None = None, eval_callback: EvalCallback | None = None,
        progress: bool = True) -> FitResult:
    """Trains (or resumes) a retriever; see the module docstring for what goes into `workdir`.

    `stop_after_step` ends the loop early after that step (and its checkpoint), as a kill between steps would.
    `eval_callback(model_cfg, full_params, step)` adds metrics to each evaluation (e.g. real-query nDCG@10).
    """
    exp, tc = setup.experiment, setup.experiment.train
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = setup.model_cfg.replace(dtype=tc.dtype)
    mesh = mesh or shd.make_mesh(exp.mesh)

    if setup.head_vocab is not None:
        missing = np.setdiff1d(setup.data.train.labels[setup.data.train.label_mask], setup.head_vocab)
        if missing.size:
            raise ValueError(f"label tokens {missing[:10].tolist()} are not in the docid-head vocabulary")
    # params: split, then placed straight into their shardings
    trainable, frozen = tr.split_params(setup.params, cfg, tc.trainable)
    train_axes, frozen_axes = tr.split_logical_axes(cfg, tc.trainable)
    shape_of = lambda t: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32), t)
    frozen_sh = shd.tree_shardings(mesh, shape_of(frozen), frozen_axes) if frozen else {}
    train_ex, heldout_ex, rank_ex, prefixes = setup.data.train, setup.data.heldout, setup.data.rank, None
    group = setup.data.group_size
    if tc.rank_every < 0 or tc.rank_batch_size < 0:
        raise ValueError(f"train.rank_every={tc.rank_every} and train.rank_batch_size={tc.rank_batch_size} must be >= 0")
    if tc.rank_score not in ("sequence", "head"):
        raise ValueError(f"train.rank_score={tc.rank_score!r}: expected 'sequence' or 'head'")
    if tc.rank_every and rank_ex is None:
        raise ValueError("train.rank_every needs ranking groups: set data.negatives > 0")
    if not tc.rank_every:
        rank_ex = None  # groups built but no ranking steps asked for: leave them out of every computation
    if tc.share_prefix:
        num_collections = int(max(p.collection.max(initial=0) for p in (train_ex, heldout_ex))) + 1
        prefixes, (train_ex, heldout_ex) = split_shared_prefixes([train_ex, heldout_ex], num_collections,
                                                                 setup.data.pad_id)
        log.info("shared prefixes of %s tokens; rows now %d tokens (were %d)", prefixes.length.tolist(),
                 train_ex.tokens.shape[1], setup.data.train.tokens.shape[1])
        if rank_ex is not None:  # a ranking group's rows share its whole prompt: run it once per group
            rank_ex = split_group_prefixes(rank_ex, group, setup.data.pad_id)
            log.info("ranking groups: prompts of up to %d tokens once per group; rows now %d tokens (were %d)",
                     rank_ex.prefix.shape[1], rank_ex.tokens.shape[1], setup.data.rank.tokens.shape[1])
    consts = tr.step_constants(jax.device_put(frozen, frozen_sh) if frozen else {}, setup.head_vocab,
                               cfg.vocab_size, prefixes)
    consts_sh = tr.constants_shardings(mesh, consts, frozen_axes)

    batch_sh = pipe.batch_shardings(mesh)
    if tc.cache_frozen_features:
        if not frozen:
            raise ValueError("train.cache_frozen_features needs frozen layers: set train.trainable='top_layers:N'")
        features_step = tr.make_frozen_features_step(cfg, mesh, batch_sh, consts_sh)
        train_ex, heldout_ex = (dataclasses.replace(ex, features=frozen_features(
            features_step, consts, ex, tc.batch_size, batch_sh, hidden_size=cfg.hidden_size,
            length_buckets=tc.length_buckets, progress=progress, desc=desc))
            for ex, desc in ((train_ex, "frozen layers: train rows"), (heldout_ex, "frozen layers: held-out rows")))
        batch_sh = pipe.batch_shardings(mesh, with_features=True)
    iterator = pipe.BatchIterator(train_ex, tc.batch_size, seed=tc.seed, weights=exp.data.weights or None,
                                  shardings=batch_sh, length_buckets=tc.length_buckets)
    rank_iter = None
    # no cached features: the ranking rows run through every layer, when used
    rank_sh = pipe.batch_shardings(mesh, with_prefix=rank_ex is not None and rank_ex.prefix is not None)
    if rank_ex is not None:
        rank_iter = pipe.BatchIterator(rank_ex, tc.rank_batch_size or tc.batch_size, seed=tc.seed + 1,
                                       weights=exp.data.weights or None, shardings=rank_sh, group_size=group)
    total_steps = tc.total_steps or max(1, math.ceil(tc.epochs * iterator.steps_per_epoch))
    if rank_iter is not None and not tc.total_steps:  # the epochs count docid-loss steps; ranking steps come on top
        total_steps += total_steps // tc.rank_every
    tx = tr.make_optimizer(tc, total_steps)
    abstract_state, state_sh = tr.state_shardings(mesh, shape_of(trainable), train_axes, tx)

    run_config = {"experiment": config_lib.to_dict(exp), "fingerprints": setup.data.fingerprints,
                  "model_source": setup.model_source,
                  "head_vocab_size": None if setup.head_vocab is None else int(len(setup.head_vocab))}
    ckpt = TrainCheckpoints(workdir / "checkpoints", save_every=tc.checkpoint_every, keep=tc.keep_checkpoints,
                            async_save=tc.async_checkpoints)
    restored = None
    if resume:
        restored = ckpt.restore_latest(tr.with_shardings(abstract_state, state_sh),
                                       check_config=lambda saved: _check_resume_config(saved, run_config))
    elif ckpt.all_steps():
        raise FileExistsError(f"{ckpt.directory} already holds checkpoints {ckpt.all_steps()}: pass --resume to "
                              "continue that run, or use a new --workdir")
    if restored is not None:
        step0, state, position, _ = restored
        iterator.set_state(position)
        if rank_iter is not None:
            rank_iter.set_state(position["rank"])
        log.info("resumed from %s/%d (data position %s)", ckpt.directory, step0, position)
    else:
        state = tr.init_train_state(trainable, tx, tc.seed, state_sh)

    schedule = tr.learning_rate_schedule(tc, total_steps)
    train_step = tr.make_train_step(cfg, tx, tc.grad_accum_steps, mesh, state_sh, batch_sh, consts_sh, schedule)
    rank_step = None if rank_iter is None else tr.make_train_step(
        cfg, tx, 1, mesh, state_sh, rank_sh, consts_sh, schedule, group_size=group,
        rank_weight=tc.rank_weight,
        head_token=_head_token(setup, tc))

    def is_rank_step(step: int) -> bool:  # 0-based: every (rank_every + 1)-th step
        return rank_iter is not None and (step + 1) % (tc.rank_every + 1) == 0

    def data_position() -> dict:
        position = iterator.get_state()
        return position if rank_iter is None else {**position, "rank": rank_iter.get_state()}
    eval_step = tr.make_eval_step(cfg, mesh, state_sh.params, batch_sh, consts_sh)

    def run_eval(step: int) -> dict:
        out = evaluate(eval_step, state.params, consts, heldout_ex, tc.batch_size, batch_sh, tc.eval_max_examples)
        if eval_callback is not None:
            out.update(eval_callback(cfg, tr.merge_params(state.params, consts.frozen), step))
        return out

    metrics_file = workdir / "metrics.jsonl"
    history: list[dict] = []
    start = int(jax.device_get(state.step))
    end = total_steps if stop_after_step is None else min(total_steps, stop_after_step)
    bar = _progress(total_steps, start, progress)
    window_tokens, window_examples, window_start = 0.0, 0, time.perf_counter()
    final_eval: dict = {}
    pending = None  # metrics of the previous step: read one step late so the host never waits on the device

    def log_metrics(step: int, metrics, rows: int) -> None:
        nonlocal window_tokens, window_examples, window_start
        m = {k: float(v) for k, v in jax.device_get(metrics).items()}
        window_tokens += m["input_tokens"]
        window_examples += rows
        if step % tc.log_every == 0 or step == end:
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            row = {"step": step, **m, "tokens_per_s": window_tokens / elapsed,
                   "examples_per_s": window_examples / elapsed}
            history.append(row)
            _append_jsonl(metrics_file, row)
            bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{m['docid_accuracy']:.2f}",
                            tok_s=f"{row['tokens_per_s']:.0f}")
            window_tokens, window_examples, window_start = 0.0, 0, time.perf_counter()

    for step in range(start, end):
        if is_rank_step(step):
            state, metrics = rank_step(state, next(rank_iter), consts)
            rows = rank_iter.global_batch
        else:
            state, metrics = train_step(state, next(iterator), consts)
            rows = tc.batch_size
        if pending is not None:
            log_metrics(*pending)
        pending = (step + 1, metrics, rows)
        ckpt.save(step + 1, state, data_position(), run_config)
        bar.update(1)
        if tc.eval_every and (step + 1) % tc.eval_every == 0 and step + 1 < total_steps:
            log_metrics(*pending)
            pending = None
            row = {"step": step + 1, **run_eval(step + 1)}
            history.append(row)
            _append_jsonl(metrics_file, row)
            window_tokens, window_examples, window_start = 0.0, 0, time.perf_counter()
    if pending is not None:
        log_metrics(*pending)
    last = int(jax.device_get(state.step))
    ckpt.wait()
    if last not in ckpt.all_steps() and last > start:
        ckpt.save(last, state, data_position(), run_config, force=True)
    ckpt.wait()
    if last == total_steps and stop_after_step is None:
        final_eval = {"step": last, **run_eval(last)}
        history.append(final_eval)
        _append_jsonl(metrics_file, final_eval)
    bar.close()
    rejected = list(ckpt.rejected)
    ckpt.close()
    return FitResult(state=state, consts=consts, model_cfg=cfg, data_position=data_position(), history=history,
                     final_eval=final_eval, rejected_checkpoints=rejected, total_steps=total_steps)


def _append_jsonl(path: pathlib.Path, row: dict) -> None:
    """One metrics row, written by process 0 only (every process computes the same global metrics)."""
    if jax.process_index() != 0:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _progress(total: int, initial: int, enabled: bool, desc: str | None = None):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, desc=desc)


# ------------------------------------------------------------------------------------------------------- CLI

def _versions() -> dict:
    import flax
    import optax
    import orbax.checkpoint
    return {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "orbax-checkpoint": orbax.checkpoint.__version__, "python": sys.version.split()[0]}


def _enable_compilation_cache() -> None:
    """Persists compiled steps (a minute each for SmolLM2 on 2 CPU cores), so a resumed run starts at once.

    Kept unless the user chose a directory already (JAX_COMPILATION_CACHE_DIR); ZEROGR_XLA_CACHE=0 turns it off.
    """
    from zerogr_jax.models.loading import cache_root

    if os.environ.get("ZEROGR_XLA_CACHE", "1") == "0" or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", str(cache_root() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)


@dataclasses.dataclass(frozen=True)
class TrainStageConfig:
    """The train stage: an experiment config file, the index directories it trains on, and its output directory.

    `zerogr train` is this dataclass read from the command line (`from_argv`); `run_train` runs it."""

    config: str  # experiment config file (Python, defines get_config())
    indexes: tuple[str, ...]  # index directories (several = a multi-task mix; weights via data.weights)
    workdir: str  # checkpoints, metrics, manifest.json, model/
    overrides: tuple[str, ...] = ()  # "key=value" on top of the config file, e.g. train.lr=1e-4
    resume: bool = False  # continue from the newest good checkpoint in `workdir`
    progress: bool = True

    def __post_init__(self):
        if not self.indexes:
            raise config_lib.ConfigError("train: at least one index directory is needed")

    def argv(self) -> list[str]:
        """The `zerogr train` arguments that give this config (the manifest's command; the pipeline's fingerprint)."""
        out = ["--config", self.config, "--workdir", self.workdir]
        for path in self.indexes:
            out += ["--index", path]
        for o in self.overrides:
            out += ["--set", o]
        return out + (["--resume"] if self.resume else []) + ([] if self.progress else ["--no-progress"])

    @classmethod
    def from_argv(cls, argv: Sequence[str] | None = None) -> "TrainStageConfig":
        p = argparse.ArgumentParser(prog="zerogr train",
                                    description="Train a generative retriever on indexed collections.")
        p.add_argument("--config", required=True, help="experiment config file (Python, defines get_config())")
        p.add_argument("--index", action="append", required=True,
                       help="index directory (repeat for a multi-task mix; weights via --set data.weights=1,0.5)")
        p.add_argument("--workdir", required=True, help="output directory (checkpoints, metrics, manifest, model/)")
        p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --workdir")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="config override, e.g. train.lr=1e-4")
        p.add_argument("--no-progress", action="store_true")
        a = p.parse_args(argv)
        return cls(config=a.config, indexes=tuple(a.index), workdir=a.workdir, overrides=tuple(a.set),
                   resume=a.resume, progress=not a.no_progress)


def load_base_model(exp: tr.ExperimentConfig):
    """(loaded model, model config, params): the model an experiment starts from, cut to `model.num_layers`."""
    from zerogr_jax.models.loading import load_model

    model = load_model(exp.model.name, dtype=exp.train.dtype)
    cfg, params = model.cfg, model.params
    if exp.model.num_layers:
        params, cfg = llama.truncate_layers(params, cfg, exp.model.num_layers)
    return model, cfg, params


def train_main(argv: Sequence[str] | None = None, eval_callback: EvalCallback | None = None) -> FitResult:
    """`zerogr train`: the command line read into a `TrainStageConfig`, then `run_train`."""
    return run_train(TrainStageConfig.from_argv(argv), eval_callback)


def run_train(stage: TrainStageConfig, eval_callback: EvalCallback | None = None) -> FitResult:
    """Trains (or resumes) one retriever; exports it to `<workdir>/model`. One process holds the workdir's lock
    (the processes of a multi-process job share theirs)."""
    import contextlib

    from zerogr_jax.workdir_lock import workdir_lock

    single = jax.process_count() == 1
    with workdir_lock(stage.workdir) if single else contextlib.nullcontext():
        return _run_train(stage, eval_callback)


def _run_train(stage: TrainStageConfig, eval_callback: EvalCallback | None) -> FitResult:
    from zerogr_jax.models.checkpoints import export_hf_directory

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _enable_compilation_cache()
    exp = config_lib.override(config_lib.load_config_file(stage.config), list(stage.overrides))
    workdir = pathlib.Path(stage.workdir)
    if exp.data.weights and len(exp.data.weights) != len(stage.indexes):
        raise ValueError(f"data.weights has {len(exp.data.weights)} values for {len(stage.indexes)} --index dirs")

    t0 = time.perf_counter()
    model, cfg, params = load_base_model(exp)
    indexes = [load_index(p) for p in stage.indexes]
    data = build_examples(indexes, model.tokenizer, exp.data)
    head_vocab = docid_vocabulary(indexes, model.tokenizer) if exp.model.docid_head else None
    setup = TrainSetup(experiment=exp, model_cfg=cfg, params=params, data=data, head_vocab=head_vocab,
                       tokenizer=model.tokenizer, model_source=model.source)
    manifest = {
        "command": ["zerogr", "train", *stage.argv()],
        "experiment": config_lib.to_dict(exp), "config_file": str(stage.config),
        "model": {"source": model.source, "num_layers": cfg.num_layers, "params": cfg.num_params(),
                  "head_vocab_size": None if head_vocab is None else int(len(head_vocab))},
        "data": {"indexes": [str(p) for p in stage.indexes], "fingerprints": data.fingerprints, **data.counts,
                 "train_examples": len(data.train), "heldout_examples": len(data.heldout),
                 "rank_groups": 0 if data.rank is None else len(data.rank) // data.group_size,
                 "sequence_length": int(data.train.tokens.shape[1]), "label_window": int(data.train.labels.shape[1])},
        "versions": _versions(), "devices": [str(d) for d in jax.devices()], "status": "running",
        "setup_seconds": round(time.perf_counter() - t0, 2),
    }

    def write_manifest():  # written at the start and the end (status, steps, final metrics, export)
        distributed.run_on_main(lambda: atomic_files.atomic_write_json(workdir / "manifest.json", manifest,
                                                                       default=str), "write manifest.json")

    write_manifest()
    log.info("%d train / %d held-out examples, T=%d; model %s (%d layers)", len(data.train), len(data.heldout),
             data.train.tokens.shape[1], model.source, cfg.num_layers)

    t1 = time.perf_counter()
    result = fit(setup, workdir, resume=stage.resume, eval_callback=eval_callback, progress=stage.progress)
    manifest.update(status="done", steps=int(jax.device_get(result.state.step)), total_steps=result.total_steps,
                    train_seconds=round(time.perf_counter() - t1, 2), final_eval=result.final_eval,
                    last_log=next((r for r in reversed(result.history) if "loss" in r), None),
                    rejected_checkpoints=result.rejected_checkpoints)
    if result.final_eval:
        # every process joins the gather (a collective); process 0 alone writes the export
        full = distributed.host_arrays(tr.merge_params(result.state.params, result.consts.frozen))
        distributed.run_on_main(lambda: export_hf_directory(result.model_cfg.replace(dtype="float32"), full,
                                                            workdir / "model", tokenizer=model.tokenizer),
                                "export the trained model")
        manifest["exported_model"] = str(workdir / "model")
    write_manifest()
    print(json.dumps({k: manifest.get(k) for k in ("status", "steps", "train_seconds", "final_eval",
                                                   "exported_model")}, indent=2))
    return result


if __name__ == "__main__":
    train_main()
