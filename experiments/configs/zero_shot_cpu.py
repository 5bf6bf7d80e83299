"""Zero-shot evaluation of every shipped collection on the 2-core CPU (experiments/zero_shot.py sets `collection` and
`workdir` per collection).

The main job's recipe (experiments/configs/demo_cranfield.py: TF-IDF keyword docids, B = 0 LM pseudo-queries, one
document-as-query row per document, cpu-small retriever for one epoch, reverse annealing) with three cuts that keep
all seven collections (35,400 documents, 2,630 judged queries) inside about 100 minutes of this CPU: the
document-as-query row holds the title and the first 32 words (not 64), search keeps K = 10 docids per query (enough
for nDCG@10, Acc@1, MRR@10; Recall@100 is then a Recall@10), and the only baseline run in the loop is BM25 (MiniLM's
numbers for the same queries are in experiments/results/baselines.json).
"""

import pathlib

from zerogr_jax import config as config_lib

_DEMO = pathlib.Path(__file__).resolve().parent / "demo_cranfield.py"


def get_config():
    demo = config_lib.load_config_file(_DEMO)
    return config_lib.override(demo, ["workdir=runs/zero_shot/cranfield", "index.doc_as_query_words=32",
                                      "search.num_docids=10", "baselines=bm25"])
