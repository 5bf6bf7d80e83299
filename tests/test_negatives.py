"""Negatives for the ranking loss: BM25-mined from the index rows (or uniform), never the positive, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from zerogr_jax.data.beir import Document
from zerogr_jax.evaluation.bm25 import bm25_search, build_bm25_index
from zerogr_jax.training.negatives import NegativesStats, mine_negatives

DOCS = ["glucose insulin plasma levels", "glucose fetal maternal plasma", "insulin secretion pancreas",
        "cornea histamine mast cells", "fetal lung maturation", "maternal plasma ffa glucose levels",
        "kidney transplant rejection", "plasma glucose fasting levels"]
QUERIES = ["glucose plasma levels", "fetal maternal glucose", "cornea histamine", "zebra unicorn"]
POSITIVES = [0, 1, 3, 6]


def test_bm25_negatives_come_from_the_top_depth_without_the_positive():
    stats = NegativesStats()
    depth = 4
    negs = mine_negatives(DOCS, QUERIES, POSITIVES, 2, depth=depth, seed=0, stats=stats)
    assert negs.shape == (4, 2)
    index = build_bm25_index(Document(str(i), "", t) for i, t in enumerate(DOCS))
    run = bm25_search(index, {str(q): t for q, t in enumerate(QUERIES)}, k=depth + 1)
    for q, row in enumerate(negs):
        assert POSITIVES[q] not in row and len(set(row.tolist())) == 2
        top = [int(d) for d in run[str(q)] if int(d) != POSITIVES[q]]
        if len(top) >= 2:  # drawn from BM25's own list
            assert set(row.tolist()) <= set(top)
    # "cornea histamine" matches one other document at most, "zebra unicorn" none: topped up uniformly, counted
    assert stats.queries == 4 and stats.topped_up == 2
    again = mine_negatives(DOCS, QUERIES, POSITIVES, 2, depth=depth, seed=0)
    assert np.array_equal(again, negs)  # seeded
    draws = {tuple(mine_negatives(DOCS, QUERIES, POSITIVES, 2, depth=depth, seed=s)[0]) for s in range(8)}
    assert len(draws) > 1  # a draw from the top depth, not always the very top


def test_random_negatives_and_bad_arguments():
    negs = mine_negatives(DOCS, QUERIES, POSITIVES, 7, source="random", seed=1)
    for q, row in enumerate(negs):  # all 7 other documents, each once
        assert sorted(row.tolist()) == sorted(set(range(8)) - {POSITIVES[q]})
    with pytest.raises(ValueError, match="at least 9 documents"):
        mine_negatives(DOCS, QUERIES, POSITIVES, 8)
    with pytest.raises(ValueError, match="source"):
        mine_negatives(DOCS, QUERIES, POSITIVES, 2, source="dense")
    with pytest.raises(ValueError, match="positives"):
        mine_negatives(DOCS, QUERIES, POSITIVES[:2], 2)


def test_some_negatives_uniform_the_rest_from_bm25():
    """num_random of the negatives are drawn uniformly from the documents BM25's draw left (never the positive, no
    repeats); the BM25 ones come first and are BM25's; num_random = 0 draws exactly what the plain call draws."""
    depth = 4
    index = build_bm25_index(Document(str(i), "", t) for i, t in enumerate(DOCS))
    run = bm25_search(index, {str(q): t for q, t in enumerate(QUERIES)}, k=depth + 1)
    stats = NegativesStats()
    negs = mine_negatives(DOCS, QUERIES, POSITIVES, 3, depth=depth, seed=2, num_random=2, stats=stats)
    empty = 0
    for q, row in enumerate(negs):
        assert POSITIVES[q] not in row and len(set(row.tolist())) == 3
        top = [int(d) for d in run[str(q)] if int(d) != POSITIVES[q]]
        if top:
            assert row[0] in top  # the one BM25 negative
        empty += not top
    assert empty >= 1 and stats.topped_up == empty  # "zebra unicorn" matches nothing: its BM25 negative is uniform
    mixed = {tuple(mine_negatives(DOCS, QUERIES, POSITIVES, 3, depth=depth, seed=s, num_random=2)[0][1:])
             for s in range(12)}
    assert any(not set(m) <= set(int(d) for d in run["0"]) for m in mixed)  # uniform ones reach beyond BM25's list
    assert np.array_equal(mine_negatives(DOCS, QUERIES, POSITIVES, 2, depth=depth, seed=0, num_random=0),
                          mine_negatives(DOCS, QUERIES, POSITIVES, 2, depth=depth, seed=0))
    with pytest.raises(ValueError, match="num_random"):
        mine_negatives(DOCS, QUERIES, POSITIVES, 2, num_random=3)


def test_negatives_random_is_checked_against_negatives_on_the_finished_config():
    """`data.negatives_random=3` is valid beside `data.negatives=7` whatever the overrides' order, both when they are
    applied and when a layer of them reports what it changes; above data.negatives it is an error."""
    from zerogr_jax import config as config_lib
    from zerogr_jax.training.pairs import PairsConfig

    exp = config_lib.load_config_file("experiments/configs/cpu_top12.py")
    for order in (["data.negatives=7", "data.negatives_random=3"], ["data.negatives_random=3", "data.negatives=7"]):
        done = config_lib.override(exp, order)
        assert (done.data.negatives, done.data.negatives_random) == (7, 3)
        assert {k for k, _, _ in config_lib.changes(exp, order)} == {"data.negatives", "data.negatives_random"}
    with pytest.raises(ValueError, match="negatives_random=3 must be at most data.negatives=2"):
        PairsConfig(negatives=2, negatives_random=3)
    with pytest.raises(ValueError, match="negatives_random=3 must be at most data.negatives=0"):
        config_lib.override(exp, ["data.negatives_random=3"])
    with pytest.raises(ValueError, match="must be >= 0"):
        PairsConfig(negatives_random=-1)
