"""What moves zerogr-jax's quality on one collection: each lever as a named variant of the main job.

    python experiments/levers.py                                   # every variant below, on cranfield
    python experiments/levers.py --variants full_untrained,full_doc_e1 --collection cisi --name levers_cisi
    python experiments/levers.py --collection med --variants ""      # only the random floor of med

Every variant is `experiments/configs/zero_shot_cpu.py` (the zero-shot recipe: TF-IDF keyword docids, one
document-as-query row per document, reverse-annealed search with K = 10) plus the overrides in VARIANTS, run by the
main job in <workdir-root>/<variant> (resumable; a finished stage is not redone). Records per variant: the metrics,
stage times, training examples/steps and the last training loss / held-out teacher-forced accuracy. Writes
experiments/results/<name>.json and <name>.png, rewritten after every variant; variants already in an existing
<name>.json and not run again are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

from experiments import result_files
from zerogr_jax import config as config_lib
from zerogr_jax.pipeline import run_pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]
FULL = "train_config=experiments/configs/cpu_full_depth.py"
SHOWN = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")

# name -> (what it isolates, pipeline overrides on top of zero_shot_cpu)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "small_untrained": ("cpu-small (first 8 of 30 layers), no training", ["train_retriever=False"]),
    "small_doc_e1": ("cpu-small, 1 epoch of document-as-query rows", []),
    "full_untrained": ("all 30 layers, no training", [FULL, "train_retriever=False"]),
    "full_doc_e1": ("all 30 layers (top 4 trained), 1 epoch of document-as-query rows", [FULL]),
    "full_doc_e3": ("all 30 layers, 3 epochs of document-as-query rows", [FULL, "train_overrides=train.epochs=3"]),
    "full_span2_e1": ("all 30 layers, 1 epoch of document + 2 random spans per document",
                      [FULL, "index.span_queries=2"]),
    "full_doc_e5": ("all 30 layers, 5 epochs of document-as-query rows", [FULL, "train_overrides=train.epochs=5"]),
    "full_doc_e10": ("all 30 layers, 10 epochs of document-as-query rows", [FULL, "train_overrides=train.epochs=10"]),
    "full_doc_e3_lr1e3": ("all 30 layers, 3 epochs of document-as-query rows at lr 1e-3 (not 3e-4)",
                          [FULL, "train_overrides=train.epochs=3,train.lr=1e-3"]),
    "full_doc_e5_lr1e3": ("all 30 layers, 5 epochs of document-as-query rows at lr 1e-3",
                          [FULL, "train_overrides=train.epochs=5,train.lr=1e-3"]),
    "full_top12_e3_lr1e3": ("all 30 layers, top 12 trained (not 4), 3 epochs of document-as-query rows at lr 1e-3",
                            [FULL, "train_overrides=train.epochs=3,train.lr=1e-3,train.trainable=top_layers:12"]),
    "full_top16_e3_lr1e3": ("all 30 layers, top 16 trained, 3 epochs of document-as-query rows at lr 1e-3",
                            [FULL, "train_overrides=train.epochs=3,train.lr=1e-3,train.trainable=top_layers:16"]),
    "full_q4_e1": ("all 30 layers, 1 epoch of document + B = 4 LM pseudo-queries per document (before filtering)",
                   [FULL, "index.num_queries=4"]),
    "full_q4_e2": ("all 30 layers, 2 epochs of document + B = 4 LM pseudo-queries per document",
                   [FULL, "index.num_queries=4", "train_overrides=train.epochs=2"]),
}


def train_summary(workdir: pathlib.Path) -> dict:
    path = workdir / "train" / "manifest.json"
    if not path.exists():  # an untrained variant
        return {}
    m = json.loads(path.read_text("utf-8"))
    last, final = m.get("last_log") or {}, m.get("final_eval") or {}
    return {"train_examples": m["data"]["train_examples"], "steps": m.get("steps"),
            "batch_size": m["experiment"]["train"]["batch_size"], "layers": m["model"]["num_layers"],
            "last_train_loss": last.get("loss"), "heldout_loss": final.get("eval_loss"),
            "heldout_token_accuracy": final.get("eval_token_accuracy"),
            "heldout_docid_accuracy": final.get("eval_docid_accuracy")}


def random_rankings(collection: str, k: int, seeds: int = 5, corpus_dir: str = "") -> dict:
    """The floor every variant must clear: K documents drawn uniformly per judged query, metrics averaged over seeds."""
    import numpy as np

    from zerogr_jax.data import beir, collections
    from zerogr_jax.evaluation import metrics

    spec = collections.get_collection(collection)
    data = beir.load_beir(corpus_dir or collections.collection_dir(collection), spec.split)
    judged = beir.evaluation_queries(data.queries, data.qrels)
    ids = sorted(data.corpus)
    totals: dict[str, float] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        run = {q: {ids[i]: 1.0 / (r + 1) for r, i in enumerate(rng.choice(len(ids), k, replace=False))}
               for q in judged}
        res = metrics.evaluate({q: data.qrels[q] for q in judged}, run, corpus_ids=data.corpus.keys(),
                               ignore_identical_ids=spec.ignore_identical_ids)
        for m, v in res.metrics.items():
            totals[m] = totals.get(m, 0.0) + v / seeds
    return {"what": f"{k} random documents per query, mean of {seeds} seeds", "overrides": [], "queries": len(judged),
            "metrics": totals}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "experiments/configs/zero_shot_cpu.py"))
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--corpus-dir", default="", help="a BEIR directory standing in for the collection's data "
                    "(e.g. a subset from experiments/subset_collection.py); the instruction stays the collection's")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workdir-root", default=None, help="default runs/levers (cranfield) or runs/<name>")
    ap.add_argument("--name", default=None, help="results/<name>.json and .png; default levers_<collection>")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    name = args.name or f"levers_{args.collection}"
    root = pathlib.Path(args.workdir_root or ("runs/levers" if args.collection == "cranfield" else f"runs/{name}"))
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    started = time.time()
    base = config_lib.override(config_lib.load_config_file(args.config), [*args.set, f"collection={args.collection}",
                                                                          f"corpus_dir={args.corpus_dir}"])
    path = result_files.RESULTS / f"{name}.json"
    results: dict[str, dict] = json.loads(path.read_text())["results"] if path.exists() else {}
    results["random"] = random_rankings(args.collection, base.search.num_docids, corpus_dir=args.corpus_dir)
    save(name, args, results, started)  # a run without variants records the random floor alone
    for variant in chosen:
        what, overrides = VARIANTS[variant]
        cfg = config_lib.override(base, [*overrides, f"workdir={root / variant}"])
        out = run_pipeline(cfg, progress=not args.no_progress)
        results[variant] = {"what": what, "overrides": overrides, "queries": out["queries"],
                            "metrics": out["results"]["zerogr-jax"]["metrics"],
                            "bm25": out["results"].get("BM25", {}).get("metrics"), "timings_s": out["timings_s"],
                            **train_summary(root / variant),
                            "load_average_at_end": list(os.getloadavg()), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
        save(name, args, results, started)


def save(name: str, args, results: dict, started: float) -> None:
    ordered = {k: results[k] for k in ["random", *VARIANTS, *results] if k in results}  # the table's order
    result_files.write(name, result_files.record(
        f"levers on {args.corpus_dir or args.collection}: variants of {args.config} {args.set}", ordered,
        started=started))
    result_files.grouped_bars(name, list(SHOWN), {v: [r["metrics"][m] for m in SHOWN] for v, r in ordered.items()},
                              ylabel="score", title=f"zerogr-jax levers, {args.collection} (K = 10)")


if __name__ == "__main__":
    main()
