"""Multi-task training (paper: many tasks' pseudo-queries in one retriever), evaluated on a collection left out.

    python experiments/multi_task.py --target cranfield --sources cisi,med

Three retrievers, the same settings otherwise (pipeline config `--config`, default the CPU zero-shot one), scored
on the target's judged queries:
  target_only    trained on the target's own index (the plain zero-shot main job);
  sources_only   trained on the source collections' indexes only, then asked for the target's docids: the target
                 corpus was never trained on (pure transfer of "query -> keyword docid" through the trie);
  multi_task     trained on the sources' and the target's indexes together (ZeroGR's multi-task setting).
  sources_then_target
                 sources_only's retriever trained further on the target's index alone (the sources first, then the
                 new collection: what indexing a new collection with a retriever trained elsewhere costs); needs
                 sources_only run first, in this workdir root.
Each runs in <workdir-root>/<variant> and resumes there; source indexes are built once in <workdir-root>/indexes.
Writes experiments/results/<name>.json and <name>.png, rewritten after every variant; variants already in an
existing <name>.json and not run again are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

from experiments import result_files
from zerogr_jax import config as config_lib
from zerogr_jax.data import collections
from zerogr_jax.pipeline import run_index_stage, run_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]
SHOWN = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")
VARIANTS = ("target_only", "sources_only", "multi_task", "sources_then_target")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "experiments/configs/zero_shot_cpu.py"))
    ap.add_argument("--target", default="cranfield")
    ap.add_argument("--sources", default="cisi,med")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workdir-root", default="runs/multi_task")
    ap.add_argument("--name", default=None, help="results/<name>.json (default multi_task_<target>)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="pipeline config override")
    args = ap.parse_args(argv)
    started = time.time()
    name = args.name or f"multi_task_{args.target}"
    root = pathlib.Path(args.workdir_root)
    base = config_lib.override(config_lib.load_config_file(args.config), args.set)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if args.target in sources:
        raise SystemExit(f"the target {args.target!r} must not be one of the sources")

    first = root / "sources_only" / "train" / "model"  # sources_then_target starts from this retriever
    if ("sources_then_target" in chosen and not (first / "config.json").exists()
            and "sources_only" not in chosen[:chosen.index("sources_then_target")]):
        raise SystemExit(f"sources_then_target starts from sources_only's retriever: {first} is missing "
                         f"(run --variants sources_only first, with the same --workdir-root)")
    source_indexes = []
    for src in sources:  # the same indexing settings as the target's
        out = root / "indexes" / src
        run_index_stage(base.index, collections.collection_dir(src), src, out)
        source_indexes.append(str(out))

    variants = {"target_only": dict(), "sources_only": dict(extra_train_indexes=tuple(source_indexes),
                                                              train_on_target=False),
                "multi_task": dict(extra_train_indexes=tuple(source_indexes)),
                "sources_then_target": dict(train_overrides=(*base.train_overrides, f"model.name={first}",
                                                             "model.num_layers=0"))}
    path = result_files.RESULTS / f"{name}.json"
    results: dict[str, dict] = json.loads(path.read_text())["results"] if path.exists() else {}
    for variant in chosen:
        cfg = config_lib.override(base, [f"collection={args.target}", f"workdir={root / variant}"])
        cfg = dataclasses.replace(cfg, baselines=(), **variants[variant])
        out = run_pipeline(cfg)
        trained_on = ([args.target] if cfg.train_on_target else []) + [pathlib.Path(i).name
                                                                         for i in cfg.extra_train_indexes]
        if variant == "sources_then_target":
            trained_on = [*results.get("sources_only", {}).get("trained_on", ["sources_only"]), "then", args.target]
        results[variant] = {"metrics": out["results"]["zerogr-jax"]["metrics"], "timings_s": out["timings_s"],
                            "trained_on": trained_on, "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
        body = result_files.record(f"multi-task: target {args.target}, sources {sources}, config {args.config} "
                                   f"{args.set}", results, started=started, extra={"queries": out["queries"]})
        result_files.write(name, body)
        result_files.grouped_bars(name, list(SHOWN), {v: [r["metrics"][m] for m in SHOWN] for v, r in results.items()},
                                  ylabel="score", title=f"multi-task, target {args.target}, sources {'+'.join(sources)}")


if __name__ == "__main__":
    main()
