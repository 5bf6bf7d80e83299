"""Trie build time and size at 10K / 100K / 1M synthetic docids (Zipf tokens, vocabulary 49152, 8-16 tokens).

    python experiments/bench_trie.py [--sizes 10000 100000 1000000] [--out experiments/results/bench_trie.json]

Build seconds are wall time of `build_trie` from a padded token matrix (best of --repeats); peak MB is the
tracemalloc peak of numpy allocations during one more build (the input matrix excluded); host/device bytes are the
arrays' sizes (the device copy leaves out parent pointers and the docid -> documents CSR).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time
import tracemalloc

import numpy as np

from zerogr_jax import atomic_files
from zerogr_jax.retrieval.trie import build_trie


def synthetic_docids(n: int, vocab: int, eos_id: int, min_len: int, max_len: int, zipf_a: float, seed: int):
    """(matrix [n, max_len] int32, lengths [n]): Zipf-distributed tokens (random rank -> id map), EOS last."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.setdiff1d(np.arange(vocab), [eos_id]))  # token id of each frequency rank
    weights = 1.0 / np.arange(1, ids.size + 1) ** zipf_a
    matrix = ids[rng.choice(ids.size, size=(n, max_len), p=weights / weights.sum())].astype(np.int32)
    lengths = rng.integers(min_len, max_len + 1, n)
    matrix[np.arange(n), lengths - 1] = eos_id
    return matrix, lengths


def bench_one(n: int, args) -> dict:
    matrix, lengths = synthetic_docids(n, args.vocab, args.eos_id, args.min_len, args.max_len, args.zipf_a, args.seed)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        host = build_trie((matrix, lengths), eos_id=args.eos_id, vocab_size=args.vocab, width=args.width)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    build_trie((matrix, lengths), eos_id=args.eos_id, vocab_size=args.vocab, width=args.width)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    meta = host.metadata()
    fan = host.fanout[host.fanout > 0]
    return dict(docids_in=n, build_s=round(min(times), 3), peak_build_mb=round(peak / 2**20, 1),
                host_mb=round(meta["host_bytes"] / 2**20, 1), device_mb=round(meta["device_bytes"] / 2**20, 1),
                nodes=meta["num_nodes"], distinct_docids=meta["num_docids"], root_fanout=meta["root_fanout"],
                max_fanout=meta["max_fanout"], bitmask_rows=meta["bitmask_rows"],
                p999_fanout=int(np.percentile(fan, 99.9)), max_depth=meta["max_depth"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--eos-id", type=int, default=2)
    ap.add_argument("--min-len", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=16)
    ap.add_argument("--zipf-a", type=float, default=1.1)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parent / "results" / "bench_trie.json")
    args = ap.parse_args(argv)

    rows = [bench_one(n, args) for n in args.sizes]
    cols = ["docids_in", "build_s", "peak_build_mb", "host_mb", "device_mb", "nodes", "root_fanout",
            "p999_fanout", "bitmask_rows"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))

    result = dict(command="python " + " ".join(["experiments/bench_trie.py"] + (argv or sys.argv[1:])),
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count(), python=platform.python_version(),
                               numpy=np.__version__),
                  settings={k: v for k, v in vars(args).items() if k != "out"}, rows=rows)
    atomic_files.atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
