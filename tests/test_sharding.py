"""Sharding on a simulated 8-device CPU mesh (data=2, fsdp=2, tensor=2), run in a subprocess."""

import os
import pathlib
import subprocess
import sys

import pytest
from jax.sharding import PartitionSpec as P

from zerogr_jax import sharding as shd

SCRIPTS = pathlib.Path(__file__).parent / "scripts"


def test_sharded_forward_and_sampling_equal_unsharded(tiny_hf_dir):
    env = dict(os.environ, XLA_FLAGS="")
    res = subprocess.run([sys.executable, str(SCRIPTS / "sharded_forward.py"), str(tiny_hf_dir)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


def test_logical_rules():
    assert shd.logical_to_spec(("layers", "embed", "heads", "head_dim")) == P(None, "fsdp", "tensor", None)
    assert shd.logical_to_spec(("batch", "length", "embed")) == P(("data", "fsdp"), None, None)
    assert shd.logical_to_spec(("vocab", "embed")) == P("tensor", "fsdp")


def test_mesh_shape_rest_axis():
    assert shd.MeshConfig(data=-1, fsdp=2, tensor=2).shape(16) == (4, 2, 2)
    with pytest.raises(ValueError, match="at most one mesh axis may be -1"):
        shd.MeshConfig(data=-1, fsdp=-1).shape(8)
    with pytest.raises(ValueError, match="do not split"):
        shd.MeshConfig(data=-1, fsdp=3).shape(8)


def test_tree_shardings_treats_tuples_in_the_abstract_tree_as_containers():
    import jax

    mesh = shd.make_mesh(shd.MeshConfig(data=-1, fsdp=1, tensor=1))
    sds = jax.ShapeDtypeStruct((8, 4), "float32")
    abstract = {"cache": (sds, sds), "w": sds}  # (k, v): a tuple container, as the KV cache is
    logical = {"cache": (("batch", None), ("batch", None)), "w": P(None, None)}
    out = shd.tree_shardings(mesh, abstract, logical)
    assert isinstance(out["cache"], tuple) and len(out["cache"]) == 2
    single = shd.tree_shardings(mesh, sds, ("batch", None))  # a bare logical tuple is one leaf
    assert all(s == single for s in out["cache"])
    assert out["w"].spec == P(None, None)
