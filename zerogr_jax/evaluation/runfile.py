"""TREC run files: one line per retrieved document, `qid Q0 docid rank score tag`, whitespace-separated.

Reading keeps the scores (trec_eval ranks by score, not by the rank column) and rejects malformed lines with
`RunFormatError` naming the file and line. Writing sorts each query as trec_eval would (score descending, then doc id
descending), numbers ranks from 1, prints scores with `repr` so they read back exactly, and replaces the file
atomically. Files ending in .gz are (de)compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zlib
from typing import Mapping

from zerogr_jax.atomic_files import atomic_open
from zerogr_jax.evaluation.metrics import trec_order

Run = dict[str, dict[str, float]]


class RunFormatError(ValueError):
    def __init__(self, path: str | os.PathLike, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}")


def read_run(path: str | os.PathLike) -> Run:
    """{query id: {doc id: score}} from a TREC run file."""
    path = pathlib.Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    run: Run = {}
    lineno = 0
    with opener(path, "rb") as f:
        try:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise RunFormatError(path, lineno, f"invalid UTF-8 at byte {e.start}") from e
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 6:
                    raise RunFormatError(path, lineno, f"expected 6 fields 'qid Q0 docid rank score tag', "
                                                       f"got {len(fields)}: {line.strip()!r}")
                qid, _, did, rank, score_text, _ = fields
                try:
                    int(rank)
                except ValueError:
                    raise RunFormatError(path, lineno, f"rank must be an integer, got {rank!r}") from None
                try:
                    score = float(score_text)
                except ValueError:
                    raise RunFormatError(path, lineno, f"score must be a number, got {score_text!r}") from None
                if not math.isfinite(score):
                    raise RunFormatError(path, lineno, f"score must be finite, got {score_text!r}")
                ranking = run.setdefault(qid, {})
                if did in ranking:
                    raise RunFormatError(path, lineno, f"document {did!r} appears twice for query {qid!r}")
                ranking[did] = score
        except (OSError, EOFError, zlib.error) as e:  # corrupt or truncated gzip stream
            raise RunFormatError(path, lineno + 1, f"cannot read compressed data: {e}") from e
    return run


def write_run(path: str | os.PathLike, run: Mapping[str, Mapping[str, float]], *, tag: str = "zerogr",
              depth: int | None = None) -> int:
    """Writes `run` (at most `depth` documents per query) as a TREC run file; returns the lines written."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"the run tag must be a non-empty string without whitespace, got {tag!r}")
    n = 0
    with atomic_open(path, "w") as f:
        for qid, ranking in run.items():
            for rank, (did, score) in enumerate(trec_order(ranking)[:depth], 1):
                if not qid or not did or any(c.isspace() for c in qid + did):
                    raise ValueError(f"ids in a run file may not be empty or hold whitespace: ({qid!r}, {did!r})")
                score = float(score)
                if not math.isfinite(score):
                    raise ValueError(f"score for ({qid!r}, {did!r}) is {score}: scores must be finite")
                f.write(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")
                n += 1
    return n
