"""The index builder end to end on a tiny synthetic corpus with a deterministic fake LM: resume after a kill,
corrupt shards, two processes + merge, malformed corpus input, and the command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

import numpy as np
import pytest

from indexing_fakes import FakeGenerator, synthetic_documents
from zerogr_jax.data.beir import BeirFormatError, Document, iter_corpus, write_corpus
from zerogr_jax.indexing import index_builder as ib

INSTRUCTION = "Given a health question, retrieve abstracts that answer it"
CFG = ib.IndexConfig(instruction=INSTRUCTION, collection="synthetic", docid_scheme="keyword_lm", num_queries=4,
                     shard_size=5, seed=11, batch_size=2)
BYTES = ib.DocidTokenizer(lambda docids: [list(d.encode()) + [256] for d in docids], eos_id=256, vocab_size=257,
                          name="bytes")


class Killed(Exception):
    pass


def kill_after(stage: str, shard: int):
    def hook(s, k):
        if (s, k) == (stage, shard):
            raise Killed(f"simulated kill after {stage} shard {shard}")
    return hook


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("corpus")
    write_corpus(d / "corpus.jsonl", synthetic_documents(23))  # 5 shards of 5 (the last holds 3)
    return d


def source_for(path, on_invalid="error"):
    return lambda stats: iter_corpus(path, on_invalid=on_invalid, stats=stats)


def build(out, corpus, cfg=CFG, **kwargs):
    kwargs.setdefault("generator", FakeGenerator())
    return ib.build_index(source_for(corpus), out, cfg, docid_tokenizer=BYTES, show_progress=False,
                          corpus_info={"name": "synthetic"}, **kwargs)


def outputs(out: pathlib.Path) -> dict:
    """Every deterministic artifact: files as bytes, the manifest without its "run" part, the trie's arrays."""
    got = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
           if p.is_file() and p.name not in ("manifest.json", "trie.npz")}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("run")
    got["manifest"] = manifest
    with np.load(out / "trie.npz") as z:
        got["trie"] = {k: z[k].tobytes() for k in sorted(z.files)}
    return got


@pytest.fixture(scope="module")
def reference(corpus_dir, tmp_path_factory) -> tuple[pathlib.Path, dict]:
    out = tmp_path_factory.mktemp("uninterrupted")
    manifest = build(out, corpus_dir)
    return out, manifest


