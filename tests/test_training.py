"""Training loop: loss goes down, exact resume, checkpoint fallback to the previous good step, config checks."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil

import numpy as np
import pytest

from training_fixtures import assert_trees_equal, compilation_cache, tiny_setup  # noqa: F401 (fixture)
from zerogr_jax.training.checkpoints import CorruptCheckpointWarning
from zerogr_jax.training.loop import fit


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """20 uninterrupted steps, checkpoints at 10 and 20."""
    workdir = tmp_path_factory.mktemp("full")
    result = fit(tiny_setup(), workdir, progress=False)
    return workdir, result


def test_loss_decreases(full_run):
    _, result = full_run
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert len(losses) == 20
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses
    assert result.final_eval["eval_examples"] == 8


def test_kill_and_resume_is_bit_identical(full_run, tmp_path):
    _, full = full_run
    first = fit(tiny_setup(), tmp_path, stop_after_step=10, progress=False)
    assert int(first.state.step) == 10 and first.data_position == {"epoch": 2, "step": 2}
    resumed = fit(tiny_setup(), tmp_path, resume=True, progress=False)  # everything built afresh
    assert int(resumed.state.step) == 20
    assert_trees_equal(resumed.state, full.state)  # params, optimizer state, rng, step
    assert resumed.data_position == full.data_position
    assert [r["loss"] for r in resumed.history if "loss" in r] == \
        [r["loss"] for r in full.history if "loss" in r][10:]


def _truncate_a_file(step_dir: pathlib.Path) -> None:
    files = [p for p in step_dir.glob("state/**/*") if p.is_file() and p.stat().st_size > 64
             and "/d/" in str(p)]
    assert files
    for p in files:
        with open(p, "r+b") as f:
            f.truncate(p.stat().st_size // 2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # Orbax's reader on the bad file
@pytest.mark.parametrize("damage", ["truncated_file", "no_commit_marker"])
def test_corrupt_latest_checkpoint_falls_back_to_previous(full_run, tmp_path, damage):
    full_dir, full = full_run
    shutil.copytree(full_dir / "checkpoints", tmp_path / "checkpoints")
    latest = tmp_path / "checkpoints" / "20"
    if damage == "truncated_file":
        _truncate_a_file(latest)
    else:
        (latest / "commit_success.txt").unlink()
    with pytest.warns(CorruptCheckpointWarning, match=str(latest)):
        resumed = fit(tiny_setup(), tmp_path, resume=True, progress=False)
    assert len(resumed.rejected_checkpoints) == 1 and str(latest) in resumed.rejected_checkpoints[0]
    aside = list((tmp_path / "checkpoints.rejected").iterdir())  # moved aside, not deleted
    assert [p.name.split("-")[0] for p in aside] == ["20"]
    assert (latest / "commit_success.txt").is_file()  # step 20 saved again by the continued run
    # it went on from step 10 and reproduced the uninterrupted run
    assert [r["step"] for r in resumed.history if "loss" in r][0] == 11
    assert_trees_equal(resumed.state, full.state)


def test_resume_refuses_a_changed_config(full_run, tmp_path):
    full_dir, _ = full_run
    shutil.copytree(full_dir / "checkpoints", tmp_path / "checkpoints")
    with pytest.raises(ValueError, match="train.lr"):
        fit(tiny_setup(lr=1e-3), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="train.trainable"):  # other shapes: refused before any array is read
        fit(tiny_setup(trainable="top_layers:1"), tmp_path, resume=True, progress=False)
    assert not (tmp_path / "checkpoints.rejected").exists()  # a config mismatch is not damage: nothing moved
    with pytest.raises(FileExistsError, match="--resume"):
        fit(tiny_setup(), tmp_path, progress=False)


def test_ranking_steps_interleave_and_resume_bit_identically(tmp_path):
    """train.rank_every = 1: every second step is a ranking step over whole groups; its iterator's position is saved
    beside the docid loss's, so a run stopped and resumed equals the uninterrupted one."""
    from training_fixtures import tiny_rank_setup

    setup = lambda: tiny_rank_setup(rank_every=1, rank_batch_size=6, total_steps=12, checkpoint_every=6)
    full = fit(setup(), tmp_path / "full", progress=False)
    rows = [r for r in full.history if "loss" in r]
    assert [("rank_loss" in r) for r in rows] == [False, True] * 6
    assert full.data_position == {"epoch": 1, "step": 2, "rank": {"epoch": 0, "step": 6}}
    first = fit(setup(), tmp_path / "cut", stop_after_step=6, progress=False)
    assert first.data_position["rank"] == {"epoch": 0, "step": 3}
    resumed = fit(setup(), tmp_path / "cut", resume=True, progress=False)
    assert_trees_equal(resumed.state, full.state)
    assert resumed.data_position == full.data_position
    with pytest.raises(ValueError, match="data.negatives"):
        fit(tiny_setup(rank_every=1), tmp_path / "none", progress=False)


def test_head_ranking_steps_find_their_token_and_learn_to_order_the_groups(tmp_path):
    """train.rank_score = "head": the ranking steps train the rerank head's token (found by name in the run's
    tokenizer); on the tiny groups its pair accuracy rises from the first ranking steps to the last."""
    from training_fixtures import tiny_rank_setup

    class Vocabulary:  # the tokenizer surface the head needs
        unk_token_id, unk_token, all_special_tokens = None, None, ["<x>"]

        def convert_tokens_to_ids(self, names):
            return [{"<x>": 5}.get(n) for n in names]

    setup = lambda name: dataclasses.replace(  # noqa: E731
        tiny_rank_setup(rank_every=1, rank_batch_size=6, total_steps=40, rank_score="head", rerank_token=name,
                        checkpoint_every=100), tokenizer=Vocabulary())
    rows = [r for r in fit(setup("<x>"), tmp_path / "head", progress=False).history if "rank_loss" in r]
    assert len(rows) == 20
    first, last = np.mean([r["pair_accuracy"] for r in rows[:4]]), np.mean([r["pair_accuracy"] for r in rows[-4:]])
    assert last > first and np.mean([r["rank_loss"] for r in rows[-4:]]) < np.mean([r["rank_loss"] for r in rows[:4]])
    with pytest.raises(ValueError, match="not a single token"):
        fit(setup("<nope>"), tmp_path / "unknown", progress=False)
    with pytest.raises(ValueError, match="tokenizer"):
        fit(dataclasses.replace(setup("<x>"), tokenizer=None), tmp_path / "none", progress=False)
