"""The main job: index a collection zero-shot, train the retriever, search, score, and compare with baselines.

    zerogr run --config experiments/configs/demo_cranfield.py [--set search.num_docids=20 ...]

Stages write into `workdir` (index/, train/, run.trec, results.json) and each resumes: the index builder skips
finished shards, training continues from its newest good checkpoint, and a stage whose output is complete and
matches the config is not redone. Prints a table of nDCG@10 / Recall@100 / Acc@1 / MRR@10 for zerogr-jax, BM25
and MiniLM side by side, plus the wall time of every stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import platform
import time
from typing import Sequence

from zerogr_jax import config as config_lib
from zerogr_jax.atomic_files import atomic_write_json
from zerogr_jax.evaluation import baselines
from zerogr_jax.indexing.index_builder import IndexSettings
from zerogr_jax.retrieval.search import SearchConfig


BASELINES = baselines.NAMES


@dataclasses.dataclass(frozen=True)
class IndexStage(IndexSettings):
    """The index stage's settings (`index_builder.IndexSettings`, one default each) and the generator model."""

    model: str = "smollm2-135m-instruct"  # docid / pseudo-query generator (loaded only when the settings need it)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    collection: str = "cranfield"  # a registered collection, or any name when `corpus_dir` is given
    workdir: str = "runs/demo_cranfield"
    data_root: str = ""  # "" = $ZEROGR_DATA or <repo>/../shared/data
    corpus_dir: str = ""  # a BEIR directory of your own (qrels/test.tsv); "" = the registered collection
    instruction: str = ""  # task instruction; "" = the registered collection's
    index: IndexStage = IndexStage()
    train_config: str = "experiments/configs/cpu_small.py"
    train_overrides: tuple[str, ...] = ()  # "key=value" for the train config
    extra_train_indexes: tuple[str, ...] = ()  # other index dirs mixed into training (multi-task)
    train_on_target: bool = True  # False: the retriever never sees this collection's index (transfer only)
    train_retriever: bool = True  # False: search with the train config's model as loaded (the zero-training point)
    search: SearchConfig = SearchConfig()
    baselines: tuple[str, ...] = ("bm25", "minilm")
    # baselines fused with the generative run by reciprocal rank fusion (k = 60, equal weights), each its own row
    # ("zerogr-jax+BM25 RRF"), never mixed into the pure generative numbers
    fusion: tuple[str, ...] = ("bm25",)
    max_queries: int = 0  # 0 = every judged query

    def __post_init__(self):
        for field, names in (("baselines", self.baselines), ("fusion", self.fusion)):
            unknown = sorted(set(names) - set(BASELINES))
            if unknown:
                raise config_lib.ConfigError(f"{field}: unknown baselines {unknown}; choose from {list(BASELINES)}")


def _sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _index_identity(index_dir: pathlib.Path) -> dict:
    """The settings fingerprint and output-file hashes of an index (its manifest also holds run times)."""
    manifest = json.loads((index_dir / "manifest.json").read_text("utf-8"))
    return {"fingerprint": manifest["fingerprint"], "files": manifest["files"]}


def run_index_stage(ix: IndexStage, corpus_dir: str | os.PathLike, collection: str, out: str | os.PathLike, *,
                    instruction: str = "", progress: bool = True) -> dict | None:
    """Builds or resumes the index of one collection (also used by experiments that index extra collections);
    `instruction` "" = the registered collection's. Returns the manifest."""
    from zerogr_jax.data.instructions import task_instruction
    from zerogr_jax.indexing import index_builder

    settings = {**ix.settings(), "max_docs": ix.max_docs or None}
    cfg = index_builder.IndexConfig(instruction=task_instruction(collection, custom=instruction or None),
                                    collection=collection, **settings)
    manifest = index_builder.run_index(cfg, corpus_dir, out, model=ix.model, progress=progress)
    print(index_builder.summary_line(out, manifest))
    return manifest


