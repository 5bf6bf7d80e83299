"""Orbax checkpoints of a training run: train state, data-iterator position and config, with a safe resume.

Each saved step is one Orbax composite checkpoint with three items:

  state   the `TrainState` (step, trainable params, optimizer state, rng key data), arrays restored straight into
          their target shardings through an abstract `ShapeDtypeStruct` tree;
  data    the input pipeline position (JSON);
  config  the experiment config and the data fingerprints (JSON), checked on resume.

Saves are asynchronous (the step loop continues while the arrays are written); `save_interval_steps` and
`max_to_keep` are Orbax's own policies.

Resume walks the steps from the newest down. A step directory that lacks Orbax's commit marker
(`commit_success.txt`, written last, once all items are complete) or that fails to restore (a truncated or corrupt
file) is reported with a `CorruptCheckpointWarning` naming the directory, moved aside to `<dir>.rejected/` (kept,
never deleted, so nothing is lost and a later save of the same step number does not collide), and the previous
step is tried.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time
import warnings
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

COMMIT_MARKER = "commit_success.txt"
ITEMS = ("state", "data", "config")


class CorruptCheckpointWarning(UserWarning):
    """A checkpoint step directory was incomplete or unreadable and was skipped."""


class CheckpointRestoreError(RuntimeError):
    """No saved step could be restored."""


class TrainCheckpoints:
    def __init__(self, directory: str | os.PathLike, *, save_every: int, keep: int, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        self.save_every = save_every
        self.keep = keep
        self.async_save = async_save
        self.rejected: list[str] = []  # directories moved aside during this session, with the reason
        self._manager = self._make_manager()

    def _make_manager(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(save_interval_steps=self.save_every, max_to_keep=self.keep,
                                               enable_async_checkpointing=self.async_save, create=True)
        return ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_position: dict, config: dict, force: bool = False) -> bool:
        """Saves when the interval policy says so (or `force`); returns whether a save started."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position),
                                  config=ocp.args.JsonSave(config))
        return self._manager.save(step, args=args, force=force)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def _problem(self, step: int) -> str | None:
        step_dir = self.directory / str(step)
        if not (step_dir / COMMIT_MARKER).is_file():
            return f"no {COMMIT_MARKER} (the save did not finish)"
        for item in ITEMS:
            if not (step_dir / item).is_dir():
                return f"item {item!r} is missing"
        return None

    def _reject(self, step: int, reason: str) -> None:
        step_dir = self.directory / str(step)
        aside = self.directory.with_name(self.directory.name + ".rejected") / f"{step}-{int(time.time())}"
        if jax.process_index() == 0:  # one process moves it (shared filesystem); the others wait for that
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(step_dir), str(aside))
        if jax.process_count() > 1:
            ocp.multihost.sync_global_processes(f"zerogr_reject_checkpoint_{step}")
        message = f"checkpoint {step_dir} is unusable: {reason}; moved to {aside}, trying the previous step"
        self.rejected.append(message)
        warnings.warn(message, CorruptCheckpointWarning, stacklevel=3)
        self._manager.reload()  # forget the moved step

    def restore_latest(self, abstract_state: Any, check_config: Callable[[dict], None] | None = None
                       ) -> tuple[int, Any, dict, dict] | None:
        """(step, state, data position, config) of the newest good step, or None if nothing was ever saved.

        `abstract_state` is a tree of `jax.ShapeDtypeStruct` with shardings (`training.with_shardings`).
        `check_config(saved_config)` runs before the arrays are read; what it raises (e.g. "the run's config
        changed") propagates and moves nothing. Raises `CheckpointRestoreError` when steps exist but none restores.
        """
        tried = []
        for step in reversed(self.all_steps()):
            problem = self._problem(step)
            if problem is None:
                try:
                    config = dict(self._manager.restore(step, args=ocp.args.Composite(
                        config=ocp.args.JsonRestore()))["config"])
                except Exception as e:  # noqa: BLE001 (an unreadable config item is a damaged checkpoint)
                    problem = f"config item unreadable ({type(e).__name__}: {str(e)[:300]})"
            if problem is None:
                if check_config is not None:
                    check_config(config)
                try:
                    out = self._manager.restore(step, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
                    return step, out["state"], dict(out["data"]), config
                except Exception as e:  # noqa: BLE001 (Orbax/TensorStore raise assorted types for damaged files)
                    problem = f"restore failed ({type(e).__name__}: {str(e)[:300]})"
            tried.append(f"{self.directory / str(step)}: {problem}")
            self._reject(step, problem)
        if tried:
            raise CheckpointRestoreError("no checkpoint could be restored:\n  " + "\n  ".join(tried))
        return None
