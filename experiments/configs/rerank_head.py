"""The best pure generative recipe measured (RESULTS.md, sessions 13-19): the main job's pipeline
(experiments/configs/demo_med.py: TF-IDF keyword docids, top 12 of 30 layers trained for 1 epoch) with **four** random
6-12 word spans per document beside the document-as-query row (`index.span_queries=4`, 5 rows per document; the main
job has 1 span), the reference's rerank head — a ranking step after every docid step (RankNet on `<empty_output>`'s
logit after query + docid + EOS, one positive and 7 BM25-mined negatives per group, 2 groups per step) — and search
that re-orders the exact pool's best 300 docids (w = 0.5) by z(head) + z(generative score) (`search.rerank_mix="zsum"`).

    zerogr run --config experiments/configs/rerank_head.py [--set collection=cisi]

Measured (nDCG@10, zsum over the best 300): med 0.555, cisi 0.250, cranfield 0.299 (with 1 span per document: 0.532 /
0.211 / 0.257; the main job's recipe: 0.385 / 0.166 with 2 epochs / 0.139). Each lever was chosen on med and cisi by
a rule written before its runs and confirmed on cranfield: the ordering (+0.042 over the head alone on the best 30,
p < 0.001; RESULTS.md, session 15), the depth, 300 instead of 100 (0.257 against 0.233, p < 0.001; sessions 16-17),
and the four spans with a ranking step per docid step (0.299 against 0.257, p = 0.002; sessions 18-19, rule G). With
a ranking step per 3 docid steps the spans fell on med (0.467, rule F). A ranking group's prompt runs once per group;
training is beyond the main job's 15 minutes on this CPU (~43 min on cranfield: 860 steps), and a pool of 300 is
~12 s per cranfield query at search.
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
        index=dataclasses.replace(base.index, span_queries=4),
        train_overrides=("train.epochs=1", "data.negatives=7", "train.rank_every=1", "train.rank_batch_size=16",
                         "train.rank_score=head"),
        search=dataclasses.replace(base.search, rerank_depth=300, rerank_mix="zsum"))
