"""Paired significance of the difference between two systems' per-query scores (the same judged queries).

Two tests from scipy, both over the per-query differences: a paired randomization (sign-flip permutation) test,
the one IR evaluations usually report (Smucker et al., CIKM 2007), and the paired t-test. With a few hundred queries
and metrics near zero for most of them, the randomization test is the one to read; the t-test is there to compare
with published tables.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def paired_test(a: Mapping[str, float], b: Mapping[str, float], *, resamples: int = 10_000,
                seed: int = 0) -> dict[str, float]:
    """Per-query values of systems A and B (query id -> value) -> mean of each, mean(b - a), two-sided p-values.

    The query sets must be equal: a query a system did not answer must be scored 0, not left out (`metrics.evaluate`
    already returns every judged query)."""
    from scipy import stats

    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise ValueError(f"the two systems are scored on different queries ({len(only)} differ, e.g. {only[:3]})")
    if not a:
        raise ValueError("no queries to compare")
    qids = sorted(a)
    x = np.array([a[q] for q in qids], np.float64)
    y = np.array([b[q] for q in qids], np.float64)
    diff = y - x
    if not diff.any():  # identical scores: no test has anything to say (scipy would return nan)
        p_rand = p_t = 1.0
    else:
        p_rand = float(stats.permutation_test((x, y), lambda u, v: np.mean(v - u), permutation_type="samples",
                                              n_resamples=resamples, alternative="two-sided",
                                              rng=np.random.default_rng(seed)).pvalue)
        p_t = float(stats.ttest_rel(y, x).pvalue) if diff.std() > 0 else 0.0
    return {"queries": len(qids), "mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": float(diff.mean()),
            "b_better": int((diff > 0).sum()), "a_better": int((diff < 0).sum()),
            "p_randomization": p_rand, "p_ttest": p_t}
