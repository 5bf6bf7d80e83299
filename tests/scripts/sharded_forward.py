"""Run in a subprocess with 8 simulated CPU devices: sharded forward == unsharded forward; params really sharded."""
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax import sharding as shd
from zerogr_jax.models import checkpoints, llama

cfg, params = checkpoints.load_hf_directory(sys.argv[1])
assert jax.device_count() == 8
mesh = shd.make_mesh(shd.MeshConfig(data=2, fsdp=2, tensor=2))
shardings = shd.tree_shardings(mesh, llama.abstract_params(cfg), llama.param_logical_axes(cfg))
sharded = jax.device_put(params, shardings)

q = sharded["layers"]["attn"]["q"]  # [L, D, H, E]: D over fsdp, H over tensor
assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None), q.sharding.spec
assert q.addressable_shards[0].data.shape == (q.shape[0], q.shape[1] // 2, q.shape[2] // 2, q.shape[3])
emb = sharded["embedding"]
assert emb.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp"), emb.sharding.spec

tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (8, 12)).astype(np.int32)
positions = np.broadcast_to(np.arange(12), tokens.shape).astype(np.int32)
batch = shd.batch_sharding(mesh, 2)
fwd = jax.jit(lambda p, t, pos: llama.forward(p, cfg, t, pos)[0],
              in_shardings=(shardings, batch, batch), out_shardings=shd.batch_sharding(mesh, 3))
out = fwd(sharded, jax.device_put(tokens, batch), jax.device_put(positions, batch))
assert len(out.sharding.device_set) == 8
ref, _ = llama.forward(jax.device_put(params, jax.devices()[0]), cfg, jnp.asarray(tokens), jnp.asarray(positions))
np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5, rtol=1e-5)

# abstract-first init straight into the shardings: each device builds only its shards
init = llama.init_params(cfg, jax.random.key(0), shardings)
assert init["layers"]["mlp"]["gate"].sharding == shardings["layers"]["mlp"]["gate"]
print("OK")
