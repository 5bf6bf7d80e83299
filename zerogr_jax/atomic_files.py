"""Atomic file writes: write a temporary file beside the target, fsync it, then `os.replace` it into place.

A reader never sees a half-written artifact, and a killed writer leaves the previous version (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import pathlib
import tempfile
from typing import IO, Any, Callable, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, gzip_compress: bool | None = None,
                encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Opens a temporary file next to `path`; on a clean exit it replaces `path`, on an exception it is removed.

    `mode` is "w" (text) or "wb" (bytes). `gzip_compress` defaults to `path` ending in ".gz"; gzip output is
    written with mtime 0 so that equal contents give equal bytes.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports mode 'w' or 'wb', got {mode!r}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gzip_compress is None:
        gzip_compress = path.suffix == ".gz"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would make artifacts private to their writer
    raw = os.fdopen(fd, "wb")
    try:
        inner: IO[Any] = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gzip_compress else raw
        if mode == "wb":
            yield inner
        else:
            # write_through + detach: the wrapper never closes `inner` behind our back.
            text = io.TextIOWrapper(inner, encoding=encoding, newline="\n", write_through=True)
            yield text
            text.flush()
            text.detach()
        if gzip_compress:
            inner.close()  # writes the gzip trailer; leaves `raw` open
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        os.replace(tmp_name, path)
    except BaseException:
        raw.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
                      default: Callable[[Any], Any] | None = None) -> None:
    """Writes `obj` as JSON (UTF-8, keys in insertion order, trailing newline) atomically; `default` as in
    `json.dumps` (e.g. `str` for values JSON has no type for)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=default) + "\n")
