#!/usr/bin/env python3
"""Starts N local CPU processes of one command as a `jax.distributed` job (a pod in miniature, for tests and demos).

    python launch/local.py --num-processes 2 --devices-per-process 2 -- zerogr train --config ... --workdir ...

Each process gets `XLA_FLAGS=--xla_force_host_platform_device_count=M` (M simulated CPU devices),
`JAX_PLATFORMS=cpu` and the `ZEROGR_COORDINATOR` / `ZEROGR_NUM_PROCESSES` / `ZEROGR_PROCESS_ID` variables that
`zerogr_jax.distributed.initialize()` reads; process 0 hosts the coordinator on 127.0.0.1 at a free port, and
cross-process collectives run over gloo. Output lines are streamed with a `[pK]` prefix (and copied to
`--log-dir/process-K.log` if given). When any process fails, the others are stopped and the launcher exits with
that process's exit code; it exits 0 only when all processes do.

Standard library only: it does not import JAX.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the coordinator binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def process_env(base: dict[str, str], *, process_id: int, num_processes: int, devices_per_process: int,
                coordinator: str) -> dict[str, str]:
    """The environment of process `process_id`: the base one plus the JAX and ZEROGR_* variables."""
    env = dict(base)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    env["XLA_FLAGS"] = " ".join(flags + [f"{DEVICE_COUNT_FLAG}={devices_per_process}"])
    env["JAX_PLATFORMS"] = "cpu"
    env["ZEROGR_COORDINATOR"] = coordinator
    env["ZEROGR_NUM_PROCESSES"] = str(num_processes)
    env["ZEROGR_PROCESS_ID"] = str(process_id)
    env.setdefault("ZEROGR_CPU_COLLECTIVES", "gloo")
    env["PYTHONUNBUFFERED"] = "1"  # lines arrive as they are printed, not when a buffer fills
    return env


def _pump(stream, prefix: str, out, log_file, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        with lock:
            out.write(f"{prefix} {line}" if line.endswith("\n") else f"{prefix} {line}\n")
            out.flush()
            if log_file is not None:
                log_file.write(line)
                log_file.flush()
    stream.close()


def _stop(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM to each still-running process group, then SIGKILL after `grace_s`."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def launch(command: list[str], *, num_processes: int, devices_per_process: int = 1, port: int = 0,
           log_dir: str | os.PathLike | None = None, timeout_s: float | None = None, grace_s: float = 10.0,
           out=None, env: dict[str, str] | None = None) -> int:
    """Runs `command` as `num_processes` cooperating processes; returns the job's exit code (0 = all succeeded).

    On a failure (non-zero exit) or the timeout, the remaining processes are stopped. The code is the first failed
    process's (124 on timeout).
    """
    if num_processes < 1 or devices_per_process < 1:
        raise ValueError("--num-processes and --devices-per-process must be >= 1")
    if not command:
        raise ValueError("no command given (put it after --)")
    out = out or sys.stdout
    coordinator = f"127.0.0.1:{port or free_port()}"
    log_path = pathlib.Path(log_dir) if log_dir else None
    if log_path:
        log_path.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    procs: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    logs = []
    base = dict(os.environ if env is None else env)
    try:
        for k in range(num_processes):
            log_file = open(log_path / f"process-{k}.log", "w", encoding="utf-8") if log_path else None
            logs.append(log_file)
            p = subprocess.Popen(command, env=process_env(base, process_id=k, num_processes=num_processes,
                                                          devices_per_process=devices_per_process,
                                                          coordinator=coordinator),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)  # its own process group: stopping it stops its children
            procs.append(p)
            t = threading.Thread(target=_pump, args=(p.stdout, f"[p{k}]", out, log_file, lock), daemon=True)
            t.start()
            pumps.append(t)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        code = 0
        while True:
            codes = [p.poll() for p in procs]
            failed = [(k, c) for k, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                k, code = failed[0]
                with lock:
                    out.write(f"[launch] process {k} exited with {code}; stopping the others\n")
                break
            if all(c == 0 for c in codes):
                break
            if deadline is not None and time.monotonic() > deadline:
                code = 124
                with lock:
                    out.write(f"[launch] timeout after {timeout_s:.0f} s; stopping all processes\n")
                break
            time.sleep(0.1)
    except BaseException:  # KeyboardInterrupt included: never leave processes behind
        _stop(procs, grace_s)
        raise
    finally:
        _stop(procs, grace_s)
        for t in pumps:
            t.join(timeout=5)
        for f in logs:
            if f is not None:
                f.close()
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    else:
        command = []
    p = argparse.ArgumentParser(prog="launch/local.py", description=__doc__.split("\n")[0],
                                usage="%(prog)s [options] -- COMMAND [ARGS...]")
    p.add_argument("--num-processes", "-n", type=int, required=True)
    p.add_argument("--devices-per-process", "-d", type=int, default=1, help="simulated CPU devices per process")
    p.add_argument("--port", type=int, default=0, help="coordinator port (default: a free one)")
    p.add_argument("--log-dir", help="also write each process's output to LOG_DIR/process-K.log")
    p.add_argument("--timeout-s", type=float, default=None, help="stop everything after this long (exit 124)")
    args = p.parse_args(argv)
    if not command:
        p.error("give the command to run after --")
    return launch(command, num_processes=args.num_processes, devices_per_process=args.devices_per_process,
                  port=args.port, log_dir=args.log_dir, timeout_s=args.timeout_s)


if __name__ == "__main__":
    sys.exit(main())
