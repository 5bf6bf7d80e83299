"""Multi-process runs: `jax.distributed` start-up, process-0 logging and writes, and the ICI/DCN-aware mesh.

JAX is multi-controller: every host runs the same program, sees all devices of all processes in `jax.devices()`,
and feeds only its own (`jax.local_devices()`). This module is the only place that starts that runtime.

`initialize()` decides, in this order:

1. `ZEROGR_DISTRIBUTED=off` (or `0`): single process, nothing started.
2. An explicit coordinator (arguments, else `ZEROGR_COORDINATOR` / `ZEROGR_NUM_PROCESSES` / `ZEROGR_PROCESS_ID` /
   `ZEROGR_LOCAL_DEVICE_IDS`, as set by `launch/local.py` and `launch/slurm_gpu.sbatch`):
   `jax.distributed.initialize(address, n, id, local_device_ids)` with JAX's own cluster detection off (a process
   sees all its host's accelerators unless `local_device_ids` says otherwise); with n == 1 nothing is started.
3. A managed cluster JAX detects on its own (Cloud TPU VM, a SLURM `srun` step with more than one task, Open MPI
   `mpirun` with more than one rank) or `ZEROGR_DISTRIBUTED=auto`: `jax.distributed.initialize()` with no arguments,
   so JAX reads the worker list, process id and coordinator from the TPU metadata server or the SLURM/OMPI
   environment itself. (Under SLURM, JAX then gives each process one GPU, `$SLURM_LOCALID`: one task per GPU.)
4. Otherwise: a single process, nothing started.

It must run before anything touches a JAX backend (`jax.devices()`, any array): JAX refuses to go multi-process
afterwards. On CPU, cross-process collectives go through gloo (`jax_cpu_collectives_implementation`), set here
before the backend starts (`ZEROGR_CPU_COLLECTIVES=mpi` picks MPI instead).
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import logging
import math
import os
import pathlib
from typing import Any, Callable, Mapping, Sequence, TypeVar

import jax
import numpy as np

from zerogr_jax import sharding as shd

log = logging.getLogger(__name__)

ENV_MODE = "ZEROGR_DISTRIBUTED"  # "auto" | "off" (unset: detect)
ENV_COORDINATOR = "ZEROGR_COORDINATOR"  # "host:port" of process 0
ENV_NUM_PROCESSES = "ZEROGR_NUM_PROCESSES"
ENV_PROCESS_ID = "ZEROGR_PROCESS_ID"
ENV_LOCAL_DEVICE_IDS = "ZEROGR_LOCAL_DEVICE_IDS"  # "0,1": the accelerators this process drives
ENV_CPU_COLLECTIVES = "ZEROGR_CPU_COLLECTIVES"  # "gloo" (default) | "mpi"
ENV_INIT_TIMEOUT = "ZEROGR_INIT_TIMEOUT_S"  # seconds to wait for every process to join (default 300)

_GOOGLE_PCI_VENDOR = "0x1ae0"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Explicit coordinates of this process; all None = let JAX (or nothing) decide."""

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: tuple[int, ...] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "DistributedConfig":
        def integer(name: str) -> int | None:
            value = env.get(name, "").strip()
            if not value:
                return None
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"${name}={value!r}: expected an integer") from None

        ids = env.get(ENV_LOCAL_DEVICE_IDS, "").strip()
        try:
            local = tuple(int(x) for x in ids.split(",")) if ids else None
        except ValueError:
            raise ValueError(f"${ENV_LOCAL_DEVICE_IDS}={ids!r}: expected comma-separated integers") from None
        return cls(env.get(ENV_COORDINATOR) or None, integer(ENV_NUM_PROCESSES), integer(ENV_PROCESS_ID), local)

    def merged_over(self, other: "DistributedConfig") -> "DistributedConfig":
        """Fields of `self`, falling back to `other`'s where unset."""
        return DistributedConfig(*(a if a is not None else b for a, b in
                                   zip(dataclasses.astuple(self), dataclasses.astuple(other))))


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    process_index: int
    process_count: int
    how: str  # "single" | "explicit" | "cluster:<name>" | "already"


def detect_cluster(env: Mapping[str, str] = os.environ) -> str | None:
    """The managed multi-process environment JAX can bootstrap from by itself, if any (cheap: no network)."""
    mode = env.get(ENV_MODE, "").strip().lower()
    if mode == "auto":
        return "auto"
    slurm_vars = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(v in env for v in slurm_vars) and int(env["SLURM_NTASKS"]) > 1:
        return "slurm"  # inside an `srun` step (plain `sbatch` shells lack SLURM_STEP_NODELIST)
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "ompi"
    if _on_cloud_tpu_vm():
        return "cloud_tpu"  # one host or many: JAX asks the metadata server for the worker list
    return None


