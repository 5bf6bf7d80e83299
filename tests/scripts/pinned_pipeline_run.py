"""A small pinned pipeline run, for before/after checks of refactors (issue 19): the tiny collection of
tests/test_pipeline.py, 2-layer embedded model, tfidf docids + 2 spans, 4 epochs, reverse annealing K = 4, BM25.

    python tests/scripts/pinned_pipeline_run.py WORKDIR     # at two commits, then cmp their run.trec / index files
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/: the tiny collection

from test_pipeline import write_collection  # noqa: E402
from zerogr_jax import pipeline  # noqa: E402
from zerogr_jax.retrieval.search import SearchConfig  # noqa: E402


def main(workdir: str) -> None:
    work = pathlib.Path(workdir)
    corpus = write_collection(work.parent / (work.name + "_tiny"))
    cfg = pipeline.PipelineConfig(
        collection="tiny", corpus_dir=str(corpus), workdir=str(work),
        instruction="Given a topic, retrieve the paragraph about it",
        index=pipeline.IndexStage(docid_scheme="tfidf_keywords", num_queries=0, span_queries=2, shard_size=5),
        train_config="experiments/configs/cpu_small.py",
        train_overrides=("model.num_layers=2", "train.trainable=top_layers:2", "train.epochs=4",
                         "train.batch_size=8", "train.warmup_steps=2", "train.length_buckets=1",
                         "data.heldout_fraction=0.0"),
        search=SearchConfig(num_docids=4, strategy="reverse_annealing", batch_size=8), baselines=("bm25",))
    out = pipeline.run_pipeline(cfg, progress=False)
    print({k: v["metrics"]["nDCG@10"] for k, v in out["results"].items()})


if __name__ == "__main__":
    main(sys.argv[1])
