"""Device mesh and the logical-axis rule table.

Every parameter and activation is annotated with *logical* axis names; this module is the one place that maps
them to *mesh* axes (MaxText style, kept to one screen). The mesh has three axes:

  data    pure data parallelism (batch split, parameters replicated),
  fsdp    batch split *and* parameters sharded (ZeRO-3 style; all-gathered per layer by XLA),
  tensor  Megatron-style model parallelism over heads / MLP width / vocabulary.

A batch is split over ("data", "fsdp") together.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH = ("data", "fsdp")  # mesh axes a batch dimension is split over

# logical axis name -> mesh axis (or tuple of axes, or None = replicated)
LOGICAL_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", BATCH),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv", "tensor"),
    ("mlp", "tensor"),
    ("layers", None),
    ("head_dim", None),
    ("length", None),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh shape; one axis may be -1 ("the rest of the devices")."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def shape(self, num_devices: int) -> tuple[int, int, int]:
        dims = [self.data, self.fsdp, self.tensor]
        if dims.count(-1) > 1:
            raise ValueError(f"at most one mesh axis may be -1, got {dims}")
        known = math.prod(d for d in dims if d != -1)
        if -1 in dims:
            if num_devices % known:
                raise ValueError(f"{num_devices} devices do not split into mesh {dims}")
            dims[dims.index(-1)] = num_devices // known
        if math.prod(dims) != num_devices:
            raise ValueError(f"mesh {dims} needs {math.prod(dims)} devices, have {num_devices}")
        return tuple(dims)  # type: ignore[return-value]


def make_mesh(config: MeshConfig = MeshConfig(), devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the (data, fsdp, tensor) mesh over `devices` (default: all devices of all processes).

    `jax.make_mesh`'s device order keeps the tensor axis on the fastest interconnect (ICI before DCN). Axes are
    `Auto` (GSPMD propagation from the in/out shardings we declare), not JAX's newer explicit-sharding mode.
    """
    devices = list(devices) if devices is not None else jax.devices()
    shape = config.shape(len(devices))
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    if devices == jax.devices():
        return jax.make_mesh(shape, MESH_AXES, devices=devices, axis_types=auto)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=auto)


def logical_to_spec(logical_axes: Sequence[str | None], rules=LOGICAL_RULES) -> P:
    """Maps a tuple of logical axis names to a PartitionSpec; a mesh axis is used at most once."""
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name in logical_axes:
        target = table.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a not in used)
        used.update(axes)
        spec.append(axes[0] if len(axes) == 1 else (axes or None))
    return P(*spec)


def _fits(shape: Sequence[int], spec: P, mesh: Mesh) -> P:
    """Drops mesh axes that do not divide the dimension (e.g. 3 kv heads on tensor=2): replicate instead."""
    out = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        size = math.prod(mesh.shape[a] for a in names)
        out.append(axes if names and dim % size == 0 else None)
    return P(*out)


def tree_shardings(mesh: Mesh, abstract_tree: Any, logical_tree: Any, rules=LOGICAL_RULES) -> Any:
    """NamedShardings for a pytree of ShapeDtypeStructs given a matching pytree of logical-axis tuples."""

    def one(logical, abstract):
        return NamedSharding(mesh, _fits(abstract.shape, logical_to_spec(logical, rules), mesh))

    # the logical tree leads: its leaves are axis-name tuples, while tuples in the abstract tree are containers
    return jax.tree.map(one, logical_tree, abstract_tree, is_leaf=_is_logical_axes)


def _is_logical_axes(x: Any) -> bool:
    return isinstance(x, P) or (isinstance(x, tuple) and all(a is None or isinstance(a, str) for a in x))


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Shards the leading (batch) dimension over the data-parallel axes, the rest replicated."""
    return NamedSharding(mesh, P(BATCH, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
