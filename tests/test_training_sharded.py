"""Sharded train step on 8 simulated CPU devices (data=2 x fsdp=2 x tensor=2) == the single-device step.

Runs in a subprocess so that only it sees `--xla_force_host_platform_device_count=8`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from training_fixtures import REPO

SHARDED_SCRIPT = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np
    from zerogr_jax import sharding as shd
    from zerogr_jax.training import step as tr
    from zerogr_jax.training import input_pipeline as pipe
    from zerogr_jax.models import llama
    from training_fixtures import TINY, tiny_examples
    assert jax.device_count() == 8
    ex = tiny_examples()
    params = jax.device_get(llama.init_params(TINY, jax.random.key(0)))
    out = {}
    for name, mesh_cfg, devices in [("single", shd.MeshConfig(1, 1, 1), jax.devices()[:1]),
                                    ("sharded", shd.MeshConfig(2, 2, 2), jax.devices())]:
        mesh = shd.make_mesh(mesh_cfg, devices)
        tc = tr.TrainConfig(lr=1e-2, warmup_steps=0, total_steps=3, grad_accum_steps=2)
        tx = tr.make_optimizer(tc, 3)
        train_axes, _ = tr.split_logical_axes(TINY, "all")
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
        _, state_sh = tr.state_shardings(mesh, abstract, train_axes, tx)
        state = tr.init_train_state(params, tx, 0, state_sh)
        consts = tr.step_constants({}, None, TINY.vocab_size)
        batch_sh = pipe.batch_shardings(mesh)
        step = tr.make_train_step(TINY, tx, 2, mesh, state_sh, batch_sh, tr.constants_shardings(mesh, consts, {}))
        it = pipe.BatchIterator(ex, 8, seed=0, shardings=batch_sh)
        for _ in range(3):
            state, metrics = step(state, next(it), consts)
        q = state.params["layers"]["attn"]["q"]
        mu_q = state.opt_state[1][0].mu["layers"]["attn"]["q"]
        out[name] = {"params": [np.asarray(x).tolist() for x in jax.tree.leaves(jax.device_get(state.params))],
                     "loss": float(metrics["loss"]), "q_spec": str(q.sharding.spec),
                     "q_shard": list(q.addressable_shards[0].data.shape), "q_shape": list(q.shape),
                     "mu_q_spec": str(mu_q.sharding.spec)}
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_sharded_step_equals_single_device_step():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests'}")
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    single, sharded = out["single"], out["sharded"]
    # q [L, D, H, E]: D over fsdp, heads over tensor; the optimizer moment follows its param
    assert sharded["q_spec"] == "P(None, 'fsdp', 'tensor', None)" == sharded["mu_q_spec"]
    assert sharded["q_shard"] == [2, 16, 2, 8] and sharded["q_shape"] == [2, 32, 4, 8]
    assert single["q_shard"] == single["q_shape"]
    np.testing.assert_allclose(sharded["loss"], single["loss"], rtol=1e-5)
    for a, b in zip(single["params"], sharded["params"]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-4, atol=2e-6)
