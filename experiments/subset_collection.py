"""A smaller BEIR collection cut from a shipped one, for levers too slow to measure on the whole corpus here.

    python experiments/subset_collection.py --collection cranfield --queries 30 --docs 300 \
        --out runs/subsets/cranfield_q30_d300

Keeps the first `--queries` judged test queries (file order), every document judged for them, and documents drawn
uniformly (seeded) from the rest until there are `--docs`; qrels are those queries' judgements. The result is an
easier task than the whole collection (fewer distractors), so its numbers compare variants on the same subset, not
with full-collection rows. Run any pipeline on it with `--set corpus_dir=<out>` (the instruction stays the source
collection's). Writes the BEIR files atomically and a SOURCE.md saying how it was cut.
"""

from __future__ import annotations

import argparse
import os
import random

from zerogr_jax.atomic_files import atomic_write_text
from zerogr_jax.data import beir, collections


def cut(data: beir.BeirCollection, num_queries: int, num_docs: int, seed: int = 0):
    judged = beir.evaluation_queries(data.queries, data.qrels)
    kept_q = list(judged)[:num_queries]
    qrels = {q: dict(data.qrels[q]) for q in kept_q}
    needed = sorted({d for q in kept_q for d in qrels[q]}, key=list(data.corpus).index)
    if len(needed) > num_docs:
        raise SystemExit(f"the {len(kept_q)} queries judge {len(needed)} documents, more than --docs {num_docs}")
    rest = [d for d in data.corpus if d not in set(needed)]
    extra = random.Random(seed).sample(rest, num_docs - len(needed))
    keep = set(needed) | set(extra)
    corpus = [doc for did, doc in data.corpus.items() if did in keep]  # the source's order
    return corpus, [data.queries[q] for q in kept_q], qrels, len(needed)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collection", default="cranfield")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    data = beir.load_beir(collections.collection_dir(args.collection))
    corpus, queries, qrels, judged = cut(data, args.queries, args.docs, args.seed)
    out = beir.write_beir(args.out, corpus, queries, qrels)
    atomic_write_text(out / "SOURCE.md", (
        f"Cut from {args.collection} by `python experiments/subset_collection.py --collection {args.collection} "
        f"--queries {args.queries} --docs {args.docs} --seed {args.seed} --out {args.out}`: the first "
        f"{len(queries)} judged test queries, the {judged} documents judged for them and {len(corpus) - judged} "
        f"other documents drawn with seed {args.seed}.\n"))
    print(f"{out}: {len(corpus)} documents ({judged} judged), {len(queries)} queries, "
          f"{sum(len(v) for v in qrels.values())} judgements")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
