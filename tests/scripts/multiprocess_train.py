"""Worker of tests/test_multiprocess.py: a few train steps of a tiny random Llama on a 4-device (data 2, fsdp 2) mesh.

Started by `launch/local.py`, either as 2 processes x 2 CPU devices or as 1 process x 4 devices; both run the real
`training.loop.fit` (per-process input slices assembled with `make_array_from_process_local_data`, Orbax checkpoints
written by all processes) and write the final train state as one .npz (process 0, atomically).

    multiprocess_train.py train   WORKDIR OUT.npz   # train from scratch, checkpoint in WORKDIR/checkpoints
    multiprocess_train.py restore WORKDIR OUT.npz   # restore the newest checkpoint of WORKDIR, no training

Several (mode, workdir, out) triples run one after the other in the same processes (one start-up for all).
"""

import pathlib
import sys

from zerogr_jax import distributed

info = distributed.initialize()  # before anything touches a JAX backend

import io  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from zerogr_jax import sharding as shd  # noqa: E402
from zerogr_jax.training import step as tr  # noqa: E402
from zerogr_jax.atomic_files import atomic_open  # noqa: E402
from zerogr_jax.training.pairs import Examples, PairsConfig, PairsData  # noqa: E402
from zerogr_jax.models import llama  # noqa: E402
from zerogr_jax.training.checkpoints import TrainCheckpoints  # noqa: E402
from zerogr_jax.training.loop import TrainSetup, fit  # noqa: E402

TINY = llama.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=8, eos_token_ids=(2,), pad_token_id=0)
MESH = shd.MeshConfig(data=2, fsdp=2, tensor=1)
STEPS = 4


def tiny_examples(n: int = 40, t: int = 16, label_len: int = 4, seed: int = 0) -> Examples:
    """Random prompts, each followed by a 3-token docid and EOS (the label window)."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros((n, t), np.int32)  # [N, T] right-padded
    kv_mask = np.zeros((n, t), bool)
    target_index = np.zeros((n, label_len), np.int32)  # [N, L]
    labels = np.zeros((n, label_len), np.int32)
    for i in range(n):
        prompt = [1, *rng.integers(10, 128, rng.integers(4, 9))]
        label = [*rng.integers(10, 128, 3), 2]
        tokens[i, :len(prompt) + len(label)] = prompt + label
        kv_mask[i, :len(prompt) + len(label)] = True
        target_index[i] = len(prompt) - 1 + np.arange(label_len)
        labels[i] = label
    return Examples(tokens, kv_mask, target_index, labels, np.ones((n, label_len), bool), np.zeros(n, np.int32),
                    np.arange(n, dtype=np.int32))


def setup() -> TrainSetup:
    ex = tiny_examples()
    heldout = np.arange(len(ex)) % 5 == 4
    data = PairsData(train=ex.take(np.flatnonzero(~heldout)), heldout=ex.take(np.flatnonzero(heldout)),
                     instructions=["find"], docid_rows=[[str(i) for i in range(len(ex))]], counts={},
                     fingerprints=["tiny"], eos_id=2, pad_id=0)
    train = tr.TrainConfig(lr=1e-2, warmup_steps=1, total_steps=STEPS, batch_size=8, grad_accum_steps=1,
                           checkpoint_every=STEPS, keep_checkpoints=2, eval_every=0, log_every=1, seed=0)
    exp = tr.ExperimentConfig(mesh=MESH, data=PairsConfig(), train=train)
    return TrainSetup(experiment=exp, model_cfg=TINY, params=random_params(), data=data)


def random_params(seed: int = 0) -> dict:
    """Host-side random weights of the model's shapes (norm scales near 1): the same on every process, and no
    XLA compile of the initializer (which costs more than the train step on a loaded 2-core machine)."""
    rng = np.random.default_rng(seed)

    def one(path, a):
        name = jax.tree_util.keystr(path)
        base = 1.0 if "norm" in name else 0.0
        return (base + 0.02 * rng.standard_normal(a.shape)).astype(np.float32)
    return jax.tree_util.tree_map_with_path(one, llama.abstract_params(TINY))


def save_npz(path: str, state: tr.TrainState, extra: dict) -> None:
    """The full state as numpy (gathered over processes), written by process 0."""
    flat = {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_flatten_with_path(distributed.host_arrays(state))[0]}
    flat.update({k: np.asarray(v) for k, v in extra.items()})

    def write():
        buf = io.BytesIO()
        np.savez(buf, **flat)
        with atomic_open(path, "wb") as f:
            f.write(buf.getvalue())
    distributed.run_on_main(write, f"save {path}")


def run(mode: str, workdir: str, out: str) -> None:
    mesh = shd.make_mesh(MESH)
    s = setup()
    if mode == "train":
        t0 = time.perf_counter()
        # stop_after_step: no final evaluation (one compile less); the last step is still checkpointed
        result = fit(s, workdir, mesh=mesh, stop_after_step=STEPS, progress=False)
        losses = [r["loss"] for r in result.history if "loss" in r]
        save_npz(out, result.state, {"losses": np.asarray(losses), "process_count": jax.process_count()})
        print(f"fit: {time.perf_counter() - t0:.1f} s", flush=True)
    elif mode == "restore":
        tx = tr.make_optimizer(s.experiment.train, STEPS)
        shape_of = lambda t: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.float32), t)
        abstract, shardings = tr.state_shardings(mesh, shape_of(s.params), llama.param_logical_axes(TINY), tx)
        ckpt = TrainCheckpoints(pathlib.Path(workdir) / "checkpoints", save_every=1, keep=2, async_save=False)
        step, state, position, _ = ckpt.restore_latest(tr.with_shardings(abstract, shardings))
        ckpt.close()
        leaf = state.params["embedding"]
        assert leaf.sharding == shardings.params["embedding"], leaf.sharding  # restored into the target sharding
        save_npz(out, state, {"restored_step": step, "epoch": position["epoch"], "data_step": position["step"]})
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(f"worker {info.process_index}/{info.process_count} {mode}: OK", flush=True)


def main(argv: list[str]) -> None:
    if not argv or len(argv) % 3:
        raise SystemExit(__doc__)
    distributed.setup_logging()
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every file it writes at INFO
    assert jax.device_count() == 4, jax.devices()
    if jax.process_count() > 1:  # the DCN-aware mesh: data across processes, fsdp within one
        hybrid = distributed.make_hybrid_mesh(distributed.HybridMeshConfig(ici=shd.MeshConfig(data=1, fsdp=-1)))
        rows = [{d.process_index for d in row.flat} for row in hybrid.devices]
        assert dict(hybrid.shape) == {"data": 2, "fsdp": 2, "tensor": 1} and rows == [{0}, {1}], hybrid
        local = distributed.local_mesh()
        assert list(local.devices.flat) == jax.local_devices() and local.shape["data"] == 2, local
        print("hybrid mesh: data over processes", flush=True)
    for i in range(0, len(argv), 3):
        run(*argv[i:i + 3])


if __name__ == "__main__":
    main(sys.argv[1:])
