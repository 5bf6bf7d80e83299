"""The best pure generative recipe measured on med (RESULTS.md, session 13): the main job's rows and retriever
(experiments/configs/demo_med.py: 1 epoch of document + 1 span per document, top 12 of 30 layers trained) plus the
reference's rerank head — a ranking step after every docid step (RankNet on `<empty_output>`'s logit after query +
docid + EOS, one positive and 7 BM25-mined negatives per group, 2 groups per step) — and search that re-orders the
exact pool's best 30 docids (w = 0.5) by the head.

    zerogr run --config experiments/configs/rerank_head.py [--set collection=cisi]

Measured: med nDCG@10 0.461 (the main job's recipe 0.385), cisi 0.192 (2 epochs without the head 0.166), and on
cranfield, chosen on neither, 0.204 (the main job's recipe 0.139, p < 0.001; RESULTS.md, session 14). More than twice the main job's training (254 steps instead of 127, the ranking steps through all
30 layers), so not the main job (its goal is 15 minutes on this CPU).
"""

import dataclasses
import pathlib

from zerogr_jax import config as config_lib
from zerogr_jax.pipeline import PipelineConfig

_DEMO = pathlib.Path(__file__).with_name("demo_med.py")


def get_config() -> PipelineConfig:
    base = config_lib.load_config_file(_DEMO)
    return dataclasses.replace(
        base, workdir="runs/rerank_head",
        train_overrides=("train.epochs=1", "data.negatives=7", "train.rank_every=1", "train.rank_batch_size=16",
                         "train.rank_score=head"),
        search=dataclasses.replace(base.search, rerank_depth=30))
