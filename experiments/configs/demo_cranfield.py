"""The README's main job on the 2-core CPU machine: cranfield (1,400 docs), embedded SmolLM2-135M, cpu-small training.

    zerogr run --config experiments/configs/demo_cranfield.py

What it trades for time on 2 CPU cores: TF-IDF keyword docids instead of LM docids, and B = 0 LM pseudo-queries
(only document-as-query pairs): LM generation ran at 0.04 docs/s on the loaded dev machine (BENCHMARKS.md), so
B > 0 belongs on an accelerator (`--set index.num_queries=16`). The retriever is cpu-small (experiments/configs/
cpu_small.py) trained for one epoch, and search keeps K = 20 reverse-annealed docids per query (the paper: 100), so
Recall@100 is capped by 20 docids. Measured: 11 min 55 s for the whole run on the 2-core dev CPU (RESULTS.md).
"""

from zerogr_jax.pipeline import IndexStage, PipelineConfig
from zerogr_jax.retrieval.search import SearchConfig


def get_config() -> PipelineConfig:
    return PipelineConfig(
        collection="cranfield",
        workdir="runs/demo_cranfield",
        index=IndexStage(docid_scheme="tfidf_keywords", num_queries=0, batch_size=32, shard_size=350),
        train_config="experiments/configs/cpu_small.py",
        train_overrides=("train.epochs=1",),
        search=SearchConfig(num_docids=20, strategy="reverse_annealing", batch_size=32),
        baselines=("bm25", "minilm"),
    )
