"""Reciprocal rank fusion and z-score fusion against their formulas, computed by brute force."""

import random

import pytest

import statistics

from zerogr_jax.evaluation.fusion import reciprocal_rank_fusion, zscore_fusion
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


@pytest.mark.parametrize("seed", range(3))
def test_zscore_fusion_equals_the_formula(seed):
    """w_a z_a(d) + w_b z_b(d), z over each run's top `depth` for the query (population sd), a document missing
    from a run at that run's lowest z; a query in one run only is that run's weighted z."""
    rng = random.Random(seed)
    runs = [{f"q{q}": {f"d{rng.randrange(30)}": rng.gauss(0, 5) for _ in range(rng.randint(2, 15))}
             for q in range(rng.randint(1, 4))} for _ in range(2)]
    weights = [rng.random(), rng.random()]
    got = zscore_fusion(runs, weights=weights, depth=8)
    for q in {q for r in runs for q in r}:
        zs = []
        for r in runs:
            top = trec_order(r.get(q, {}))[:8]
            vals = [s for _, s in top]
            sd = statistics.pstdev(vals) if vals else 0.0
            zs.append({d: (s - statistics.fmean(vals)) / sd if sd else 0.0 for d, s in top})
        docs = set(zs[0]) | set(zs[1])
        assert got[q].keys() == docs
        for d in docs:
            want = sum(w * z.get(d, min(z.values(), default=0.0)) for z, w in zip(zs, weights))
            assert got[q][d] == pytest.approx(want)
    # the weights move the order: b alone orders by b, a alone by a
    a = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    b = {"q": {"x": 0.1, "y": 0.5, "z": 0.9}}
    assert [d for d, _ in trec_order(zscore_fusion([a, b], weights=[0.0, 1.0])["q"])] == ["z", "y", "x"]
    assert [d for d, _ in trec_order(zscore_fusion([a, b], weights=[1.0, 0.25])["q"])] == ["x", "y", "z"]
    with pytest.raises(ValueError):
        zscore_fusion([a, b], weights=[1.0, -1.0])
