"""Deterministic, shardable batches over in-memory `Examples`, with a position that is saved and restored.

Epoch e visits a fixed plan of example rows: each collection contributes its rows `floor(w)` times plus a random
`frac(w)` share (w = its weight), shuffled by a numpy PCG64 generator seeded with (seed, e). The plan depends only on
(seed, epoch, data), so the position `(epoch, step)` is all a resume needs, and every process derives the same plan
and reads only its own slice of each global batch (`process_index` of `process_count`). The global batch is
assembled with `jax.make_array_from_process_local_data` onto the batch sharding; the last partial batch of an epoch
is dropped so every step has the same batch size. Optional length bucketing (`length_buckets`) groups rows of similar
length and cuts each batch to one of a few widths; it is part of the same deterministic plan.

Why not grain (MaxText's loader): grain earns its place where records stream from ArrayRecord files too large for
memory, decoded by worker processes, with an iterator state to checkpoint. Here the rows are small numpy arrays
already in memory (a 10,000-document index with 32 rows per document is ~0.2 GB of int32 tokens), the epoch plan is
a pure function of (seed, epoch, data) and the whole iterator state is two integers saved in the Orbax checkpoint.
Moving the plan onto grain's shuffle/batch would change every batch's rows (breaking bit-exact continuity with
checkpoints written before), and wrapping this plan as a grain `MapDataset` source would add a dependency that does
no work. Revisit when a corpus's rows stop fitting in host memory: the TFDS builder (`data/tfds_builder.py`)
already writes ArrayRecord, which grain reads.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import jax
import numpy as np

from zerogr_jax.training.pairs import Examples, batch_keys


@dataclasses.dataclass(frozen=True)
class PipelinePosition:
    """Where the iterator is: the next batch is step `step` of epoch `epoch`."""

    epoch: int = 0
    step: int = 0

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "step": self.step}

    @classmethod
    def from_json(cls, data: dict) -> "PipelinePosition":
        return cls(epoch=int(data["epoch"]), step=int(data["step"]))


def epoch_plan(collection: np.ndarray, weights: Sequence[float], seed: int, epoch: int) -> np.ndarray:
    """Example rows of one epoch, in visiting order: [E] int64."""
    rng = np.random.Generator(np.random.PCG64([seed, epoch]))
    parts = []
    for c, w in enumerate(weights):
        if w < 0:
            raise ValueError(f"collection {c}: negative weight {w}")
        rows = np.flatnonzero(collection == c)
        whole, frac = int(np.floor(w)), float(w - np.floor(w))
        parts += [rows] * whole
        extra = int(round(frac * len(rows)))
        if extra:
            parts.append(np.sort(rng.choice(rows, size=extra, replace=False)))
    plan = np.concatenate(parts) if parts else np.zeros((0,), np.int64)
    return plan[rng.permutation(len(plan))]


def bucket_widths(lengths: np.ndarray, max_width: int, num_buckets: int, multiple: int = 8) -> tuple[int, ...]:
    """Row widths for length bucketing: the 1/k, 2/k, ... quantiles of the row lengths, rounded up to `multiple`."""
    if num_buckets <= 1 or not len(lengths):
        return (max_width,)
    qs = np.quantile(lengths, np.arange(1, num_buckets + 1) / num_buckets)
    widths = {min(max_width, int(-(-int(np.ceil(q)) // multiple) * multiple)) for q in qs}
    return tuple(sorted(widths | {max_width}))


class BatchIterator:
    """Yields dicts of global jax arrays (`BATCH_KEYS`), each `[global_batch, ...]`, sharded on the batch axis.

    With `length_buckets` k > 1, each run of `bucket_window` batches of the epoch plan is sorted by row length before
    it is cut into batches, the batches are shuffled (PCG64 from (seed, epoch, 1)), and each batch is cut to the
    smallest of k widths (`bucket_widths`) that holds its longest row: less padding for k compiled shapes.

    With `group_size` G > 1 the examples are groups of G consecutive rows (a ranking group: a query's positive and
    its negatives) that stay together: the epoch plan shuffles groups, a batch is global_batch / G whole groups, and
    each process's slice holds whole groups.
    """

    def __init__(self, examples: Examples, global_batch: int, *, seed: int, weights: Sequence[float] | None = None,
                 shardings: dict[str, jax.sharding.Sharding] | None = None,
                 position: PipelinePosition = PipelinePosition(), process_index: int | None = None,
                 process_count: int | None = None, length_buckets: int = 1, bucket_window: int = 32,
                 group_size: int = 1):
        self.examples = examples
        self.global_batch = global_batch
        self.seed = seed
        self.group_size = group_size
        if group_size > 1 and (len(examples) % group_size or length_buckets > 1):
            raise ValueError(f"groups of {group_size}: {len(examples)} rows must be whole groups, and length "
                             "buckets (which sort rows) cannot keep groups together")
        num_collections = int(examples.collection.max()) + 1 if len(examples) else 1
        self.weights = tuple(weights) if weights else (1.0,) * num_collections
        if len(self.weights) < num_collections:
            raise ValueError(f"{len(self.weights)} weights for {num_collections} collections")
        self.shardings = shardings
        self.process_index = jax.process_index() if process_index is None else process_index
        self.process_count = jax.process_count() if process_count is None else process_count
        if global_batch % (self.process_count * group_size):
            raise ValueError(f"global batch {global_batch} does not split over {self.process_count} processes"
                             + (f" in whole groups of {group_size}" if group_size > 1 else ""))
        self.position = position
        self.lengths = examples.kv_mask.sum(1)  # [N] real tokens per row
        self.widths = bucket_widths(self.lengths, examples.tokens.shape[1], length_buckets)
        self.bucket_window = bucket_window
        self._epoch, self._batches = None, None
        if self.steps_per_epoch == 0:
            raise ValueError(f"an epoch has fewer examples than one batch of {global_batch}")

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """Rows of every global batch of the epoch, in order: [steps_per_epoch, global_batch]."""
        if self._epoch != epoch:
            g = self.group_size
            plan = epoch_plan(self.examples.collection[::g], self.weights, self.seed, epoch)  # groups (rows if g = 1)
            if g > 1:
                plan = (plan[:, None] * g + np.arange(g)[None, :]).ravel()
            n = len(plan) // self.global_batch
            batches = plan[:n * self.global_batch].reshape(n, self.global_batch)
            if len(self.widths) > 1:
                rng = np.random.Generator(np.random.PCG64([self.seed, epoch, 1]))
                sorted_runs = []
                for start in range(0, n, self.bucket_window):
                    run = batches[start:start + self.bucket_window].ravel()
                    run = run[np.argsort(self.lengths[run], kind="stable")]
                    sorted_runs.append(run.reshape(-1, self.global_batch))
                batches = np.concatenate(sorted_runs)[rng.permutation(n)]
            self._epoch, self._batches = epoch, batches
        return self._batches

    @property
    def steps_per_epoch(self) -> int:
        return len(self.epoch_batches(self.position.epoch))

    def batch_width(self, position: PipelinePosition) -> int:
        longest = int(self.lengths[self.epoch_batches(position.epoch)[position.step]].max())
        return next(w for w in self.widths if w >= longest)

    def local_rows(self, position: PipelinePosition) -> np.ndarray:
        """Rows of this process's slice of the batch at `position`: [global_batch / process_count]."""
        rows = self.epoch_batches(position.epoch)[position.step]
        local = self.global_batch // self.process_count
        return rows[self.process_index * local:(self.process_index + 1) * local]

    def __iter__(self) -> Iterator[dict[str, jax.Array]]:
        return self

    def __next__(self) -> dict[str, jax.Array]:
        if self.position.step >= self.steps_per_epoch:
            self.position = PipelinePosition(self.position.epoch + 1, 0)
        local = _cut_width(self.examples.as_batch(self.local_rows(self.position)), self.batch_width(self.position))
        self.position = PipelinePosition(self.position.epoch, self.position.step + 1)
        if self.shardings is None:
            return {k: jax.numpy.asarray(v) for k, v in local.items()}
        return {k: jax.make_array_from_process_local_data(self.shardings[k], v,
                                                          (self.global_batch,) + v.shape[1:])
                for k, v in local.items()}

    def get_state(self) -> dict:
        return self.position.to_json()

    def set_state(self, state: dict) -> None:
        self.position = PipelinePosition.from_json(state)