def _on_cloud_tpu_vm() -> bool:
    """TPU chips on this host's PCI bus and libtpu installed (what JAX itself checks before using the TPU)."""
    if importlib.util.find_spec("libtpu") is None and not os.environ.get("TPU_LIBRARY_PATH"):
        return False
    try:
        from jax._src import hardware_utils  # the chip table lives only there

        return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
    except Exception:  # a private module: if it moved, fall back to the PCI vendor id (gVNIC shares it)
        for vendor in glob.glob("/sys/bus/pci/devices/*/vendor"):
            if pathlib.Path(vendor).read_text().strip() == _GOOGLE_PCI_VENDOR:
                return True
        return False


def _use_cpu_collectives(env: Mapping[str, str]) -> None:
    impl = env.get(ENV_CPU_COLLECTIVES) or env.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION") or "gloo"
    if "jax_cpu_collectives_implementation" not in jax.config.values:
        raise RuntimeError("this jax has no jax_cpu_collectives_implementation option; multi-process CPU runs "
                           "need jax >= 0.4.27")
    jax.config.update("jax_cpu_collectives_implementation", impl)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None, *,
               env: Mapping[str, str] = os.environ) -> ProcessInfo:
    """Starts JAX's multi-process runtime when this process is one of several (see the module docstring).

    Idempotent: a second call returns the current process coordinates. Call it first thing in every entry point.
    """
    if jax.distributed.is_initialized():
        return ProcessInfo(jax.process_index(), jax.process_count(), "already")
    if env.get(ENV_MODE, "").strip().lower() in ("off", "0", "false"):
        return ProcessInfo(0, 1, "single")
    explicit = DistributedConfig(coordinator_address, num_processes, process_id,
                                 tuple(local_device_ids) if local_device_ids is not None else None)
    cfg = explicit.merged_over(DistributedConfig.from_env(env))
    timeout = int(env.get(ENV_INIT_TIMEOUT, "300"))

    if cfg.coordinator_address is not None or cfg.num_processes is not None:
        if cfg.num_processes == 1:
            return ProcessInfo(0, 1, "single")
        missing = [name for name, value in (("coordinator address", cfg.coordinator_address),
                                            ("number of processes", cfg.num_processes),
                                            ("process id", cfg.process_id)) if value is None]
        if missing:
            raise ValueError(f"distributed run: {', '.join(missing)} not given (set ${ENV_COORDINATOR}, "
                             f"${ENV_NUM_PROCESSES} and ${ENV_PROCESS_ID} together, or none of them)")
        if not 0 <= cfg.process_id < cfg.num_processes:
            raise ValueError(f"process id {cfg.process_id} is not in [0, {cfg.num_processes})")
        _use_cpu_collectives(env)
        # "deactivate": explicit means explicit. JAX's SLURM detection would otherwise restrict each process to GPU
        # $SLURM_LOCALID (its one-process-per-GPU assumption), wrong for one process per node.
        _start(how="explicit", coordinator_address=cfg.coordinator_address, num_processes=cfg.num_processes,
               process_id=cfg.process_id, local_device_ids=list(cfg.local_device_ids or ()) or None,
               cluster_detection_method="deactivate", initialization_timeout=timeout)
        return ProcessInfo(jax.process_index(), jax.process_count(), "explicit")

    cluster = detect_cluster(env)
    if cluster is None:
        return ProcessInfo(0, 1, "single")
    _use_cpu_collectives(env)
    _start(how=f"cluster:{cluster}", local_device_ids=list(cfg.local_device_ids or ()) or None,
           initialization_timeout=timeout)
    return ProcessInfo(jax.process_index(), jax.process_count(), f"cluster:{cluster}")


def _start(how: str, **kwargs) -> None:
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as e:
        raise RuntimeError(f"jax.distributed.initialize ({how}, {kwargs}) failed: {e}. It must run before any JAX "
                           "computation or device query in this process") from e
    log.info("jax.distributed up (%s): process %d of %d, %d local / %d global devices", how, jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())


# ---------------------------------------------------------------------------------------- process 0 and barriers

def is_main_process() -> bool:
    """True on process 0, the one that writes shared results and logs progress."""
    return jax.process_index() == 0


