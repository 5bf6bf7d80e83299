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
    assert differences(saved, _first(saved, 2), 2) == {"docids": 0.0, "positions": 0.0, "logprobs": 0.0,
                                                       "rerank": 0.0, "prior": 0.0}


def test_every_kind_of_difference_is_seen():
    saved = _pool(np.random.default_rng(1))
    new = _first(saved, 2)
    new = Candidates(new.qids, new.docids.copy(), new.logprobs + 0.5, saved.prior - 0.25, new.rerank + 1.0)
    new.docids[1, 0] = np.setdiff1d(np.arange(9), saved.docids[1])[0]  # a docid the saved pool does not hold
    diff = differences(saved, new, 2)
    assert diff["docids"] == 2.0 and diff["positions"] == 1.0  # one docid out, one in, at one position
    assert np.isclose(diff["logprobs"], 0.5) and np.isclose(diff["prior"], 0.25) and np.isclose(diff["rerank"], 1.0)


def test_docids_that_trade_places_are_matched_to_their_own_scores():
    saved = _pool(np.random.default_rng(2))
    new = _first(saved, 2)
    swap = lambda x: x[:, [1, 0, 2, 3, 4]].copy()  # noqa: E731 (the first two docids trade places, scores with them)
    moved = Candidates(new.qids, swap(new.docids), swap(new.logprobs), saved.prior, swap(new.rerank))
    diff = differences(saved, moved, 2)
    assert diff["positions"] == 4.0 and diff["docids"] == 0.0
    assert diff["logprobs"] == 0.0 and diff["rerank"] == 0.0
    # the same swap of docids with the scores left in place: each docid's scores changed, which the check sees
    wrong = Candidates(new.qids, swap(new.docids), new.logprobs, saved.prior, new.rerank)
    assert differences(saved, wrong, 2)["logprobs"] > 0
