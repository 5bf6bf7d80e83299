"""The search stage as a user runs it, two or more code versions side by side.

Each timed run is a fresh process, `zerogr search --workdir W --collection C --out F` (imports, the model loaded,
every compile, the docid prior, every query, the run file written), so compile time is inside the figure, as it is
inside the main job's. The versions are checkouts given as NAME=PATH (e.g. a `git worktree` at the commit before a
change, and this one); they alternate, the order reversed every round, over the same workdir, queries and settings
(everything after `--` goes to `zerogr search`; `--args NAME='...'` adds a version's own flags after those, e.g. the
previous main job's beam against today's exact search). Reports every run's wall time, each version's median, each
later version's ratio to the first, whether its run file ranks every query as the first's does, and a paired test of
their nDCG@10 (`compare_runs`).

    git worktree add --detach /tmp/before <commit>
    python experiments/bench_search_stage.py --workdir runs/demo_med --collection med \
        --code before=/tmp/before --code after=. --rounds 2 -- --strategy exact --prior-weight 0.5 --num-docids 10
    python experiments/bench_search_stage.py --workdir runs/demo_med --collection med --code beam=. --code exact=. \
        --args beam='--strategy beam --beam-width 30' -- --strategy exact --prior-weight 0.5 --num-docids 10

Writes experiments/results/<--name>.json and the run files under experiments/results/runs/.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import time

from experiments import compare_runs, result_files
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.metrics import trec_order


def timed_search(code: pathlib.Path, workdir: str, collection: str, out: pathlib.Path, extra: list[str]) -> dict:
    """One fresh `zerogr search` process run from checkout `code`: its wall time and the load around it."""
    env = dict(os.environ, PYTHONPATH=str(code))
    cmd = [sys.executable, "-c", "import sys; from zerogr_jax.cli import main; main(sys.argv[1:])", "search",
           "--workdir", workdir, "--collection", collection, "--out", str(out), "--no-progress", *extra]
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{code}: zerogr search failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 1), "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}


def same_rankings(a: pathlib.Path, b: pathlib.Path) -> bool:
    run_a, run_b = runfile.read_run(a), runfile.read_run(b)
    return run_a.keys() == run_b.keys() and all(
        [d for d, _ in trec_order(run_a[q])] == [d for d, _ in trec_order(run_b[q])] for q in run_a)


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True, help="a finished `zerogr run` workdir")
    ap.add_argument("--collection", required=True)
    ap.add_argument("--code", action="append", required=True, help="NAME=PATH of a checkout (two or more)")
    ap.add_argument("--args", action="append", default=[], help="NAME='flags' of one version only")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--name", default="bench_search_stage")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    started = time.time()
    versions = dict(c.split("=", 1) for c in args.code)
    if len(versions) < 2:
        raise SystemExit("--code: give two or more NAME=PATH checkouts")
    names = list(versions)
    own = {n: [] for n in names}
    for a in args.args:
        n, flags = a.split("=", 1)
        if n not in own:
            raise SystemExit(f"--args {a!r}: no --code named {n!r}")
        own[n] = shlex.split(flags)
    out_dir = result_files.RESULTS / "runs"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = {n: out_dir / f"{args.name}_{n}.trec" for n in names}
    times: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            times[n].append(timed_search(pathlib.Path(versions[n]).resolve(), args.workdir, args.collection, runs[n],
                                         extra + own[n]))
            print(f"round {r} {n}: {times[n][-1]}", flush=True)
    median = {n: statistics.median(t["wall_s"] for t in times[n]) for n in names}
    first, later = names[0], names[1:]
    paired = compare_runs.compare(args.collection, str(runs[first]), [str(runs[n]) for n in later])
    results = {"versions": versions, "search_args": extra, "version_args": own, "runs": {n: str(p) for n, p in runs.items()},
               "times": times, "median_wall_s": median,
               **{f"speedup_{n}_over_{first}": round(median[first] / median[n], 3) for n in later},
               "same_rankings": {n: same_rankings(runs[first], runs[n]) for n in later},
               "paired_ndcg": paired["results"]}
    result_files.write(args.name, result_files.record(
        f"`zerogr search` stage wall time, {' vs '.join(names)}, {args.collection}, fresh processes alternating",
        results, started=started, extra={"workdir": args.workdir}))
    print({k: v for k, v in results.items() if k in ("median_wall_s", "same_rankings") or k.startswith("speedup")})


if __name__ == "__main__":
    main()
