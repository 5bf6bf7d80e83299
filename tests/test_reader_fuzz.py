"""Property tests of the readers we feed users' files to: any bytes, any records.

Every input ends in a result, a counted skip, or the reader's own error naming the file and the line
(`BeirFormatError` / `RunFormatError`) — never another exception type.
"""

import gzip
import json
import pathlib
import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerogr_jax.data import beir
from zerogr_jax.evaluation import runfile

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# bytes with a fair share of the characters these formats care about
_PIECES = st.sampled_from([b"{", b"}", b"\"_id\"", b"\"text\"", b"\"title\"", b":", b",", b"\"x\"", b"\n", b"\r\n",
                           b"\t", b" ", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"null", b"1", b"-3", b"1e999", b"nan",
                           b"[", b"]", b"Q0", b"query-id\tcorpus-id\tscore", b"\x00"])
FILE_BYTES = st.one_of(st.binary(max_size=400), st.lists(_PIECES, max_size=60).map(b"".join))

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids,
                                                                                        max_size=3), max_leaves=6)
RECORD = st.dictionaries(st.sampled_from(["_id", "title", "text", "metadata", "other"]),
                         st.one_of(st.text(max_size=12), JSON_VALUES), max_size=5)


def _write(directory: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    path = directory / name
    if name.endswith(".gz"):
        data = gzip.compress(data) if data[:1] != b"!" else data  # "!": raw bytes where gzip is expected
    path.write_bytes(data)
    return path


def _names_file_and_line(err: Exception, path: pathlib.Path) -> None:
    assert re.match(rf"{re.escape(str(path))}:\d+: \S", str(err)), str(err)


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
@FUZZ
@given(data=FILE_BYTES, on_invalid=st.sampled_from(["error", "skip"]),
       on_empty=st.sampled_from(["skip", "error", "keep"]))
def test_corpus_reader_on_arbitrary_bytes(name, data, on_invalid, on_empty):
    with tempfile.TemporaryDirectory() as d:
        path = _write(pathlib.Path(d), name, data)
        stats = beir.ReadStats()
        try:
            docs = list(beir.iter_corpus(path, on_invalid=on_invalid, on_empty=on_empty, stats=stats))
        except beir.BeirFormatError as e:
            _names_file_and_line(e, path)
            return
        assert stats.kept == len(docs)
        assert len({doc.doc_id for doc in docs}) == len(docs)  # duplicates never pass
        if on_invalid == "skip":
            assert stats.skipped_invalid == len(stats.problems) or len(stats.problems) == 20


@FUZZ
@given(records=st.lists(st.one_of(RECORD, JSON_VALUES), max_size=8), bom=st.booleans(),
       on_invalid=st.sampled_from(["error", "skip"]))
def test_corpus_and_queries_readers_on_arbitrary_records(records, bom, on_invalid):
    text = "\n".join(json.dumps(r) for r in records)
    data = ("\ufeff" if bom else "").encode() + text.encode()
    with tempfile.TemporaryDirectory() as d:
        for reader, name in ((beir.iter_corpus, "corpus.jsonl"), (beir.iter_queries, "queries.jsonl")):
            path = _write(pathlib.Path(d), name, data)
            stats = beir.ReadStats()
            try:
                got = list(reader(path, on_invalid=on_invalid, stats=stats))
            except beir.BeirFormatError as e:
                _names_file_and_line(e, path)
                assert on_invalid == "error"
                continue
            # each record is kept, or counted as skipped (invalid or empty)
            assert stats.kept == len(got)
            assert stats.kept + stats.skipped_invalid + stats.skipped_empty == stats.lines
            valid = [r for r in records if isinstance(r, dict) and isinstance(r.get("_id"), str)
                     and r["_id"].strip() and isinstance(r.get("text"), str)
                     and (name.startswith("queries") or isinstance(r.get("title", ""), str))]
            assert len(got) <= len(valid)


@FUZZ
@given(data=FILE_BYTES, on_invalid=st.sampled_from(["error", "skip"]))
def test_qrels_reader_on_arbitrary_bytes(data, on_invalid):
    with tempfile.TemporaryDirectory() as d:
        path = _write(pathlib.Path(d), "test.tsv", data)
        try:
            qrels, stats = beir.read_qrels(path, on_invalid=on_invalid, query_ids={"1"}, doc_ids={"x"})
        except beir.BeirFormatError as e:
            _names_file_and_line(e, path)
            return
        assert stats.pairs == sum(len(v) for v in qrels.values())
        assert all(isinstance(s, int) for v in qrels.values() for s in v.values())


@FUZZ
@given(rows=st.lists(st.tuples(st.text(max_size=4), st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=3)))
                     , max_size=6), bom=st.booleans())
