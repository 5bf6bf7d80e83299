"""BEIR-format collections: `corpus.jsonl[.gz]`, `queries.jsonl[.gz]`, `qrels/<split>.tsv`.

Reading is streaming (`iter_corpus` holds only the set of ids seen, to catch duplicates) and strict by default:
a bad line raises `BeirFormatError` naming the file and the 1-based line. Policies:

- `on_invalid` ("error" | "skip"): lines that are not valid UTF-8, not a JSON object, lack a string `_id` or
  `text`, carry a non-string `title`, or repeat an earlier `_id` (the first one wins). Default "error".
- `on_empty` ("skip" | "error" | "keep"): records whose title and text are both blank. Default "skip".
- `max_chars`: title and text are each cut to this many characters (None: no limit).

Every skip and cut is counted in a `ReadStats` (pass one in to accumulate; the `load_*` helpers return it) and the
first few are kept as "file:line: why" messages, so nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import pathlib
import zlib
from typing import Iterable, Iterator, Literal, Mapping

from zerogr_jax.atomic_files import atomic_open

logger = logging.getLogger(__name__)

OnInvalid = Literal["error", "skip"]
OnEmpty = Literal["skip", "error", "keep"]
Qrels = dict[str, dict[str, int]]  # query id -> doc id -> graded relevance

DEFAULT_MAX_CHARS = 100_000  # the longest shipped document (scifact) has ~10k characters
QRELS_HEADER = ("query-id", "corpus-id", "score")
_MAX_PROBLEMS = 20  # messages kept per file; the counters are always complete


BOM = "\ufeff"  # a UTF-8 byte-order mark, which Windows tools write at the start of a file: read as nothing


class BeirFormatError(ValueError):
    """Malformed BEIR input; the message starts with `file:line:`."""

    def __init__(self, path: str | os.PathLike, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}")


@dataclasses.dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str

    def contents(self) -> str:
        """Title and text joined by a space: what the baselines index."""
        return f"{self.title} {self.text}" if self.title and self.text else (self.title or self.text)


@dataclasses.dataclass(frozen=True)
class Query:
    query_id: str
    text: str


@dataclasses.dataclass
class ReadStats:
    """What a reader did with each line of one JSONL file."""

    path: str = ""
    lines: int = 0  # non-blank lines
    kept: int = 0
    blank_lines: int = 0
    skipped_invalid: int = 0
    skipped_empty: int = 0
    truncated: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    def note(self, path: pathlib.Path, line: int, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"{path}:{line}: {message}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class QrelsStats:
    """What `read_qrels` found; unknown ids are kept in the qrels and counted here."""

    path: str = ""
    lines: int = 0  # judgement lines, header and blank lines excluded
    pairs: int = 0
    queries: int = 0
    blank_lines: int = 0
    skipped_invalid: int = 0
    unknown_query_ids: int = 0  # distinct ids absent from the given query set
    unknown_query_lines: int = 0
    unknown_doc_ids: int = 0  # distinct ids absent from the given corpus
    unknown_doc_lines: int = 0
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # a few unknown ids of each kind
    problems: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BeirCollection:
    """A whole collection in memory (see `load_beir`)."""

    corpus: dict[str, Document]
    queries: dict[str, Query]
    qrels: Qrels
    corpus_stats: ReadStats
    queries_stats: ReadStats
    qrels_stats: QrelsStats


# ----------------------------------------------------------------------------------------------------------- reading

def find_jsonl(directory: str | os.PathLike, stem: str) -> pathlib.Path:
    """`directory/stem.jsonl` or `directory/stem.jsonl.gz` (exactly one of them must exist)."""
    directory = pathlib.Path(directory)
    found = [p for p in (directory / f"{stem}.jsonl", directory / f"{stem}.jsonl.gz") if p.is_file()]
    if not found:
        raise FileNotFoundError(f"no {stem}.jsonl or {stem}.jsonl.gz in {directory}")
    if len(found) == 2:
        raise FileExistsError(f"both {found[0].name} and {found[1].name} in {directory}: keep one")
    return found[0]


def _resolve(path: str | os.PathLike, stem: str) -> pathlib.Path:
    path = pathlib.Path(path)
    return find_jsonl(path, stem) if path.is_dir() else path


def _json_lines(path: pathlib.Path, stats: ReadStats, on_invalid: OnInvalid) -> Iterator[tuple[int, dict]]:
    """(line number, JSON object) for each valid non-blank line; invalid lines raise or are counted."""
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    stats.path = stats.path or str(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    lineno = 0
    with opener(path, "rb") as f:  # bytes, decoded per line, so a bad byte names its line
        try:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    stats.lines += 1
                    _invalid(path, lineno, f"invalid UTF-8 at byte {e.start} of the line", stats, on_invalid)
                    continue
                if lineno == 1:
                    line = line.removeprefix(BOM)
                if not line.strip():
                    stats.blank_lines += 1
                    continue
                stats.lines += 1
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    _invalid(path, lineno, f"bad JSON ({e.msg} at column {e.colno})", stats, on_invalid)
                    continue
                except RecursionError:
                    _invalid(path, lineno, "bad JSON (nested too deeply)", stats, on_invalid)
                    continue
                if not isinstance(obj, dict):
                    _invalid(path, lineno, f"expected a JSON object, got {type(obj).__name__}", stats, on_invalid)
                    continue
                yield lineno, obj
        except (OSError, EOFError, zlib.error) as e:  # corrupt or truncated gzip stream
            raise BeirFormatError(path, lineno + 1, f"cannot read compressed data: {e}") from e


def _invalid(path: pathlib.Path, lineno: int, message: str, stats: ReadStats, on_invalid: OnInvalid) -> None:
    if on_invalid == "error":
        raise BeirFormatError(path, lineno, f"{message} (on_invalid='skip' skips and counts such lines)")
    stats.skipped_invalid += 1
    stats.note(path, lineno, message)


def _string_field(obj: dict, key: str, required: bool) -> str:
    if key not in obj:
        if required:
            raise _FieldError(f"missing field '{key}'")
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise _FieldError(f"field '{key}' must be a string, got {type(value).__name__}")
    return value


class _FieldError(Exception):
    pass


def _records(path: pathlib.Path, *, with_title: bool, on_invalid: OnInvalid, on_empty: OnEmpty,
             max_chars: int | None, stats: ReadStats) -> Iterator[tuple[str, str, str]]:
    """(id, title, text) per valid record, with the duplicate, empty and length policies applied."""
    if on_empty not in ("skip", "error", "keep"):
        raise ValueError(f"on_empty must be 'skip', 'error' or 'keep', got {on_empty!r}")
    seen: dict[str, int] = {}  # id -> line of its first occurrence
    for lineno, obj in _json_lines(path, stats, on_invalid):
        try:
            rid = _string_field(obj, "_id", required=True)
            if not rid.strip():
                raise _FieldError("empty '_id'")
            title = _string_field(obj, "title", required=False) if with_title else ""
            text = _string_field(obj, "text", required=True)
            if rid in seen:
                raise _FieldError(f"duplicate _id {rid!r} (first on line {seen[rid]})")
        except _FieldError as e:
            _invalid(path, lineno, str(e), stats, on_invalid)
            continue
        seen[rid] = lineno
        if not title.strip() and not text.strip():
            if on_empty == "error":
                raise BeirFormatError(path, lineno, f"record {rid!r} has an empty title and text "
                                                    "(on_empty='skip' skips and counts such records)")
            if on_empty == "skip":
                stats.skipped_empty += 1
                stats.note(path, lineno, f"record {rid!r} is empty: skipped")
                continue
        if max_chars is not None and (len(title) > max_chars or len(text) > max_chars):
            stats.truncated += 1
            stats.note(path, lineno, f"record {rid!r} cut to {max_chars} characters per field")
            title, text = title[:max_chars], text[:max_chars]
        stats.kept += 1
        yield rid, title, text


def iter_corpus(path: str | os.PathLike, *, on_invalid: OnInvalid = "error", on_empty: OnEmpty = "skip",
                max_chars: int | None = DEFAULT_MAX_CHARS, stats: ReadStats | None = None) -> Iterator[Document]:
    """Streams the documents of a corpus file (or of `corpus.jsonl[.gz]` in a directory), in file order."""
    path = _resolve(path, "corpus")
    stats = stats if stats is not None else ReadStats()
    for rid, title, text in _records(path, with_title=True, on_invalid=on_invalid, on_empty=on_empty,
                                     max_chars=max_chars, stats=stats):
        yield Document(rid, title, text)


def iter_queries(path: str | os.PathLike, *, on_invalid: OnInvalid = "error", on_empty: OnEmpty = "skip",
                 max_chars: int | None = DEFAULT_MAX_CHARS, stats: ReadStats | None = None) -> Iterator[Query]:
    """Streams the queries of a queries file (or of `queries.jsonl[.gz]` in a directory); only `text` is used."""
    path = _resolve(path, "queries")
    stats = stats if stats is not None else ReadStats()
    for rid, _, text in _records(path, with_title=False, on_invalid=on_invalid, on_empty=on_empty,
                                 max_chars=max_chars, stats=stats):
        yield Query(rid, text)


def load_corpus(path: str | os.PathLike, **kwargs) -> tuple[dict[str, Document], ReadStats]:
    """The whole corpus as {doc_id: Document} (file order) and its `ReadStats`; kwargs as for `iter_corpus`."""
    stats = ReadStats()
    return {d.doc_id: d for d in iter_corpus(path, stats=stats, **kwargs)}, stats


def load_queries(path: str | os.PathLike, **kwargs) -> tuple[dict[str, Query], ReadStats]:
    stats = ReadStats()
    return {q.query_id: q for q in iter_queries(path, stats=stats, **kwargs)}, stats


def read_qrels(path: str | os.PathLike, *, query_ids: Iterable[str] | None = None,
               doc_ids: Iterable[str] | None = None, on_invalid: OnInvalid = "error") -> tuple[Qrels, QrelsStats]:
    """Reads a qrels TSV with the header `query-id<TAB>corpus-id<TAB>score` and integer scores.

    With `query_ids` / `doc_ids`, judgements naming ids outside those sets are counted in the stats (and a warning
    is logged) but kept: whether to drop them is the caller's decision (BEIR keeps them, e.g. arguana's five
    judged documents that are missing from its corpus).
    """
    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    path = pathlib.Path(path)
    stats = QrelsStats(path=str(path))
    qset = set(query_ids) if query_ids is not None else None
    dset = set(doc_ids) if doc_ids is not None else None
    unknown_q: set[str] = set()
    unknown_d: set[str] = set()
    qrels: Qrels = {}
    first_seen: dict[tuple[str, str], int] = {}

    def invalid(lineno: int, message: str) -> None:
        if on_invalid == "error":
            raise BeirFormatError(path, lineno, f"{message} (on_invalid='skip' skips and counts such lines)")
        stats.skipped_invalid += 1
        if len(stats.problems) < _MAX_PROBLEMS:
            stats.problems.append(f"{path}:{lineno}: {message}")

    with open(path, "rb") as f:
        header_seen = False
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
                if lineno == 1:
                    line = line.removeprefix(BOM)
            except UnicodeDecodeError as e:
                if not header_seen:
                    raise BeirFormatError(path, lineno, f"invalid UTF-8 at byte {e.start} of the header") from e
                invalid(lineno, f"invalid UTF-8 at byte {e.start} of the line")
                continue
            if not header_seen:
                fields = tuple(line.split("\t"))
                if fields != QRELS_HEADER:
                    raise BeirFormatError(path, lineno, "expected the header 'query-id<TAB>corpus-id<TAB>score', "
                                                        f"got {line!r}")
                header_seen = True
                continue
            if not line.strip():
                stats.blank_lines += 1
                continue
            stats.lines += 1
            fields = tuple(line.split("\t"))
            if len(fields) != 3:
                invalid(lineno, f"expected 3 tab-separated fields, got {len(fields)}: {line!r}")
                continue
            qid, did, score_text = fields
            if not qid.strip() or not did.strip():
                invalid(lineno, f"empty query or corpus id: {line!r}")
                continue
            try:
                score = int(score_text)
            except ValueError:
                invalid(lineno, f"score must be an integer, got {score_text!r}")
                continue
            if (qid, did) in first_seen:
                invalid(lineno, f"duplicate judgement for ({qid!r}, {did!r}) (first on line {first_seen[qid, did]})")
                continue
            first_seen[qid, did] = lineno
            qrels.setdefault(qid, {})[did] = score
            if qset is not None and qid not in qset:
                stats.unknown_query_lines += 1
                unknown_q.add(qid)
            if dset is not None and did not in dset:
                stats.unknown_doc_lines += 1
                unknown_d.add(did)
        if not header_seen:
            raise BeirFormatError(path, 1, "empty file: expected the header 'query-id<TAB>corpus-id<TAB>score'")
    stats.pairs = len(first_seen)
    stats.queries = len(qrels)
    stats.unknown_query_ids, stats.unknown_doc_ids = len(unknown_q), len(unknown_d)
    if unknown_q:
        stats.examples["unknown_query_ids"] = sorted(unknown_q)[:5]
        logger.warning("%s: %d judged query ids (%d lines) are not in the queries file, e.g. %s", path,
                       len(unknown_q), stats.unknown_query_lines, stats.examples["unknown_query_ids"])
    if unknown_d:
        stats.examples["unknown_doc_ids"] = sorted(unknown_d)[:5]
        logger.warning("%s: %d judged doc ids (%d lines) are not in the corpus, e.g. %s", path,
                       len(unknown_d), stats.unknown_doc_lines, stats.examples["unknown_doc_ids"])
    return qrels, stats


def load_beir(directory: str | os.PathLike, split: str = "test", *, on_invalid: OnInvalid = "error",
              on_empty: OnEmpty = "skip", max_chars: int | None = DEFAULT_MAX_CHARS) -> BeirCollection:
    """Corpus, queries and `qrels/<split>.tsv` of one BEIR directory, with the qrels checked against both."""
    directory = pathlib.Path(directory)
    corpus, corpus_stats = load_corpus(directory, on_invalid=on_invalid, on_empty=on_empty, max_chars=max_chars)
    queries, queries_stats = load_queries(directory, on_invalid=on_invalid, on_empty=on_empty, max_chars=max_chars)
    qrels, qrels_stats = read_qrels(directory / "qrels" / f"{split}.tsv", query_ids=queries.keys(),
                                    doc_ids=corpus.keys(), on_invalid=on_invalid)
    for stats in (corpus_stats, queries_stats):
        if stats.skipped_invalid or stats.skipped_empty or stats.truncated:
            logger.warning("%s: kept %d records; skipped %d invalid and %d empty; cut %d long ones", stats.path,
                           stats.kept, stats.skipped_invalid, stats.skipped_empty, stats.truncated)
    return BeirCollection(corpus, queries, qrels, corpus_stats, queries_stats, qrels_stats)


def evaluation_queries(queries: Mapping[str, Query], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, Query]:
    """The queries that have judgements (the only ones to evaluate), in the queries' order."""
    return {qid: q for qid, q in queries.items() if qid in qrels}


