"""Deterministic, shardable batch iterator: epoch plans, per-process slices, saved positions, weights."""

from __future__ import annotations

import numpy as np
import pytest

from zerogr_jax.training.input_pipeline import BatchIterator, PipelinePosition, epoch_plan, sequential_batches
from zerogr_jax.training.pairs import Examples


def examples(n: int = 20, collections=None) -> Examples:
    rows = np.arange(n, dtype=np.int32)
    col = np.zeros(n, np.int32) if collections is None else np.asarray(collections, np.int32)
    return Examples(tokens=np.stack([rows, rows], 1), kv_mask=np.ones((n, 2), bool),
                    target_index=np.zeros((n, 1), np.int32), labels=rows[:, None].copy(),
                    label_mask=np.ones((n, 1), bool), collection=col, doc_index=rows)


def ids(batch) -> list[int]:
    return np.asarray(batch["tokens"])[:, 0].tolist()


def test_each_epoch_is_a_seeded_permutation():
    it = BatchIterator(examples(20), 4, seed=3)
    assert it.steps_per_epoch == 5
    epoch0 = [i for _ in range(5) for i in ids(next(it))]
    epoch1 = [i for _ in range(5) for i in ids(next(it))]
    assert sorted(epoch0) == sorted(epoch1) == list(range(20)) and epoch0 != epoch1
    again = BatchIterator(examples(20), 4, seed=3)
    assert [i for _ in range(5) for i in ids(next(again))] == epoch0
    assert [i for _ in range(5) for i in ids(next(BatchIterator(examples(20), 4, seed=4)))] != epoch0


def test_saved_position_resumes_the_same_stream():
    it = BatchIterator(examples(18), 4, seed=0)  # 4 steps per epoch, 2 examples dropped
    stream = [ids(next(it)) for _ in range(11)]
    fresh = BatchIterator(examples(18), 4, seed=0)
    for _ in range(6):
        next(fresh)
    state = fresh.get_state()
    assert state == {"epoch": 1, "step": 2}
    resumed = BatchIterator(examples(18), 4, seed=0, position=PipelinePosition.from_json(state))
    assert [ids(next(resumed)) for _ in range(5)] == stream[6:]


def test_process_slices_partition_the_global_batch():
    whole = BatchIterator(examples(24), 8, seed=1, process_index=0, process_count=1)
    parts = [BatchIterator(examples(24), 8, seed=1, process_index=p, process_count=4) for p in range(4)]
    for _ in range(5):
        full = ids(next(whole))
        assert [i for it in parts for i in ids(next(it))] == full
    with pytest.raises(ValueError, match="does not split"):
        BatchIterator(examples(24), 6, seed=1, process_index=0, process_count=4)


def test_collection_weights_set_epoch_multiplicity():
    col = np.array([0] * 10 + [1] * 10)
    plan = epoch_plan(col, (2.0, 0.5), seed=0, epoch=0)
    counts = np.bincount(plan, minlength=20)
    assert counts[:10].tolist() == [2] * 10
    assert counts[10:].sum() == 5 and counts[10:].max() == 1
    assert not np.array_equal(epoch_plan(col, (2.0, 0.5), 0, 1), plan)


def test_sequential_batches_cover_every_example_once_and_mask_the_fill():
    batches = list(sequential_batches(examples(10), 4))
    seen = [i for b in batches for i, m in zip(ids(b), np.asarray(b["label_mask"])[:, 0]) if m]
    assert seen == list(range(10)) and len(batches) == 3
    assert np.asarray(batches[-1]["label_mask"]).sum() == 2


def test_length_buckets_cut_padding_and_keep_every_row_and_the_resume_stream():
    n, t = 48, 32
    ex = examples(n)
    lengths = np.where(np.arange(n) % 3 == 0, 30, 6)  # a third long rows, the rest short
    ex.tokens = np.zeros((n, t), np.int32)
    ex.tokens[:, 0] = np.arange(n)
    ex.kv_mask = np.arange(t)[None, :] < lengths[:, None]
    ex.target_index = np.full((n, 1), t - 1, np.int32)  # an unused label column far right: must be cut inside
    it = BatchIterator(ex, 4, seed=0, length_buckets=2, bucket_window=6)
    assert it.widths == (8, 32)
    batches = [next(it) for _ in range(it.steps_per_epoch)]
    assert sorted(i for b in batches for i in ids(b)) == list(range(n))  # each row once per epoch
    widths = [b["tokens"].shape[1] for b in batches]
    assert set(widths) == {8, 32} and widths.count(8) >= 6  # most short rows share short batches
    for b in batches:
        assert np.asarray(b["target_index"]).max() < b["tokens"].shape[1]
        assert all(lengths[i] <= b["tokens"].shape[1] for i in ids(b))
    # a resumed iterator yields the same batches (rows and widths)
    resumed = BatchIterator(ex, 4, seed=0, length_buckets=2, bucket_window=6,
                            position=PipelinePosition(0, 5))
    for b in batches[5:]:
        r = next(resumed)
        assert ids(r) == ids(b) and r["tokens"].shape == b["tokens"].shape


def test_groups_stay_whole_in_every_batch_and_process_slice():
    """group_size G: rows [gG, (g+1)G) always travel together, each epoch visits every group once, and processes get
    whole groups; G = 1 is the plain iterator."""
    ex = examples(24)  # 8 groups of 3
    whole = BatchIterator(ex, 6, seed=2, group_size=3)
    assert whole.steps_per_epoch == 4
    epoch = [ids(next(whole)) for _ in range(4)]
    for batch in epoch:
        for start in range(0, 6, 3):
            g = batch[start:start + 3]
            assert g[0] % 3 == 0 and g == [g[0], g[0] + 1, g[0] + 2]
    assert sorted(i for b in epoch for i in b) == list(range(24))
    parts = [BatchIterator(ex, 6, seed=2, group_size=3, process_index=p, process_count=2) for p in range(2)]
    again = BatchIterator(ex, 6, seed=2, group_size=3)
    for _ in range(4):
        assert [i for it in parts for i in ids(next(it))] == ids(next(again))
    assert [ids(next(BatchIterator(ex, 4, seed=5))) for _ in range(1)] == \
        [ids(next(BatchIterator(ex, 4, seed=5, group_size=1)))]
    with pytest.raises(ValueError, match="whole groups"):
        BatchIterator(ex, 6, seed=2, group_size=3, process_index=0, process_count=4)
    with pytest.raises(ValueError, match="length buckets"):
        BatchIterator(ex, 6, seed=2, group_size=3, length_buckets=2)
