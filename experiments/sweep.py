"""One pipeline setting swept over values (the engine of the docid and B ablations; usable for any key).

    python experiments/sweep.py --collection cranfield --key index.docid_scheme --values tfidf_keywords,title \
        --name my_sweep [--index-only] [--set train_overrides=train.epochs=2]

For each value, the main job (`zerogr run`) runs in <workdir-root>/<value> with `key=value` (and resumes there);
`--index-only` stops after indexing. Records per value: index wall time and documents/s, docid collision rates
before and after resolution, pseudo-query counts, and unless --index-only the zerogr-jax metrics and stage times.
Writes experiments/results/<name>.json and <name>.png (nDCG@10 per value, or collision rate with --index-only).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from experiments import result_files
from zerogr_jax import config as config_lib
from zerogr_jax.atomic_files import atomic_write_json
from zerogr_jax.data import collections
from zerogr_jax.pipeline import run_index_stage, run_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]
SHOWN = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")


def index_stats(index_dir: pathlib.Path) -> dict:
    counts = json.loads((index_dir / "manifest.json").read_text("utf-8"))["counts"]
    return {"documents": counts["documents"],
            "collision_rate_before": counts["docids_before_resolution"]["collision_rate"],
            "collision_rate_after": counts["docids_after_resolution"]["collision_rate"],
            "docids_extended": counts["docids_extended"], "docids_shared_groups": counts["docids_shared_groups"],
            "queries": counts["queries"]}


def run_sweep(args, *, what: str) -> dict:
    started = time.time()
    root = pathlib.Path(args.workdir_root)
    base = config_lib.override(config_lib.load_config_file(args.config), args.set)
    base = config_lib.override(base, [f"collection={args.collection}"])
    results: dict[str, dict] = {}
    for value in [v.strip() for v in args.values.split(",") if v.strip()]:
        cfg = config_lib.override(base, [f"{args.key}={value}", f"workdir={root / value}", "baselines="])
        index_dir = root / value / "index"
        t0 = time.perf_counter()
        run_index_stage(cfg.index, collections.collection_dir(cfg.collection), cfg.collection, index_dir,
                        instruction=cfg.instruction)
        index_s = time.perf_counter() - t0
        if (root / value / "index_seconds.json").exists():  # the first (complete) build's time, not a resume's
            index_s = json.loads((root / value / "index_seconds.json").read_text())["index_s"]
        else:
            atomic_write_json(root / value / "index_seconds.json", {"index_s": index_s})
        row = {"index": {**index_stats(index_dir), "index_s": round(index_s, 1)}}
        row["index"]["docs_per_s"] = round(row["index"]["documents"] / max(index_s, 1e-9), 2)
        if not args.index_only:
            out = run_pipeline(cfg)
            row.update(metrics=out["results"]["zerogr-jax"]["metrics"], timings_s=out["timings_s"],
                       queries=out["queries"])
        results[value] = row
        body = result_files.record(f"{what}: {args.key} in {args.values} on {args.collection}, config "
                                   f"{args.config} {args.set}", results, started=started,
                                   extra={"index_only": args.index_only})
        result_files.write(args.name, body)
        if args.index_only:
            series = {"collision rate before resolution": [r["index"]["collision_rate_before"]
                                                           for r in results.values()]}
            result_files.grouped_bars(args.name, list(results), series, ylabel="collision rate",
                                      title=f"{what}, {args.collection}")
        else:
            result_files.grouped_bars(args.name, list(SHOWN), {v: [r["metrics"][m] for m in SHOWN]
                                                               for v, r in results.items()},
                                      ylabel="score", title=f"{what}, {args.collection}")
    return results


def arguments(default_key: str | None = None, default_values: str | None = None,
              default_name: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "experiments/configs/zero_shot_cpu.py"))
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--key", default=default_key, required=default_key is None)
    ap.add_argument("--values", default=default_values, required=default_values is None)
    ap.add_argument("--name", default=default_name, required=default_name is None)
    ap.add_argument("--workdir-root", default=None, help="default runs/<name>")
    ap.add_argument("--index-only", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="pipeline config override")
    return ap


def parse(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = ap.parse_args(argv)
    args.workdir_root = args.workdir_root or f"runs/{args.name}"
    return args


if __name__ == "__main__":
    run_sweep(parse(arguments()), what="sweep")
