"""`zerogr train` end to end on a tiny model with the real tokenizer: workdir layout, export, resume of a done run."""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import pytest

from test_training_pairs import write_index
from training_fixtures import compilation_cache  # noqa: F401 (fixture)
from zerogr_jax.models import checkpoints, llama
from zerogr_jax.training.loop import train_main

REPO = pathlib.Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.embedded, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer, hidden-16 Llama with SmolLM2's tokenizer and vocabulary, as an HF directory."""
    from zerogr_jax.models.embedded import embedded_gguf_path
    from zerogr_jax.models.loading import gguf_as_hf_directory
    from zerogr_jax.tokenization import load_tokenizer

    tokenizer = load_tokenizer(gguf_as_hf_directory(embedded_gguf_path()))
    cfg = llama.LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_layers=2, num_heads=2,
                            num_kv_heads=1, head_dim=8, eos_token_ids=(2,), bos_token_id=1, pad_token_id=2)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map_with_path(
        lambda p, a: ((1.0 if "norm" in jax.tree_util.keystr(p) else 0.0)
                      + 0.02 * rng.standard_normal(a.shape)).astype(np.float32), llama.abstract_params(cfg))
    return checkpoints.export_hf_directory(cfg, params, tmp_path_factory.mktemp("tiny") / "model", tokenizer)


def test_train_command_writes_a_loadable_model_and_resumes_a_finished_run(tmp_path, tiny_model_dir):
    docids = {f"d{i}": f"topic{i} keyword{i}" for i in range(6)}
    queries = [(d, f"question {j} about {d}", "pseudo") for d in docids for j in range(4)]
    index = write_index(tmp_path / "index", docids, queries)
    workdir = tmp_path / "run"
    argv = ["--config", str(REPO / "experiments" / "configs" / "cpu_small.py"), "--index", str(index),
            "--workdir", str(workdir), "--no-progress", "--set", f"model.name={tiny_model_dir}",
            "--set", "model.num_layers=0", "--set", "train.trainable=top_layers:1", "--set", "train.total_steps=4",
            "--set", "train.batch_size=4", "--set", "train.checkpoint_every=2", "--set", "train.log_every=1",
            "--set", "data.heldout_fraction=0.2"]
    result = train_main(argv)

    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["steps"] == 4
    assert manifest["model"]["head_vocab_size"] == result.consts.head_vocab.shape[0]
    assert manifest["data"]["train_examples"] + manifest["data"]["heldout_examples"] == 24
    assert "eval_docid_accuracy" in manifest["final_eval"]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]

    # the exported model is the trained one: frozen layer 0 and trained layer 1 merged back
    cfg, exported = checkpoints.load_hf_directory(workdir / "model")
    assert cfg.num_layers == 2
    from zerogr_jax.training import step as tr
    merged = jax.device_get(tr.merge_params(result.state.params, result.consts.frozen))
    for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(exported)):
        np.testing.assert_array_equal(np.asarray(a), b)

    # --resume of a finished run trains nothing more and keeps the same weights
    again = train_main(argv + ["--resume"])
    assert int(again.state.step) == 4
    for a, b in zip(jax.tree.leaves(jax.device_get(again.state.params)),
                    jax.tree.leaves(jax.device_get(result.state.params))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
