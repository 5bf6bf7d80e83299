"""`sampling.gumbel_at` / `categorical_at`: the draws `jax.random.gumbel` / `jax.random.categorical` make, computed
at a few positions only (docid decoding's sparse draws rest on this; `decoding._choose`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zerogr_jax import sampling

N = 4099  # a vocabulary that is no power of two


def test_this_jax_draws_sparse_as_it_draws_dense():
    assert sampling.sparse_draws_match_jax()


@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey], ids=["typed", "raw"])
def test_gumbel_at_equals_the_full_draw_bit_for_bit(make_key):
    keys = [jax.random.fold_in(make_key(s), i) for s in (0, 7) for i in (0, 1, 123456)]
    at = jax.jit(sampling.gumbel_at)
    for key in keys:
        full = np.asarray(jax.random.gumbel(key, (N,)))
        idx = np.random.default_rng(0).integers(0, N, (5, 7))
        np.testing.assert_array_equal(np.asarray(at(key, jnp.asarray(idx))), full[idx])
        np.testing.assert_array_equal(np.asarray(at(key, jnp.arange(N))), full)


def test_categorical_at_draws_what_the_dense_categorical_draws():
    """Rows of W allowed tokens (ascending, some padding at -inf) inside a vocabulary of N: the dense draw over the
    vocabulary with every other token at -inf picks the same token, over many keys, at two temperatures and with
    tied logits (argmax's first index must agree)."""
    rng = np.random.default_rng(1)
    r, w = 256, 6
    index = np.sort(np.stack([rng.choice(N, w, replace=False) for _ in range(r)]), axis=1)
    logits = rng.normal(size=(r, w)).astype(np.float32)
    logits[: r // 4] = 0.5  # ties
    logits[:, -1][rng.random(r) < 0.3] = -np.inf  # padding / removed children
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(5), i))(jnp.arange(r))
    dense = np.full((r, N), -np.inf, np.float32)
    dense[np.arange(r)[:, None], index] = logits
    for t in (1.0, 0.3):
        want = np.asarray(jax.jit(jax.vmap(jax.random.categorical))(keys, jnp.asarray(dense) / t))
        pos = np.asarray(jax.jit(sampling.categorical_at)(keys, jnp.asarray(logits) / t, jnp.asarray(index)))
        np.testing.assert_array_equal(index[np.arange(r), pos], want)
        assert np.isfinite(logits[np.arange(r), pos]).all()
