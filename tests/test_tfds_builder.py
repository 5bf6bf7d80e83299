"""TFDS builder: a BEIR directory prepared as ArrayRecord files reads back record for record, without TensorFlow."""

import json
import subprocess
import sys

import pytest

from conftest import DATA_ROOT, REPO
from zerogr_jax.data import beir, tfds_builder
from zerogr_jax.data.beir import Document, Query

CRANFIELD = DATA_ROOT / "cranfield"


def _synthetic(tmp_path, n=60, seed_text="v1"):
    # ids in no sorted order, so a shuffled or sorted layout would show
    docs = [Document(f"doc-{(i * 37) % n:03d}", f"title {i}", f"text {i} {seed_text} ünï") for i in range(n)]
    docs.insert(5, Document("empty", "", ""))  # skipped (and counted) by the default policy
    queries = [Query(f"q{i}", f"query {i}") for i in range(7)]
    return beir.write_beir(tmp_path / "beir", docs, queries, {"q0": {"doc-000": 1}}), [d for d in docs if d.text]


def test_synthetic_round_trip_keeps_file_order(tmp_path):
    beir_dir, docs = _synthetic(tmp_path)
    data_dir = tmp_path / "tfds"
    tfds_builder.prepare(beir_dir, data_dir, "corpus")
    tfds_builder.prepare(beir_dir, data_dir, "queries")
    source = tfds_builder.DocumentSource(data_dir)
    assert len(source) == len(docs) == 60
    assert list(source) == docs
    assert source.get_many([59, 0, 17]) == [docs[59], docs[0], docs[17]]
    assert source[10:13] == docs[10:13]
    stats = source.metadata["read_stats"]
    assert (stats["kept"], stats["skipped_empty"]) == (60, 1)
    assert list(tfds_builder.QuerySource(data_dir)) == list(beir.iter_queries(beir_dir))


def test_prepare_is_idempotent_and_refuses_another_source(tmp_path):
    beir_dir, _ = _synthetic(tmp_path)
    data_dir = tmp_path / "tfds"
    tfds_builder.prepare(beir_dir, data_dir)
    tfds_builder.prepare(beir_dir, data_dir)  # same file: reused
    other, _ = _synthetic(tmp_path / "other", seed_text="v2")
    with pytest.raises(FileExistsError, match="prepared from another file"):
        tfds_builder.prepare(other, data_dir)


def test_unprepared_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no prepared corpus"):
        tfds_builder.DocumentSource(tmp_path)


def test_malformed_corpus_fails_with_file_and_line(tmp_path):
    beir_dir, _ = _synthetic(tmp_path)
    corpus = beir_dir / "corpus.jsonl.gz"
    lines = list(beir.iter_corpus(corpus))[:3]
    beir.write_corpus(corpus, lines)
    import gzip
    corpus.write_bytes(gzip.compress(gzip.decompress(corpus.read_bytes()) + b'{"_id": "x"}\n'))
    with pytest.raises(beir.BeirFormatError, match=r"corpus\.jsonl\.gz:4: missing field 'text'"):
        tfds_builder.prepare(beir_dir, tmp_path / "tfds")


@pytest.mark.skipif(not CRANFIELD.is_dir(), reason="shared data not present")
def test_cranfield_random_access_matches_reader_without_tensorflow(tmp_path):
    # A fresh interpreter, so that only what preparing and reading import is in sys.modules.
    script = f"""
import json, sys
from zerogr_jax.data import beir, tfds_builder
tfds_builder.prepare({str(CRANFIELD)!r}, {str(tmp_path)!r}, "corpus")
src = tfds_builder.DocumentSource({str(tmp_path)!r})
docs = list(beir.iter_corpus({str(CRANFIELD)!r}))
idx = [0, 1, 700, 470, 1397, 3]
print(json.dumps({{"len": len(src), "n": len(docs), "same": src.get_many(idx) == [docs[i] for i in idx],
                  "all": list(src) == docs, "tf": "tensorflow" in sys.modules}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"len": 1398, "n": 1398, "same": True, "all": True, "tf": False}