def _cut_width(batch: dict[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
    """The batch with rows cut to `width` columns (all real tokens fit; unused label columns point inside)."""
    if width == batch["tokens"].shape[1]:
        return batch
    cut = {**batch, "tokens": batch["tokens"][:, :width], "kv_mask": batch["kv_mask"][:, :width],
           "target_index": np.minimum(batch["target_index"], width - 1)}
    if "features" in batch:
        cut["features"] = batch["features"][:, :width]
    return cut


def batch_shardings(mesh: jax.sharding.Mesh, with_features: bool = False, with_prefix: bool = False
                    ) -> dict[str, jax.sharding.Sharding]:
    """Batch-axis shardings of every batch array ([batch, length], `collection` [batch], with the frozen layers'
    outputs cached `features` [batch, length, embed], with ranking groups' prefixes `prefix(_mask)` [batch, P])."""
    from zerogr_jax.sharding import batch_sharding
    return {k: batch_sharding(mesh, {"collection": 1, "features": 3}.get(k, 2))
            for k in batch_keys(with_features, with_prefix)}


def sequential_batches(examples: Examples, global_batch: int, *,
                       shardings: dict[str, jax.sharding.Sharding] | None = None, max_examples: int = 0,
                       process_index: int | None = None, process_count: int | None = None,
                       widths: Sequence[int] = ()) -> Iterator[dict[str, jax.Array]]:
    """Every example once, in order, in fixed-shape batches (for evaluation).

    The last batch is filled up with copies of row 0 whose `label_mask` is all False, so they count for nothing.
    With `widths` (ascending, the last >= the longest row), each batch is cut to the smallest width that holds the
    longest row of the whole global batch (so every process cuts alike): feed length-sorted examples for less padding.
    """
    n = min(len(examples), max_examples) if max_examples else len(examples)
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    local = global_batch // process_count
    lengths = examples.kv_mask.sum(1) if widths else None
    for start in range(0, n, global_batch):
        rows = np.arange(start + process_index * local, start + (process_index + 1) * local)
        real = rows < n
        batch = examples.as_batch(np.where(real, rows, 0))
        batch["label_mask"] = batch["label_mask"] & real[:, None]
        if widths:
            longest = int(lengths[start:min(start + global_batch, n)].max())
            batch = _cut_width(batch, next(w for w in widths if w >= longest))
        if shardings is None:
            yield {k: jax.numpy.asarray(v) for k, v in batch.items()}
        else:
            yield {k: jax.make_array_from_process_local_data(shardings[k], v, (global_batch,) + v.shape[1:])
                   for k, v in batch.items()}