class _MainProcessOnly(logging.Filter):
    """Passes every record on process 0 and only warnings and errors on the others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return is_main_process() or record.levelno >= logging.WARNING


def setup_logging(level: int = logging.INFO) -> None:
    """Root logging with the process index in each line; INFO and below only from process 0.

    Call after `initialize()` (the filter reads `jax.process_index()` per record).
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s p{jax.process_index()} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_MainProcessOnly())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def barrier(name: str) -> None:
    """Blocks until every process reaches the barrier of this name (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def run_on_main(fn: Callable[[], T], name: str) -> T | None:
    """Runs `fn` on process 0 only; every process returns after it finished there, or raises if it failed.

    The outcome is broadcast from process 0 (a collective, hence also a barrier), so a failed write stops all
    processes instead of leaving the others waiting or reading a file that is not there. Returns fn's result on
    process 0 and None elsewhere.
    """
    if jax.process_count() == 1:
        return fn()
    from jax.experimental import multihost_utils

    result, error, ok = None, None, np.int32(1)
    if is_main_process():
        try:
            result = fn()
        except Exception as e:  # re-raised below, after the others have been told
            error, ok = e, np.int32(0)
    ok = int(multihost_utils.broadcast_one_to_all(ok))
    barrier(f"run_on_main:{name}")
    if error is not None:
        raise error
    if not ok:
        raise RuntimeError(f"{name}: failed on process 0 (see its log)")
    return result


def write_json_on_main(path: str | os.PathLike, obj: Any) -> None:
    """Atomic JSON write by process 0; when it returns, the file is in place for every process."""
    from zerogr_jax.atomic_files import atomic_write_json

    run_on_main(lambda: atomic_write_json(path, obj), f"write {path}")


def host_arrays(tree: Any) -> Any:
    """The full value of every (possibly sharded, multi-process) array as numpy, on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


# ------------------------------------------------------------------------------------------------------- mesh

def local_mesh(config: shd.MeshConfig = shd.MeshConfig()) -> jax.sharding.Mesh:
    """A mesh over this process's own devices only, for work each process does alone (docid and query generation
    for its shards of the corpus): no cross-process collective, so processes never wait on each other."""
    return shd.make_mesh(config, jax.local_devices())


@dataclasses.dataclass(frozen=True)
class HybridMeshConfig:
    """A (data, fsdp, tensor) mesh whose axis sizes are `ici[i] * dcn[i]`.

    `ici` lays out the devices of one granule (a TPU slice, or a process where devices carry no slice index: one
    GPU node with one process per node), `dcn` the granules. Collectives on an axis with dcn size 1 stay on the
    fast interconnect; put the data axis over DCN (it only all-reduces gradients once per step). One axis of each
    may be -1 ("the rest"): of the devices per granule for `ici`, of the granules for `dcn`.
    """

    ici: shd.MeshConfig = shd.MeshConfig()
    dcn: shd.MeshConfig = shd.MeshConfig(data=-1, fsdp=1, tensor=1)


def _granules(devices: Sequence[jax.Device]) -> tuple[list[Any], bool]:
    """(granule key per device, whether the key is the process).

    TPU devices carry the index of their slice (ICI domain); CPU and GPU devices of a multi-process run report
    slice 0 for all, so there the process is the granule (one GPU node with one process per node).
    """
    if all(d.platform == "tpu" and getattr(d, "slice_index", None) is not None for d in devices):
        return [d.slice_index for d in devices], False
    return [d.process_index for d in devices], True


def make_hybrid_mesh(config: HybridMeshConfig = HybridMeshConfig(),
                     devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """The global (data, fsdp, tensor) mesh over all processes' devices, DCN-aware when there are granules.

    With one granule (a single TPU slice or one process), or `dcn` all 1, this is `sharding.make_mesh(config.ici)`;
    otherwise `mesh_utils.create_hybrid_device_mesh` keeps each `ici` sub-mesh inside one granule.
    """
    devices = list(devices) if devices is not None else jax.devices()
    if config.dcn == shd.MeshConfig(1, 1, 1):  # granules ignored: one flat mesh
        return shd.make_mesh(config.ici, devices)
    keys, by_process = _granules(devices)
    num_granules = len(set(keys))
    per_granule = len(devices) // num_granules
    dcn_shape = config.dcn.shape(num_granules)
    if math.prod(dcn_shape) == 1:
        return shd.make_mesh(config.ici, devices)
    ici_shape = config.ici.shape(per_granule)
    from jax.experimental import mesh_utils

    grid = mesh_utils.create_hybrid_device_mesh(ici_shape, dcn_shape, devices, process_is_granule=by_process)
    auto = (jax.sharding.AxisType.Auto,) * len(shd.MESH_AXES)
    return jax.sharding.Mesh(grid, shd.MESH_AXES, axis_types=auto)
