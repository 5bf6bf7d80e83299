"""One job per working directory: an exclusive `flock` on `<workdir>/.lock`, held for the whole job.

Two `zerogr run`s given the same workdir would interleave their writes (shards, checkpoints, the run file). The
second one instead stops at once with `WorkdirBusyError`, naming the holder's pid and start time. `flock` is
released by the kernel when the holder exits in any way, SIGKILL included, so a killed job never leaves a stale
lock behind: the rerun that resumes it takes the lock as usual. (On a filesystem without `flock` support, e.g. some
network mounts, the lock is a no-op there; multi-host jobs coordinate through `jax.distributed` instead.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import time
from typing import Iterator


class WorkdirBusyError(RuntimeError):
    """Another job holds the working directory's lock."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Holds `<workdir>/.lock` exclusively for the body; raises `WorkdirBusyError` when another job holds it."""
    path = pathlib.Path(workdir) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "{}"
            try:
                info = json.loads(holder)
            except json.JSONDecodeError:
                info = {}
            raise WorkdirBusyError(
                f"{workdir} is in use by another job (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
                f"started {info.get('started', '?')}): wait for it to end, or give this one another workdir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
