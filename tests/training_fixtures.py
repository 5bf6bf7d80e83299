"""Shared tiny-model helpers of the training tests (vocab 128, hidden 32, 2 layers, 4 heads, 2 kv heads)."""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import numpy as np
import pytest

from zerogr_jax import sharding as shd
from zerogr_jax.training import step as tr
from zerogr_jax.training.pairs import Examples, PairsConfig, PairsData
from zerogr_jax.models import llama
from zerogr_jax.training.loop import TrainSetup

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = llama.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=8, eos_token_ids=(2,), pad_token_id=0)


def tiny_examples(num_docs: int = 8, queries_per_doc: int = 5, t: int = 16, seed: int = 0,
                  instruction: tuple[int, ...] = ()) -> Examples:
    """Doc d has a 2- or 3-token docid; its queries share 4 doc-specific tokens plus noise (a learnable mapping).

    Every row starts with BOS and the `instruction` tokens (the prefix shared by a collection's rows)."""
    rng = np.random.default_rng(seed)
    docids = rng.integers(10, 128, (num_docs, 3))
    keys = rng.integers(10, 128, (num_docs, 4))
    n, label_len = num_docs * queries_per_doc, 4
    tokens = np.zeros((n, t), np.int32)
    kv_mask = np.zeros((n, t), bool)
    target_index = np.zeros((n, label_len), np.int32)
    labels = np.zeros((n, label_len), np.int32)
    label_mask = np.zeros((n, label_len), bool)
    for i in range(n):
        d = i // queries_per_doc
        prompt = [1, *instruction, *keys[d], *rng.integers(10, 128, rng.integers(2, 5))]
        label = [*docids[d, :2 + d % 2], 2]
        seq = prompt + label
        tokens[i, :len(seq)] = seq
        kv_mask[i, :len(seq)] = True
        target_index[i] = len(prompt) - 1 + np.arange(label_len)
        labels[i, :len(label)] = label
        label_mask[i, :len(label)] = True
    return Examples(tokens, kv_mask, target_index, labels, label_mask, np.zeros(n, np.int32),
                    np.repeat(np.arange(num_docs), queries_per_doc).astype(np.int32))


@functools.lru_cache(maxsize=None)
def tiny_params(seed: int = 0):
    return jax.device_get(llama.init_params(TINY, jax.random.key(seed)))


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """Identical programs (a run and its resume) compile once: XLA compiles dominate this file's time on 2 cores."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {k: getattr(jax.config, k) for k in keys}
    # one directory per pytest session, shared by the training test modules
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.getbasetemp() / "xla_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    yield
    for k, v in old.items():
        jax.config.update(k, v)


def tiny_setup(with_heldout: bool = True, **train_overrides) -> TrainSetup:
    """20 steps of batch 8 over 32 training examples; without held-out examples no eval step is compiled."""
    ex = tiny_examples()
    heldout = (np.arange(len(ex)) % 5 == 4) if with_heldout else np.zeros(len(ex), bool)
    data = PairsData(train=ex.take(np.flatnonzero(~heldout)), heldout=ex.take(np.flatnonzero(heldout)),
                     instructions=["find"], docid_rows=[[str(i) for i in range(8)]], counts={},
                     fingerprints=["tiny"], eos_id=2, pad_id=0)
    train = dict(lr=1e-2, warmup_steps=2, total_steps=20, batch_size=8, checkpoint_every=10, keep_checkpoints=3,
                 eval_every=0, log_every=1, seed=0)
    train.update(train_overrides)
    exp = tr.ExperimentConfig(mesh=shd.MeshConfig(), data=PairsConfig(), train=tr.TrainConfig(**train))
    params = tiny_params()
    return TrainSetup(experiment=exp, model_cfg=TINY, params=params, data=data)


def host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def assert_trees_equal(a, b):
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(host(a))
    flat_b, tree_b = jax.tree_util.tree_flatten_with_path(host(b))
    assert tree_a == tree_b
    for (path, x), (_, y) in zip(flat_a, flat_b):
        assert x.dtype == y.dtype and x.shape == y.shape, path
        assert np.array_equal(x, y), f"{jax.tree_util.keystr(path)} differs (max {np.max(np.abs(x - y))})"


def tiny_rank_groups(ex: Examples, negatives: int = 2, seed: int = 0) -> Examples:
    """Each row of `ex` followed by `negatives` rows of its prompt with other documents' docids (one ranking group)."""
    from zerogr_jax.training.pairs import _assemble

    rng = np.random.default_rng(seed)
    docs = [int(d) for d in np.unique(ex.doc_index)]
    first_row = {d: np.flatnonzero(ex.doc_index == d)[0] for d in docs}
    label_of = {d: ex.labels[r][ex.label_mask[r]].tolist() for d, r in first_row.items()}
    rows = []
    for i in range(len(ex)):
        prompt = ex.tokens[i, :ex.target_index[i, 0] + 1].tolist()
        others = rng.choice([d for d in docs if d != ex.doc_index[i]], size=negatives, replace=False)
        rows += [(prompt, label_of[d], 0, d) for d in [int(ex.doc_index[i]), *others]]
    return _assemble(rows, ex.tokens.shape[1], ex.labels.shape[1], pad=0)


def tiny_rank_setup(negatives: int = 2, **train_overrides) -> TrainSetup:
    """`tiny_setup` with ranking groups of its training rows (1 + `negatives` rows each)."""
    setup = tiny_setup(**train_overrides)
    data = dataclasses.replace(setup.data, rank=tiny_rank_groups(setup.data.train, negatives),
                               group_size=1 + negatives)
    return dataclasses.replace(setup, data=data)
