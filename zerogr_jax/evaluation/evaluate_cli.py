"""`zerogr evaluate`: score a TREC run file against a collection's qrels with trec_eval semantics.

    zerogr evaluate --collection cranfield --run runs/cranfield/run.trec [--json out.json]
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Sequence

from zerogr_jax import atomic_files


def main(argv: Sequence[str] | None = None) -> None:
    from zerogr_jax.data import beir, collections
    from zerogr_jax.evaluation import metrics, runfile

    ap = argparse.ArgumentParser(prog="zerogr evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--collection", help="registered collection name")
    ap.add_argument("--beir-dir", help="a BEIR directory instead of --collection")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--run", required=True, help="TREC run file (qid Q0 docid rank score tag)")
    ap.add_argument("--json", help="write metrics, per-query values and the report here")
    args = ap.parse_args(argv)
    if not (args.collection or args.beir_dir):
        raise SystemExit("zerogr evaluate: give --collection or --beir-dir")
    spec = collections.get_collection(args.collection) if args.collection else None
    directory = collections.collection_dir(args.collection, args.data_root) if spec else pathlib.Path(args.beir_dir)
    data = beir.load_beir(directory, spec.split if spec else "test")
    result = metrics.evaluate(data.qrels, runfile.read_run(args.run),
                              ignore_identical_ids=bool(spec and spec.ignore_identical_ids),
                              corpus_ids=data.corpus.keys())
    for message in result.report.messages():
        print(f"warning: {message}")
    for name, value in result.metrics.items():
        print(f"{name:<12}{value:.4f}")
    if args.json:
        atomic_files.atomic_write_json(args.json, result.as_dict())
