"""Zero-shot evaluation on every shipped collection: the main job (`zerogr run`) once per collection.

    python experiments/zero_shot.py                                   # all 7, experiments/configs/zero_shot_cpu.py
    python experiments/zero_shot.py --collections med,cisi --set search.num_docids=50 --name zero_shot_k50
    python experiments/zero_shot.py --collections arguana --set-for arguana:train_overrides=train.total_steps=160

Each collection runs in <workdir-root>/<collection> and resumes there (index shards, training checkpoints, the
search run), so the script can be stopped and rerun. Writes experiments/results/<name>.json (metrics of zerogr-jax,
BM25 and MiniLM per collection, wall time per stage) and <name>.png (nDCG@10 per collection and system), rewritten
after every collection; collections already in an existing <name>.json and not run again are kept.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from experiments import result_files
from zerogr_jax import config as config_lib
from zerogr_jax.data.collections import COLLECTIONS
from zerogr_jax.pipeline import run_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "experiments/configs/zero_shot_cpu.py"))
    ap.add_argument("--collections", default=",".join(COLLECTIONS))
    ap.add_argument("--workdir-root", default="runs/zero_shot")
    ap.add_argument("--name", default="zero_shot_cpu", help="results/<name>.json and .png")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="pipeline config override")
    ap.add_argument("--set-for", action="append", default=[], metavar="COLLECTION:KEY=VALUE",
                    help="override for one collection only (e.g. a training-step cap for a large one)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    started = time.time()
    base = config_lib.override(config_lib.load_config_file(args.config), args.set)
    path = result_files.RESULTS / f"{args.name}.json"
    results: dict[str, dict] = json.loads(path.read_text())["results"] if path.exists() else {}
    per_collection: dict[str, list[str]] = {}
    for item in args.set_for:
        name, _, assignment = item.partition(":")
        per_collection.setdefault(name.strip(), []).append(assignment)
    for name in [c.strip() for c in args.collections.split(",") if c.strip()]:
        cfg = config_lib.override(base, [f"collection={name}", f"workdir={args.workdir_root}/{name}",
                                         *per_collection.get(name, [])])
        out = run_pipeline(cfg, progress=not args.no_progress)
        train = json.loads((pathlib.Path(cfg.workdir) / "train" / "manifest.json").read_text())
        results[name] = {"queries": out["queries"], "timings_s": out["timings_s"],
                         "metrics": {s: r["metrics"] for s, r in out["results"].items()}, "config": out["config"],
                         "command": "python " + " ".join(sys.argv),
                         "train": {k: train.get(k) for k in ("steps", "total_steps", "train_seconds")} |
                                  {"train_examples": train["data"]["train_examples"]}}
        body = result_files.record(f"zero-shot evaluation, pipeline config {args.config} {args.set}", results,
                                   started=started)
        result_files.write(args.name, body)
        systems = list(next(iter(results.values()))["metrics"])
        result_files.grouped_bars(args.name, list(results),
                                  {s: [results[c]["metrics"].get(s, {}).get("nDCG@10", 0.0) for c in results]
                                   for s in systems},
                                  ylabel="nDCG@10", title=f"zero-shot nDCG@10 ({args.name})")


if __name__ == "__main__":
    main()