def test_uninterrupted_index_is_complete_and_consistent(reference, corpus_dir):
    out, manifest = reference
    docs = list(iter_corpus(corpus_dir))
    rows = [json.loads(line) for line in (out / "docids.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in rows] == [d.doc_id for d in docs]
    assert all(r["docid"] for r in rows)
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert {q["doc_id"] for q in queries if q["kind"] == "doc_as_query"} == {d.doc_id for d in docs}
    c = manifest["counts"]
    assert c["documents"] == c["documents_reachable"] == len(docs) == manifest["trie"]["num_documents"]
    assert c["queries"]["generated"] == 4 * len(docs)
    assert c["queries"]["kept"] + sum(c["queries"]["dropped"].values()) == c["queries"]["generated"]
    assert c["queries"]["kept"] == sum(q["kind"] == "pseudo" for q in queries) > 0
    assert c["rules"]["dropped_terms"]["absent"] >= len(docs)  # the fake always invents "zzyzx"
    assert manifest["instruction"] == INSTRUCTION and manifest["corpus"]["num_shards"] == 5
    for name in ("docids.jsonl", "queries.jsonl"):
        assert manifest["files"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert set(manifest["versions"]) >= {"jax", "flax", "transformers"}
    assert manifest["query_prompt"]["instruction"] == INSTRUCTION
    assert manifest["run"]["stages"]["queries"]["shards_done"] == 5


def test_resume_after_kills_gives_byte_identical_outputs(reference, corpus_dir, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "index"
    with pytest.raises(Killed):
        build(out, corpus_dir, on_shard_done=kill_after("docids", 2))
    assert not (out / "docids.jsonl").exists()
    with pytest.raises(Killed):
        build(out, corpus_dir, on_shard_done=kill_after("queries", 2))
    manifest = build(out, corpus_dir)
    stages = manifest["run"]["stages"]
    assert stages["docids"]["shards_resumed"] == 5 and stages["docids"]["shards_done"] == 0
    assert stages["queries"]["shards_resumed"] == 3 and stages["queries"]["shards_done"] == 2
    assert outputs(out) == outputs(ref_out)


class FailingGenerator(FakeGenerator):
    """Raises on its n-th call: a failure in the middle of a shard."""

    def __init__(self, fail_on_call: int):
        super().__init__()
        self.fail_on_call = fail_on_call

    def chat(self, conversations, **kwargs):
        if len(self.calls) + 1 == self.fail_on_call:
            raise Killed("generator died mid-shard")
        return super().chat(conversations, **kwargs)


def test_resume_after_a_failure_inside_a_shard(reference, corpus_dir, tmp_path):
    out = tmp_path / "index"
    with pytest.raises(Killed):  # 14 docid calls (5 shards in batches of 2), then the 2nd call of queries shard 0
        build(out, corpus_dir, generator=FailingGenerator(16))
    assert len(list((out / "shards").glob("docids-*.done.json"))) == 5
    assert sorted(p.name for p in (out / "shards").glob("queries-*")) == []
    build(out, corpus_dir)
    assert outputs(out) == outputs(reference[0])


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import test_index_builder as t
from indexing_fakes import FakeGenerator

class Slow(FakeGenerator):
    def chat(self, conversations, **kw):
        time.sleep(0.05)
        return super().chat(conversations, **kw)

t.build({out!r}, {corpus!r}, generator=Slow())
"""


def test_sigkill_at_an_arbitrary_moment_then_rerun_gives_identical_outputs(reference, corpus_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "index"
    script = KILL_SCRIPT.format(tests=str(pathlib.Path(__file__).parent), out=str(out), corpus=str(corpus_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list((out / "shards").glob("queries-*.done.json"))) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    manifest = build(out, corpus_dir)
    assert manifest["run"]["stages"]["queries"]["shards_resumed"] >= 2
    assert outputs(out) == outputs(reference[0])


def test_corrupt_shard_and_stale_temporary_files_are_redone(reference, corpus_dir, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "index"
    build(out, corpus_dir)
    shard = out / "shards" / "queries-00001.jsonl"
    shard.write_bytes(shard.read_bytes()[:-10])  # a torn write
    (out / "shards" / ".queries-00003.jsonl.x1y2.tmp").write_text("partial")
    (out / "shards" / "docids-00004.done.json").write_text("{not json")
    manifest = build(out, corpus_dir)
    assert manifest["run"]["stages"]["queries"]["shards_done"] == 1
    assert manifest["run"]["stages"]["docids"]["shards_done"] == 1
    assert outputs(out) == outputs(ref_out)  # the stray .tmp is gone too (outputs lists every file)


def test_changed_settings_redo_the_shards(corpus_dir, tmp_path):
    out = tmp_path / "index"
    cfg = ib.IndexConfig(instruction=INSTRUCTION, docid_scheme="tfidf_keywords", num_queries=0, shard_size=7)
    first = ib.build_index(source_for(corpus_dir), out, cfg, show_progress=False)
    again = ib.build_index(source_for(corpus_dir), out, cfg, show_progress=False)
    assert again["run"]["stages"]["docids"]["shards_resumed"] == 4
    changed = ib.build_index(source_for(corpus_dir), out, ib.IndexConfig(**{**cfg.__dict__, "doc_as_query_words": 5}),
                             show_progress=False)
    assert changed["run"]["stages"]["queries"]["shards_done"] == 4
    assert changed["fingerprint"] != first["fingerprint"]
    assert first["trie"] == {"built": False, "reason": "no docid tokenizer given"}


def test_a_changed_corpus_redoes_docids_everywhere_and_queries_where_documents_changed(tmp_path):
    corpus = tmp_path / "corpus"
    docs = synthetic_documents(23)
    write_corpus(corpus / "corpus.jsonl", docs)
    cfg = ib.IndexConfig(instruction=INSTRUCTION, docid_scheme="tfidf_keywords", num_queries=0, shard_size=7)
    ib.build_index(source_for(corpus), tmp_path / "out", cfg, show_progress=False)
    write_corpus(corpus / "corpus.jsonl", docs + [Document("new", "Bone", "bone fracture muscle")])
    manifest = ib.build_index(source_for(corpus), tmp_path / "out", cfg, show_progress=False)
    stages = manifest["run"]["stages"]
    assert stages["docids"]["shards_done"] == 4  # document frequencies changed: every TF-IDF docid may change
    assert (stages["queries"]["shards_resumed"], stages["queries"]["shards_done"]) == (3, 1)
    assert manifest["counts"]["documents"] == 24


def test_two_processes_and_merge_equal_one_process(reference, corpus_dir, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "index"
    with pytest.raises(ib.IncompleteIndexError, match=r"1: 1, 3: 1"):
        build(out, corpus_dir, process_index=0, process_count=2)
    assert build(out, corpus_dir, process_index=1, process_count=2) is None
    owned = sorted(p.name for p in (out / "shards").glob("*.done.json"))
    assert len(owned) == 10
    manifest = build(out, corpus_dir, process_index=0, process_count=2)
    assert manifest["run"]["stages"]["docids"]["shards_resumed"] == 3  # shards 0, 2, 4
    assert outputs(out) == outputs(ref_out)


BAD_LINES = [
    b'{"_id": "g1", "title": "Insulin", "text": "insulin glucose liver"}',
    b'{"_id": "g2", "title": "", "text": "sleep memory cortex"',  # bad JSON
    b'{"title": "no id", "text": "asthma allergy"}',  # missing _id
    b'{"_id": "g1", "title": "again", "text": "duplicate id"}',  # duplicate _id
    b'{"_id": "g3", "title": " ", "text": ""}',  # empty
    b'{"_id": "g4", "title": "bad", "text": "caf\xe9 au lait"}',  # invalid UTF-8 (latin-1 byte)
    b'{"_id": "g5", "title": "Bone", "text": "bone fracture muscle"}',
]


def test_malformed_corpus_stops_with_file_and_line_or_is_counted(tmp_path):
    corpus = tmp_path / "bad" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_bytes(b"\n".join(BAD_LINES) + b"\n")
    cfg = ib.IndexConfig(instruction=INSTRUCTION, docid_scheme="tfidf_keywords", num_queries=0, shard_size=2)
    with pytest.raises(BeirFormatError, match=r"corpus\.jsonl:2: bad JSON"):
        ib.build_index(source_for(corpus.parent), tmp_path / "strict", cfg, show_progress=False)
    manifest = ib.build_index(source_for(corpus.parent, on_invalid="skip"), tmp_path / "lenient", cfg,
                              show_progress=False)
    stats = manifest["corpus"]["read_stats"]
    assert (stats["kept"], stats["skipped_invalid"], stats["skipped_empty"]) == (2, 4, 1)
    assert any(":6: invalid UTF-8" in p for p in stats["problems"])
    rows = (tmp_path / "lenient" / "docids.jsonl").read_text().splitlines()
    assert [json.loads(r)["doc_id"] for r in rows] == ["g1", "g5"]


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("\n")
    cfg = ib.IndexConfig(instruction=INSTRUCTION, docid_scheme="atomic", num_queries=0)
    with pytest.raises(ValueError, match="no documents"):
        ib.build_index(source_for(tmp_path), tmp_path / "out", cfg, show_progress=False)


def test_lm_settings_without_a_generator_are_refused(tmp_path):
    with pytest.raises(ValueError, match="needs a text generator"):
        ib.IndexBuilder(source_for(tmp_path), tmp_path / "out", ib.IndexConfig(instruction=INSTRUCTION))


def test_command_line_without_a_language_model(corpus_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--corpus", str(corpus_dir), "--instruction", INSTRUCTION, "--out", str(out), "--docid-scheme",
            "tfidf_keywords", "--num-queries", "0", "--shard-size", "10", "--max-docs", "15", "--no-trie",
            "--no-progress"]
    ib.main(argv)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["documents"] == 15 and summary["trie"] is False
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["max_docs"] == 15 and manifest["corpus"]["path"] == str(corpus_dir)
    assert len((out / "docids.jsonl").read_text().splitlines()) == 15
    ib.main(argv)  # a rerun resumes everything
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["stages"]["docids"]["shards_resumed"] == 2


def test_points_back_filter_in_the_index_counts_its_drops(reference, corpus_dir, tmp_path):
    """With `points_back_top_k`, the kept pseudo-queries are those of the plain index whose own document BM25 ranks
    in the top k; the manifest counts the rest as not_pointing_back."""
    from zerogr_jax.evaluation.bm25 import bm25_search, build_bm25_index

    plain_out, plain = reference
    manifest = build(tmp_path / "filtered", corpus_dir, dataclasses.replace(CFG, points_back_top_k=3))
    q, q0 = manifest["counts"]["queries"], plain["counts"]["queries"]
    assert q["dropped"]["not_pointing_back"] > 0 and q0["dropped"]["not_pointing_back"] == 0
    assert q["kept"] + q["dropped"]["not_pointing_back"] == q0["kept"]
    rows = lambda out: [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]  # noqa: E731
    index = build_bm25_index(iter_corpus(corpus_dir))
    expected = [r for r in rows(plain_out) if r["kind"] != "pseudo"
                or r["doc_id"] in bm25_search(index, {"q": r["query"]}, k=3)["q"]]
    assert rows(tmp_path / "filtered") == expected