def test_qrels_reader_on_arbitrary_rows(rows, bom):
    body = "".join(f"{q}\t{c}\t{s}\n" for q, c, s in rows)
    data = ("\ufeff" if bom else "") + "query-id\tcorpus-id\tscore\n" + body
    with tempfile.TemporaryDirectory() as d:
        path = _write(pathlib.Path(d), "test.tsv", data.encode())
        try:
            qrels, stats = beir.read_qrels(path, on_invalid="skip")
        except beir.BeirFormatError as e:
            _names_file_and_line(e, path)
            return
        assert stats.pairs + stats.skipped_invalid == stats.lines


@pytest.mark.parametrize("name", ["run.trec", "run.trec.gz"])
@FUZZ
@given(data=FILE_BYTES)
def test_run_reader_on_arbitrary_bytes(name, data):
    with tempfile.TemporaryDirectory() as d:
        path = _write(pathlib.Path(d), name, data)
        try:
            run = runfile.read_run(path)
        except runfile.RunFormatError as e:
            _names_file_and_line(e, path)
            return
        assert all(isinstance(s, float) for r in run.values() for s in r.values())


@FUZZ
@given(run=st.dictionaries(st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=5),
                           st.dictionaries(st.text(st.characters(categories=["L", "N", "P"]), min_size=1, max_size=5),
                                           st.floats(allow_nan=False, allow_infinity=False, width=64),
                                           min_size=1, max_size=4), max_size=4))
def test_run_files_round_trip(run):
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "run.trec"
        runfile.write_run(path, run)
        assert runfile.read_run(path) == run


def test_a_leading_byte_order_mark_is_read_as_nothing(tmp_path):
    corpus = [{"_id": "d1", "title": "t", "text": "x"}, {"_id": "d2", "text": "y"}]
    body = "\n".join(json.dumps(r) for r in corpus) + "\n"
    plain = list(beir.iter_corpus(_write(tmp_path, "corpus.jsonl", body.encode())))
    (tmp_path / "bom").mkdir()
    with_bom = list(beir.iter_corpus(_write(tmp_path / "bom", "corpus.jsonl", b"\xef\xbb\xbf" + body.encode())))
    assert with_bom == plain and len(plain) == 2
    qrels_text = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
    q_plain, _ = beir.read_qrels(_write(tmp_path, "a.tsv", qrels_text.encode()))
    q_bom, _ = beir.read_qrels(_write(tmp_path, "b.tsv", b"\xef\xbb\xbf" + qrels_text.encode()))
    assert q_bom == q_plain == {"q1": {"d1": 1}}
    run_text = "q1 Q0 d1 1 2.5 tag\n"
    assert runfile.read_run(_write(tmp_path, "a.trec", b"\xef\xbb\xbf" + run_text.encode())) == {"q1": {"d1": 2.5}}
    # only at the start of a file: a BOM inside is data (here: bad JSON on line 2, named)
    with pytest.raises(beir.BeirFormatError, match=r"corpus.jsonl:2: bad JSON"):
        list(beir.iter_corpus(_write(tmp_path, "corpus.jsonl", (body.replace("\n", "\n\ufeff", 1)).encode())))
