"""BEIR reader/writer: round trips, every malformed input named by file and line (or skipped and counted), real data."""

import gzip
import json
import pathlib

import pytest

from conftest import DATA_ROOT
from zerogr_jax.data import beir
from zerogr_jax.data.beir import BeirFormatError, Document, Query

DOCS = [Document("d1", "Title one", "Body with ünïcode and \"quotes\"\nand a newline"),
        Document("d2", "", "no title\there"),
        Document("d3", "only a title", "")]
QUERIES = [Query("q1", "first query"), Query("q2", "second query ✓")]
QRELS = {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress):
    beir.write_beir(tmp_path, DOCS, QUERIES, QRELS, compress=compress)
    got = beir.load_beir(tmp_path)
    assert list(got.corpus.values()) == DOCS
    assert list(got.queries.values()) == QUERIES
    assert got.qrels == QRELS
    assert got.corpus_stats.kept == 3 and got.corpus_stats.skipped_empty == 0
    assert got.qrels_stats.unknown_doc_ids == got.qrels_stats.unknown_query_ids == 0
    assert (tmp_path / ("corpus.jsonl.gz" if compress else "corpus.jsonl")).is_file()


def test_gzip_output_is_deterministic(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    beir.write_corpus(a, DOCS)
    beir.write_corpus(b, DOCS)
    assert a.read_bytes() == b.read_bytes()


def test_streaming_iterator_is_lazy(tmp_path):
    path = tmp_path / "corpus.jsonl"
    beir.write_corpus(path, DOCS)
    with open(path, "ab") as f:
        f.write(b"{broken\n")
    it = beir.iter_corpus(path)
    assert next(it) == DOCS[0]  # the bad line 4 is not read yet
    with pytest.raises(BeirFormatError, match=r"corpus\.jsonl:4: bad JSON"):
        list(it)


def _write_lines(path: pathlib.Path, lines: list[bytes]) -> pathlib.Path:
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


GOOD = json.dumps({"_id": "ok1", "title": "t", "text": "fine"}).encode()
GOOD2 = json.dumps({"_id": "ok2", "text": "also fine"}).encode()
MALFORMED = {
    "bad JSON": b'{"_id": "x", "text": ',
    "expected a JSON object": b'["_id", "x"]',
    "missing field '_id'": json.dumps({"title": "t", "text": "x"}).encode(),
    "missing field 'text'": json.dumps({"_id": "x", "title": "t"}).encode(),
    "field '_id' must be a string": json.dumps({"_id": 7, "text": "x"}).encode(),
    "field 'title' must be a string": json.dumps({"_id": "x", "title": None, "text": "x"}).encode(),
    "field 'text' must be a string": json.dumps({"_id": "x", "text": ["a"]}).encode(),
    "empty '_id'": json.dumps({"_id": " ", "text": "x"}).encode(),
    "duplicate _id 'ok1' \\(first on line 1\\)": GOOD,
    "invalid UTF-8": b'{"_id": "x", "text": "caf\xe9"}',
}


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
@pytest.mark.parametrize("why", list(MALFORMED))
def test_malformed_line_names_file_and_line(tmp_path, name, why):
    path = _write_lines(tmp_path / name, [GOOD, GOOD2, MALFORMED[why], GOOD.replace(b"ok1", b"ok3")])
    with pytest.raises(BeirFormatError, match=rf"{name.replace('.', r'[.]')}:3: {why}") as err:
        list(beir.iter_corpus(path))
    assert err.value.line == 3 and err.value.path == str(path)


@pytest.mark.parametrize("why", list(MALFORMED))
def test_malformed_line_skipped_and_counted(tmp_path, why):
    path = _write_lines(tmp_path / "corpus.jsonl", [GOOD, GOOD2, MALFORMED[why], GOOD.replace(b"ok1", b"ok3")])
    stats = beir.ReadStats()
    docs = list(beir.iter_corpus(path, on_invalid="skip", stats=stats))
    assert [d.doc_id for d in docs] == ["ok1", "ok2", "ok3"]
    assert (stats.lines, stats.kept, stats.skipped_invalid) == (4, 3, 1)
    assert stats.problems[0].startswith(f"{path}:3: ")


def test_queries_use_the_same_checks(tmp_path):
    path = _write_lines(tmp_path / "queries.jsonl", [b'{"_id": "q1", "text": "a"}', b'{"_id": "q1", "text": "b"}'])
    with pytest.raises(BeirFormatError, match=r"queries\.jsonl:2: duplicate _id"):
        list(beir.iter_queries(tmp_path))


def test_empty_documents_policy(tmp_path):
    path = _write_lines(tmp_path / "corpus.jsonl", [GOOD, b'{"_id": "e", "title": " ", "text": ""}', GOOD2])
    stats = beir.ReadStats()
    assert [d.doc_id for d in beir.iter_corpus(path, stats=stats)] == ["ok1", "ok2"]  # default: skip and count
    assert stats.skipped_empty == 1 and stats.problems == [f"{path}:2: record 'e' is empty: skipped"]
    assert [d.doc_id for d in beir.iter_corpus(path, on_empty="keep")] == ["ok1", "e", "ok2"]
    with pytest.raises(BeirFormatError, match=r"corpus\.jsonl:2: record 'e' has an empty title and text"):
        list(beir.iter_corpus(path, on_empty="error"))


def test_long_documents_are_cut_and_counted(tmp_path):
    path = _write_lines(tmp_path / "corpus.jsonl", [json.dumps({"_id": "big", "title": "t" * 30,
                                                                "text": "x" * 50}).encode(), GOOD])
    stats = beir.ReadStats()
    docs = list(beir.iter_corpus(path, max_chars=20, stats=stats))
    assert docs[0] == Document("big", "t" * 20, "x" * 20) and docs[1].text == "fine"
    assert stats.truncated == 1
    assert list(beir.iter_corpus(path, max_chars=None))[0].text == "x" * 50


def test_blank_lines_are_counted_not_errors(tmp_path):
    path = _write_lines(tmp_path / "corpus.jsonl", [GOOD, b"", b"  ", GOOD2])
    stats = beir.ReadStats()
    assert len(list(beir.iter_corpus(path, stats=stats))) == 2
    assert stats.blank_lines == 2 and stats.lines == 2


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(GOOD + b"\n" + GOOD2 + b"\n")[:-12])
    with pytest.raises(BeirFormatError, match=r"corpus\.jsonl\.gz:\d+: cannot read compressed data"):
        list(beir.iter_corpus(path))


