"""The best pure generative recipe measured (RESULTS.md, sessions 13-17): the main job's rows and retriever
(experiments/configs/demo_med.py: 1 epoch of document + 1 span per document, top 12 of 30 layers trained) plus the
reference's rerank head — a ranking step after every docid step (RankNet on `<empty_output>`'s logit after query +
docid + EOS, one positive and 7 BM25-mined negatives per group, 2 groups per step) — and search that re-orders the
exact pool's best 300 docids (w = 0.5) by z(head) + z(generative score) (`search.rerank_mix="zsum"`).

    zerogr run --config experiments/configs/rerank_head.py [--set collection=cisi]

Measured (nDCG@10, zsum over the best 300): med 0.532, cisi 0.211, cranfield 0.257 (the main job's recipe: 0.385 /
0.166 with 2 epochs / 0.139). The ordering was chosen on med and cisi by a rule written before the runs and confirmed
on cranfield (+0.042 over the head alone on the best 30, p < 0.001; RESULTS.md, session 15); the depth, 300 instead
of 100, by a second such rule (med +0.040, cisi +0.006; RESULTS.md, session 16), confirmed on cranfield with a
retrained head: 0.257 against 0.233 for the same pool's best 100, p < 0.001 (session 17). Since session 15 a ranking
group's prompt runs once per group, which halves a ranking step; training is still beyond the main job's 15 minutes
on this CPU (~30 min on cranfield), and a pool of 300 is ~12 s per cranfield query at search.
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
        search=dataclasses.replace(base.search, rerank_depth=300, rerank_mix="zsum"))