# ----------------------------------------------------------------------------------------------------------- writing

def _check_id(rid: str, seen: set[str], what: str) -> None:
    if not isinstance(rid, str) or not rid.strip():
        raise ValueError(f"{what} id must be a non-empty string, got {rid!r}")
    if rid in seen:
        raise ValueError(f"duplicate {what} id {rid!r}")
    seen.add(rid)


def write_corpus(path: str | os.PathLike, docs: Iterable[Document]) -> int:
    """Writes documents as BEIR JSONL (gzip if `path` ends in .gz), atomically; returns the count."""
    seen: set[str] = set()
    with atomic_open(path, "w") as f:
        for d in docs:
            _check_id(d.doc_id, seen, "document")
            f.write(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")
    return len(seen)


def write_queries(path: str | os.PathLike, queries: Iterable[Query]) -> int:
    seen: set[str] = set()
    with atomic_open(path, "w") as f:
        for q in queries:
            _check_id(q.query_id, seen, "query")
            f.write(json.dumps({"_id": q.query_id, "text": q.text}, ensure_ascii=False) + "\n")
    return len(seen)


def write_qrels(path: str | os.PathLike, qrels: Mapping[str, Mapping[str, int]]) -> int:
    """Writes a qrels TSV with the BEIR header, atomically; returns the number of judgements."""
    n = 0
    with atomic_open(path, "w") as f:
        f.write("\t".join(QRELS_HEADER) + "\n")
        for qid, judged in qrels.items():
            for did, score in judged.items():
                if any(c in s for s in (qid, did) for c in "\t\n\r"):
                    raise ValueError(f"ids may not contain tabs or line breaks: ({qid!r}, {did!r})")
                f.write(f"{qid}\t{did}\t{int(score)}\n")
                n += 1
    return n


def write_beir(directory: str | os.PathLike, corpus: Iterable[Document], queries: Iterable[Query],
               qrels: Mapping[str, Mapping[str, int]], *, split: str = "test", compress: bool = True) -> pathlib.Path:
    """Writes a BEIR directory (each file atomically) and returns it."""
    directory = pathlib.Path(directory)
    ext = ".jsonl.gz" if compress else ".jsonl"
    write_corpus(directory / f"corpus{ext}", corpus)
    write_queries(directory / f"queries{ext}", queries)
    write_qrels(directory / "qrels" / f"{split}.tsv", qrels)
    return directory
