"""Known bad input ends in one line `zerogr <command>: error: <file>:<line>: <what>` and exit status 2 (the traceback
only with --debug); a second job in a busy workdir stops the same way."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from zerogr_jax import pipeline
from zerogr_jax.workdir_lock import WorkdirBusyError, workdir_lock

REPO = pathlib.Path(__file__).resolve().parents[1]


def zerogr(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "zerogr_jax.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def beir_dir(root: pathlib.Path, corpus: str, qrels: str = "query-id\tcorpus-id\tscore\nq1\td1\t1\n") -> pathlib.Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(corpus)
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a query"}) + "\n")
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def test_a_malformed_corpus_line_is_one_error_line_with_exit_2(tmp_path):
    good = json.dumps({"_id": "d1", "title": "t", "text": "some text"})
    col = beir_dir(tmp_path / "col", good + "\n{not json\n")
    res = zerogr("index", "--corpus", str(col), "--out", str(tmp_path / "ix"), "--docid-scheme", "tfidf_keywords",
                 "--num-queries", "0", "--no-trie", "--no-progress", "--instruction", "find it", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith(f"zerogr index: error: {col / 'corpus.jsonl'}:2: bad JSON"), res.stderr
    assert "Traceback" not in res.stderr
    debug = zerogr("index", "--debug", "--corpus", str(col), "--out", str(tmp_path / "ix2"), "--docid-scheme",
                   "tfidf_keywords", "--num-queries", "0", "--no-trie", "--no-progress", "--instruction", "find it", cwd=tmp_path)
    assert debug.returncode != 2 and "Traceback" in debug.stderr and "BeirFormatError" in debug.stderr


def test_a_bad_qrels_header_is_one_error_line_with_exit_2(tmp_path):
    col = beir_dir(tmp_path / "col", json.dumps({"_id": "d1", "text": "x"}) + "\n", qrels="qid\tdid\trel\nq1\td1\t1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 1.0 t\n")
    res = zerogr("evaluate", "--beir-dir", str(col), "--run", str(run), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == (f"zerogr evaluate: error: {col / 'qrels' / 'test.tsv'}:1: expected the header "
                                  "'query-id<TAB>corpus-id<TAB>score', got 'qid\\tdid\\trel'")
    run.write_text("q1 Q0 d1 one 1.0 t\n")  # a bad run file: its own line named
    (col / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    res = zerogr("evaluate", "--beir-dir", str(col), "--run", str(run), cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == (f"zerogr evaluate: error: {run}:1: rank must be an "
                                                          "integer, got 'one'")


def test_a_busy_workdir_stops_the_second_job(tmp_path):
    config = pipeline.PipelineConfig(collection="tiny", corpus_dir=str(tmp_path / "nowhere"),
                                     workdir=str(tmp_path / "work"))
    with workdir_lock(tmp_path / "work"):
        with pytest.raises(WorkdirBusyError, match=rf"{tmp_path / 'work'} is in use by another job \(pid {os.getpid()}"):
            pipeline.run_pipeline(config, progress=False)
        cfg = tmp_path / "cfg.py"
        cfg.write_text("from zerogr_jax.pipeline import PipelineConfig\n\n"
                       f"def get_config():\n    return PipelineConfig(workdir={str(tmp_path / 'work')!r})\n")
        res = zerogr("run", "--config", str(cfg), cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.strip().startswith(
            f"zerogr run: error: {tmp_path / 'work'} is in use by another job"), res.stderr
    # released with its holder: the next job takes it (here it then fails on the missing corpus, past the lock)
    with pytest.raises(FileNotFoundError):
        pipeline.run_pipeline(config, progress=False)


def test_the_lock_dies_with_a_killed_holder(tmp_path):
    code = ("import sys, time; from zerogr_jax.workdir_lock import workdir_lock\n"
            f"with workdir_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirBusyError, match=f"pid {holder.pid}"):
            with workdir_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with workdir_lock(tmp_path):  # SIGKILL released it
        pass


def test_zerogr_index_and_train_hold_their_directory(tmp_path):
    col = beir_dir(tmp_path / "col", json.dumps({"_id": "d1", "text": "some text"}) + "\n")
    with workdir_lock(tmp_path / "ix"):
        res = zerogr("index", "--corpus", str(col), "--out", str(tmp_path / "ix"), "--docid-scheme",
                     "tfidf_keywords", "--num-queries", "0", "--no-trie", "--instruction", "find it", cwd=tmp_path)
        assert res.returncode == 2 and f"error: {tmp_path / 'ix'} is in use by another job" in res.stderr
    with workdir_lock(tmp_path / "train"):
        res = zerogr("train", "--config", str(REPO / "experiments" / "configs" / "cpu_small.py"), "--index",
                     str(tmp_path / "ix"), "--workdir", str(tmp_path / "train"), cwd=tmp_path)
        assert res.returncode == 2 and f"error: {tmp_path / 'train'} is in use by another job" in res.stderr
