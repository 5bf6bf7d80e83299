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
import json
import os
import pathlib
import platform
import time
from typing import Sequence

from zerogr_jax.search import SearchConfig


@dataclasses.dataclass(frozen=True)
class IndexStage:
    model: str = "smollm2-135m-instruct"  # docid / pseudo-query generator
    docid_scheme: str = "tfidf_keywords"
    num_queries: int = 4  # pseudo-queries per document (B)
    batch_size: int = 32
    shard_size: int = 500
    max_docs: int = 0  # 0 = the whole corpus
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    collection: str = "cranfield"
    workdir: str = "runs/demo_cranfield"
    data_root: str = ""  # "" = $ZEROGR_DATA or <repo>/../shared/data
    index: IndexStage = IndexStage()
    train_config: str = "experiments/configs/cpu_small.py"
    train_overrides: tuple[str, ...] = ()  # "key=value" for the train config
    extra_train_indexes: tuple[str, ...] = ()  # other index dirs mixed into training (multi-task)
    search: SearchConfig = SearchConfig()
    baselines: tuple[str, ...] = ("bm25", "minilm")
    max_queries: int = 0  # 0 = every judged query


def _atomic_json(path: pathlib.Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def run_pipeline(config: PipelineConfig, *, progress: bool = True) -> dict:
    from zerogr_jax.data import beir, collections
    from zerogr_jax.evaluation import metrics, runfile
    from zerogr_jax.indexing import index_builder
    from zerogr_jax.train_loop import train_main

    work = pathlib.Path(config.workdir)
    work.mkdir(parents=True, exist_ok=True)
    spec = collections.get_collection(config.collection)
    col_dir = collections.collection_dir(config.collection, config.data_root or None)
    data = beir.load_beir(col_dir, spec.split)
    judged = beir.evaluation_queries(data.queries, data.qrels)
    if config.max_queries:
        judged = dict(list(judged.items())[: config.max_queries])
    qrels = {q: data.qrels[q] for q in judged}
    queries = {q: v.text for q, v in judged.items()}
    timings: dict[str, float] = {}
    results: dict[str, dict] = {}

    def evaluate(name: str, run: dict) -> None:
        res = metrics.evaluate(qrels, run, ignore_identical_ids=spec.ignore_identical_ids,
                               corpus_ids=data.corpus.keys())
        results[name] = {"metrics": res.metrics, "report": res.report.as_dict()}
        for message in res.report.messages():
            print(f"[{name}] {message}")

    # 1. index (resumable shard by shard)
    t0 = time.perf_counter()
    ix = config.index
    index_dir = work / "index"
    argv = ["--corpus", str(col_dir), "--collection", spec.name, "--out", str(index_dir), "--model", ix.model,
            "--docid-scheme", ix.docid_scheme, "--num-queries", str(ix.num_queries), "--batch-size",
            str(ix.batch_size), "--shard-size", str(ix.shard_size), "--seed", str(ix.seed)]
    if ix.max_docs:
        argv += ["--max-docs", str(ix.max_docs)]
    if not progress:
        argv.append("--no-progress")
    index_builder.main(argv)
    timings["index"] = time.perf_counter() - t0

    # 2. train (resumes from the newest good checkpoint)
    t0 = time.perf_counter()
    train_dir = work / "train"
    argv = ["--config", config.train_config, "--workdir", str(train_dir), "--index", str(index_dir)]
    for extra in config.extra_train_indexes:
        argv += ["--index", extra]
    for o in config.train_overrides:
        argv += ["--set", o]
    if (train_dir / "manifest.json").exists():
        argv.append("--resume")
    if not progress:
        argv.append("--no-progress")
    train_main(argv)
    timings["train"] = time.perf_counter() - t0

    # 3. search + evaluate
    t0 = time.perf_counter()
    from zerogr_jax.data.training_pairs import load_index
    from zerogr_jax.models.loading import load_model
    from zerogr_jax.search import build_index_trie, search

    retriever = load_model(str(train_dir / "model"))
    index = load_index(index_dir)
    trie, doc_ids = build_index_trie(index, retriever.tokenizer, retriever.cfg.vocab_size)
    run = search(retriever.cfg, retriever.params, retriever.tokenizer, trie, doc_ids, queries, index.instruction,
                 config.search, progress=progress)
    runfile.write_run(work / "run.trec", run, tag=f"zerogr-{config.search.strategy}")
    timings["search"] = time.perf_counter() - t0
    evaluate("zerogr-jax", run)

    # 4. baselines, same queries, same metrics
    if "bm25" in config.baselines:
        from zerogr_jax.evaluation import bm25

        t0 = time.perf_counter()
        run = bm25.bm25_search(bm25.build_bm25_index(data.corpus.values()), queries, k=100)
        timings["bm25"] = time.perf_counter() - t0
        evaluate("BM25", run)
    if "minilm" in config.baselines:
        from zerogr_jax.evaluation import dense

        t0 = time.perf_counter()
        enc = dense.load_minilm()
        ids = list(data.corpus)
        emb = dense.encode(enc, [data.corpus[i].contents() for i in ids])
        run = dense.dense_search(enc, ids, emb, queries, k=100)
        timings["minilm"] = time.perf_counter() - t0
        evaluate("MiniLM-L6", run)

    out = {"collection": spec.name, "config": dataclasses.asdict(config), "results": results,
           "timings_s": {k: round(v, 1) for k, v in timings.items()}, "machine": platform.machine(),
           "cpus": os.cpu_count(), "queries": len(queries)}
    _atomic_json(work / "results.json", out)
    print_table(out)
    return out


def print_table(out: dict) -> None:
    names = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")
    print(f"\n{out['collection']}: {out['queries']} judged queries")
    print(f"{'system':<12}" + "".join(f"{n:>12}" for n in names))
    for system, r in out["results"].items():
        print(f"{system:<12}" + "".join(f"{r['metrics'][n]:>12.3f}" for n in names))
    print("wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in out["timings_s"].items()))


def main(argv: Sequence[str] | None = None) -> None:
    from zerogr_jax import config as config_lib

    ap = argparse.ArgumentParser(prog="zerogr run", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="pipeline config file (defines get_config())")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    config = config_lib.override(config_lib.load_config_file(args.config), args.set)
    run_pipeline(config, progress=not args.no_progress)