def train_experiment(config: PipelineConfig):
    """The retriever's training config — the `train_config` file with the pipeline's `train_overrides` on top — and
    the (key, file's value, pipeline's value) each override replaces. The overrides win, also over a `train_config`
    swapped in later: the demo's `train.epochs=1` applies to any file until `train_overrides=` clears it."""
    base = config_lib.load_config_file(config.train_config)
    return config_lib.override(base, config.train_overrides), config_lib.changes(base, config.train_overrides)


def run_pipeline(config: PipelineConfig, *, progress: bool = True) -> dict:
    """Runs every stage in `config.workdir` (held exclusively: a second job there stops with WorkdirBusyError)."""
    from zerogr_jax.workdir_lock import workdir_lock

    with workdir_lock(config.workdir):
        return _run_pipeline(config, progress=progress)


def _run_pipeline(config: PipelineConfig, *, progress: bool) -> dict:
    from zerogr_jax.data import beir, collections
    from zerogr_jax.evaluation import metrics, runfile
    from zerogr_jax.models.embedded import is_embedded_name
    from zerogr_jax.models.loading import source_digest
    from zerogr_jax.training.loop import TrainStageConfig, load_base_model, run_train

    work = pathlib.Path(config.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if config.corpus_dir:
        spec = collections.CollectionSpec(config.collection, config.corpus_dir)
        col_dir = pathlib.Path(config.corpus_dir)
    else:
        spec = collections.get_collection(config.collection)
        col_dir = collections.collection_dir(config.collection, config.data_root or None)
    data = beir.load_beir(col_dir, spec.split)
    judged = beir.evaluation_queries(data.queries, data.qrels)
    if config.max_queries:
        judged = dict(list(judged.items())[: config.max_queries])
    qrels = {q: data.qrels[q] for q in judged}
    queries = {q: v.text for q, v in judged.items()}
    timings: dict[str, float] = {}
    reused: list[str] = []  # stages whose outputs were already complete: their time is the first run's
    results: dict[str, dict] = {}

    def evaluate(name: str, run: dict) -> None:
        res = metrics.evaluate(qrels, run, ignore_identical_ids=spec.ignore_identical_ids,
                               corpus_ids=data.corpus.keys())
        results[name] = {"metrics": res.metrics, "report": res.report.as_dict()}
        for message in res.report.messages():
            print(f"[{name}] {message}")

    # 1. index (resumable shard by shard)
    t0 = time.perf_counter()
    index_dir = work / "index"
    run_index_stage(config.index, col_dir, spec.name, index_dir, instruction=config.instruction, progress=progress)
    timings["index"] = time.perf_counter() - t0

    # 2. train (resumes from the newest good checkpoint; skipped when this exact training finished before)
    t0 = time.perf_counter()
    train_dir = work / "train"
    train_exp, replaced = train_experiment(config)
    for key, before, after in replaced:
        # a pipeline config's overrides stay when `train_config` is swapped on the command line: say what they replace
        print(f"train_overrides: {key} = {after!r} (in {config.train_config}: {before!r})")
    if not config.train_on_target and not config.extra_train_indexes:
        raise ValueError("train_on_target=False needs extra_train_indexes to train on")
    train_indexes = ([str(index_dir)] if config.train_on_target else []) + list(config.extra_train_indexes)
    stage = TrainStageConfig(config=config.train_config, indexes=tuple(train_indexes), workdir=str(train_dir),
                             overrides=tuple(config.train_overrides), progress=progress)
    # what the trained model depends on: the arguments, the resolved config (a config file may load another), each
    # index's settings and outputs, and the starting model's weights where it is a file or directory of ours (e.g. a
    # retriever trained on other collections first), which can change under the same path
    start = train_exp.model.name
    start_id = {} if is_embedded_name(start) else {"start_model_sha256": source_digest(start)}
    if config.train_retriever:
        train_inputs = {"argv": dataclasses.replace(stage, progress=True).argv(),
                        "config_sha256": _sha256_json(config_lib.to_dict(train_exp)),
                        "indexes": [_index_identity(pathlib.Path(i)) for i in train_indexes], **start_id}
    else:
        train_inputs = {"untrained": config_lib.to_dict(train_exp.model), **start_id}
    train_key = _sha256_json(train_inputs)
    done_path = train_dir / "stage_done.json"
    done = _read_json(done_path)
    if not config.train_retriever:
        timings["train"] = 0.0
    elif done.get("key") == train_key and (train_dir / "model" / "config.json").exists():
        timings["train"] = done.get("train_s", float("nan"))
        reused.append("train")
    else:
        run_train(dataclasses.replace(stage, resume=(train_dir / "manifest.json").exists()))
        timings["train"] = time.perf_counter() - t0
        atomic_write_json(done_path, {"key": train_key, "inputs": train_inputs, "train_s": round(timings["train"], 1)})

    # 3. search + evaluate
    t0 = time.perf_counter()
    from zerogr_jax.models.loading import load_model
    from zerogr_jax.retrieval.search import search_index

    # the run is reused when it was made by this search config, model and query set
    run_key = _sha256_json([dataclasses.asdict(config.search), sorted(queries), train_key])
    run_path, key_path = work / "run.trec", work / "run.key"
    made = _read_json(key_path)  # {"key", "search_s"} of the run file's search
    if run_path.exists() and made.get("key") == run_key:
        run = runfile.read_run(run_path)
        timings["search"] = made.get("search_s", float("nan"))
        reused.append("search")
    else:
        if config.train_retriever:
            retriever = load_model(str(train_dir / "model"))
            retriever_cfg, retriever_params = retriever.cfg, retriever.params
        else:
            retriever, retriever_cfg, retriever_params = load_base_model(train_exp)
        run = search_index(index_dir, retriever_cfg, retriever_params, retriever.tokenizer, queries, config.search,
                           run_path, progress=progress).run
        timings["search"] = time.perf_counter() - t0
        atomic_write_json(key_path, {"key": run_key, "search_s": round(timings["search"], 1)})
    evaluate("zerogr-jax", run)
    generative_run = run

    # 4. baselines, same queries, same metrics; their runs are kept beside ours (paired tests, fusion)
    baseline_runs = {}
    for name in (n for n in BASELINES if n in config.baselines):
        t0 = time.perf_counter()
        run = baselines.run_baseline(name, data.corpus, queries, 100, progress=progress).run
        timings[name] = time.perf_counter() - t0
        evaluate(baselines.LABELS[name], run)
        baseline_runs[name] = (baselines.LABELS[name], run)
    for name, (label, run) in baseline_runs.items():
        runfile.write_run(work / f"{name}.trec", run, tag=name)

    # 5. fusion rows
    from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion

    for name in (n for n in config.fusion if n in baseline_runs):  # only baselines that ran (baselines=())
        label, run = baseline_runs[name]
        fused = reciprocal_rank_fusion([generative_run, run])
        runfile.write_run(work / f"zerogr+{name}.trec", fused, tag=f"zerogr+{name}-rrf")
        evaluate(f"zerogr-jax+{label} RRF", fused)

    out = {"collection": spec.name, "config": dataclasses.asdict(config), "results": results,
           "timings_s": {k: round(v, 1) for k, v in timings.items()}, "reused_stages": reused,
           "machine": platform.machine(),
           "cpus": os.cpu_count(), "queries": len(queries)}
    atomic_write_json(work / "results.json", out)
    print_table(out)
    return out


def print_table(out: dict) -> None:
    names = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")
    print(f"\n{out['collection']}: {out['queries']} judged queries")
    width = max([12, *(len(s) + 2 for s in out["results"])])
    print(f"{'system':<{width}}" + "".join(f"{n:>12}" for n in names))
    for system, r in out["results"].items():
        print(f"{system:<{width}}" + "".join(f"{r['metrics'][n]:>12.3f}" for n in names))
    print("wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in out["timings_s"].items()))
    if out.get("reused_stages"):
        print(f"reused from an earlier run (time shown is that run's): {', '.join(out['reused_stages'])}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="zerogr run", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="pipeline config file (defines get_config())")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    config = config_lib.override(config_lib.load_config_file(args.config), args.set)
    run_pipeline(config, progress=not args.no_progress)
