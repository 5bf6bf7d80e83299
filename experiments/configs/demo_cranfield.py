"""The README's main job on the 2-core CPU machine: cranfield (1,400 docs), embedded SmolLM2-135M, cpu-small training.

    zerogr run --config experiments/configs/demo_cranfield.py

What it trades for time (goal: about 15 minutes on 2 CPU cores): TF-IDF keyword docids instead of LM docids (the LM
docid pass alone takes ~10 min here), B = 2 pseudo-queries per document instead of 16, the cpu-small retriever
(see experiments/configs/cpu_small.py), and K = 100 reverse-annealed docids per query as in the paper.
"""

from zerogr_jax.pipeline import IndexStage, PipelineConfig
from zerogr_jax.search import SearchConfig


def get_config() -> PipelineConfig:
    return PipelineConfig(
        collection="cranfield",
        workdir="runs/demo_cranfield",
        index=IndexStage(docid_scheme="tfidf_keywords", num_queries=2, batch_size=32, shard_size=350),
        train_config="experiments/configs/cpu_small.py",
        search=SearchConfig(num_docids=100, strategy="reverse_annealing", batch_size=32),
        baselines=("bm25", "minilm"),
    )
