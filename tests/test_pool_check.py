"""experiments/pool_check.py: a retrained retriever is accepted only when it reproduces the saved pool."""

import numpy as np

from experiments.pool_check import differences
from zerogr_jax.retrieval.search import Candidates


def _pool(rng, q=3, n=5, u=9):
    docids = np.stack([rng.permutation(u)[:n] for _ in range(q)]).astype(np.int32)
    logprobs = np.sort(rng.normal(size=(q, n)).astype(np.float32), axis=1)[:, ::-1].copy()
    logprobs[0, -1] = -np.inf  # padding, at the same place in both pools
    rerank = rng.normal(size=(q, n)).astype(np.float32)
    rerank[:, -1] = np.nan
    return Candidates([f"q{i}" for i in range(q)], docids, logprobs, rng.normal(size=u).astype(np.float32), rerank)


def _first(pool, n):
    return Candidates(pool.qids[:n], pool.docids[:n], pool.logprobs[:n], pool.prior, pool.rerank[:n])


def test_the_same_pool_has_no_differences_and_padding_does_not_count():
    saved = _pool(np.random.default_rng(0))
    assert differences(saved, _first(saved, 2), 2) == {"docids": 0.0, "logprobs": 0.0, "prior": 0.0, "rerank": 0.0}


def test_every_kind_of_difference_is_seen():
    saved = _pool(np.random.default_rng(1))
    new = _first(saved, 2)
    new = Candidates(new.qids, new.docids.copy(), new.logprobs + 0.5, saved.prior - 0.25, new.rerank * 2)
    new.docids[1, [0, 1]] = new.docids[1, [1, 0]]
    diff = differences(saved, new, 2)
    assert diff["docids"] == 2.0
    assert np.isclose(diff["logprobs"], 0.5) and np.isclose(diff["prior"], 0.25)
    finite = saved.rerank[:2][np.isfinite(saved.rerank[:2])]
    assert np.isclose(diff["rerank"], np.max(np.abs(finite)))
