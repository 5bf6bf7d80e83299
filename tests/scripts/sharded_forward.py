"""Run in a subprocess with 8 simulated CPU devices: sharded forward == unsharded forward; params really sharded;
sharded sampling == single-device sampling."""
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

# sampling over the mesh (rows over data x fsdp, params as above) with a shared prefix and 2 samples per prompt: the
# prompts' shared KV segments group rows across shards; tokens and log-probs must match the single-device loop
from zerogr_jax import generation, tokenization  # noqa: E402

prompts, _ = tokenization.left_pad([[5, 9, 3], [7], [11, 12, 13, 14], [4, 4], [8, 3, 1], [6], [9, 9, 9], [2, 5]], 0)
prefix = np.asarray([17, 3, 22, 8, 5, 30], np.int32)
mask = prompts != 0
sampling = generation.SamplingParams.make(16, temperature=1.0)
kw = dict(max_new_tokens=5, eos_ids=(-1,), pad_id=0, num_samples=2, with_prefix=True)
plain = jax.device_get(generation.compile_generate(cfg, **kw)(params, prompts, mask, jax.random.key(1), sampling,
                                                              prefix))
on_mesh = generation.compile_generate(cfg, mesh=mesh, param_shardings=shardings, **kw)(
    sharded, prompts, mask, jax.random.key(1), sampling, prefix)
assert len(on_mesh.tokens.sharding.device_set) == 8
np.testing.assert_array_equal(jax.device_get(on_mesh.tokens), plain.tokens)
np.testing.assert_allclose(jax.device_get(on_mesh.logprobs), plain.logprobs, atol=1e-4, rtol=1e-4)

# abstract-first init straight into the shardings: each device builds only its shards
init = llama.init_params(cfg, jax.random.key(0), shardings)
assert init["layers"]["mlp"]["gate"].sharding == shardings["layers"]["mlp"]["gate"]
print("OK")
