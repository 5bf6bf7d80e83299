"""Reciprocal rank fusion against its formula, computed by brute force."""

import random

import pytest

from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion
from zerogr_jax.evaluation.metrics import trec_order


def brute_rrf(runs, weights, k, depth):
    qids = {q for r in runs for q in r}
    out = {}
    for q in qids:
        docs = {d for r in runs for d in r.get(q, {})}
        scores = {}
        for d in docs:
            s = 0.0
            for r, w in zip(runs, weights):
                order = [x for x, _ in trec_order(r.get(q, {}))][:depth]
                if d in order:
                    s += w / (k + order.index(d) + 1)
            if s > 0 or any(d in [x for x, _ in trec_order(r.get(q, {}))][:depth] for r in runs):
                scores[d] = s
        out[q] = scores
    return out


@pytest.mark.parametrize("seed", range(5))
def test_rrf_equals_the_formula(seed):
    rng = random.Random(seed)
    runs = [{f"q{q}": {f"d{rng.randrange(30)}": rng.random() for _ in range(rng.randint(1, 15))}
             for q in range(rng.randint(1, 4))} for _ in range(3)]
    weights = [rng.random() for _ in runs]
    got = reciprocal_rank_fusion(runs, weights=weights, k=60, depth=8)
    want = brute_rrf(runs, weights, 60, 8)
    assert got.keys() == want.keys()
    for q in want:
        assert got[q].keys() == want[q].keys()
        for d in want[q]:
            assert got[q][d] == pytest.approx(want[q][d])


def test_rrf_ranks_agreement_first_and_rejects_bad_weights():
    a = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    b = {"q": {"y": 0.9, "x": 0.5, "w": 0.1}}
    fused = reciprocal_rank_fusion([a, b])
    assert [d for d, _ in trec_order(fused["q"])] == ["y", "x", "z", "w"]  # y and x: ranks (2,1) / (1,2), tie by id
    assert reciprocal_rank_fusion([a, b], weights=[1.0, 0.0])["q"]["w"] == 0.0
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([a, b], weights=[1.0])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([])