def test_directory_must_hold_exactly_one_corpus_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no corpus.jsonl or corpus.jsonl.gz"):
        list(beir.iter_corpus(tmp_path))
    beir.write_corpus(tmp_path / "corpus.jsonl", DOCS)
    beir.write_corpus(tmp_path / "corpus.jsonl.gz", DOCS)
    with pytest.raises(FileExistsError, match="both"):
        list(beir.iter_corpus(tmp_path))


# ----------------------------------------------------------------------------------------------------------- qrels

def _qrels(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "test.tsv"
    path.write_text(text)
    return path


@pytest.mark.parametrize("body, line, why", [
    ("q1\td1\t1\n", 1, "expected the header"),
    ("query-id\tcorpus-id\tscore\nq1\td1\n", 2, "expected 3 tab-separated fields, got 2"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1.5\n", 3, "score must be an integer, got '1.5'"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n", 3, r"duplicate judgement for \('q1', 'd1'\) \(first on line 2\)"),
    ("query-id\tcorpus-id\tscore\n\td1\t1\n", 2, "empty query or corpus id"),
    ("", 1, "empty file"),
])
def test_malformed_qrels(tmp_path, body, line, why):
    path = _qrels(tmp_path, body)
    with pytest.raises(BeirFormatError, match=rf"test\.tsv:{line}: {why}"):
        beir.read_qrels(path)


def test_malformed_qrels_lines_skipped_and_counted(tmp_path):
    path = _qrels(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tx\nq2\td3\t-1\n")
    qrels, stats = beir.read_qrels(path, on_invalid="skip")
    assert qrels == {"q1": {"d1": 1}, "q2": {"d3": -1}}
    assert (stats.lines, stats.pairs, stats.skipped_invalid) == (3, 2, 1)


def test_unknown_qrels_ids_are_counted_and_kept(tmp_path, caplog):
    path = _qrels(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tgone\t1\nq9\tgone\t1\nq9\td1\t1\n")
    qrels, stats = beir.read_qrels(path, query_ids={"q1"}, doc_ids={"d1"})
    assert qrels == {"q1": {"d1": 1, "gone": 1}, "q9": {"gone": 1, "d1": 1}}
    assert (stats.unknown_query_ids, stats.unknown_query_lines) == (1, 2)
    assert (stats.unknown_doc_ids, stats.unknown_doc_lines) == (1, 2)
    assert stats.examples == {"unknown_query_ids": ["q9"], "unknown_doc_ids": ["gone"]}
    assert "not in the corpus" in caplog.text and "not in the queries file" in caplog.text


def test_evaluation_queries_keeps_only_judged_ones_in_order():
    queries = {q: Query(q, q) for q in ("a", "b", "c")}
    assert list(beir.evaluation_queries(queries, {"c": {"d": 1}, "a": {"d": 1}, "z": {"d": 1}})) == ["a", "c"]


def test_failed_write_leaves_nothing_behind(tmp_path):
    def docs():
        yield DOCS[0]
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        beir.write_corpus(tmp_path / "corpus.jsonl.gz", docs())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="duplicate document id 'd1'"):
        beir.write_corpus(tmp_path / "corpus.jsonl", [DOCS[0], DOCS[0]])
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    beir.write_corpus(path, DOCS)
    beir.write_corpus(path, DOCS[:1])
    assert list(beir.iter_corpus(path)) == DOCS[:1]


# ----------------------------------------------------------------------------------------------------------- real data

CRANFIELD = DATA_ROOT / "cranfield"


@pytest.mark.skipif(not CRANFIELD.is_dir(), reason="shared data not present")
def test_real_cranfield():
    data = beir.load_beir(CRANFIELD)
    # 1,400 records; docs 471 and 995 are empty in the original collection and are skipped (counted) by default.
    assert data.corpus_stats.lines == 1400
    assert len(data.corpus) == 1398 and data.corpus_stats.skipped_empty == 2
    assert data.corpus_stats.problems == [f"{CRANFIELD / 'corpus.jsonl.gz'}:{i}: record '{i}' is empty: skipped"
                                          for i in (471, 995)]
    assert len(data.queries) == 225 and len(beir.evaluation_queries(data.queries, data.qrels)) == 225
    assert data.qrels_stats.pairs == 1837
    assert data.qrels_stats.examples == {"unknown_doc_ids": ["995"]}  # judged, but empty in the corpus
    assert len(beir.load_corpus(CRANFIELD, on_empty="keep")[0]) == 1400
