"""Experiment configs: Python config files, typed dotted overrides, JSON round trip."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from zerogr_jax import config as config_lib
from zerogr_jax.training import step as tr

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_overrides_are_parsed_against_field_types():
    cfg = config_lib.override(tr.ExperimentConfig(), [
        "train.lr=1e-4", "train.total_steps=1_000", "train.schedule=cosine", "model.docid_head=true",
        "mesh.data=2", "data.weights=1,0.5", "train.trainable=top_layers:4"])
    assert cfg.train.lr == 1e-4 and cfg.train.total_steps == 1000 and cfg.train.schedule == "cosine"
    assert cfg.model.docid_head is True and cfg.mesh.data == 2 and cfg.data.weights == (1.0, 0.5)
    assert cfg.train.trainable == "top_layers:4"
    assert tr.ExperimentConfig().train.lr == 5e-5  # the default is untouched (frozen dataclasses)


@pytest.mark.parametrize("assignment, message", [
    ("train.lrr=1", "no field 'lrr'"), ("train.lr=fast", "expected float"), ("train.schedule=linear", "one of"),
    ("train=3", "is a section"), ("model.docid_head=maybe", "boolean"), ("train.lr", "key=value")])
def test_bad_overrides_name_the_key(assignment, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.override(tr.ExperimentConfig(), [assignment])


def test_json_round_trip():
    cfg = config_lib.override(tr.ExperimentConfig(), ["data.weights=2,1", "train.dtype=bfloat16"])
    assert config_lib.from_dict(tr.ExperimentConfig, config_lib.to_dict(cfg)) == cfg


@pytest.mark.parametrize("name", ["cpu_small", "cpu_full_depth", "cpu_top12", "paper_1b"])
def test_experiment_configs_construct(name):
    cfg = config_lib.load_config_file(REPO / "experiments" / "configs" / f"{name}.py")
    assert isinstance(cfg, tr.ExperimentConfig)
    tr.parse_trainable(cfg.train.trainable, 30)  # well-formed
    assert config_lib.from_dict(tr.ExperimentConfig, config_lib.to_dict(cfg)) == cfg


def test_rerank_head_recipe_resolves_to_the_measured_settings():
    """experiments/configs/rerank_head.py (RESULTS.md, sessions 13, 15, 17 and 19): the main job's pipeline with four
    spans per document, its train overrides valid on the named train config, the head's search depth and mix."""
    from zerogr_jax.pipeline import PipelineConfig

    recipe = config_lib.load_config_file(REPO / "experiments" / "configs" / "rerank_head.py")
    assert isinstance(recipe, PipelineConfig) and recipe.search.prior_weight == 0.5
    assert (recipe.search.rerank_depth, recipe.search.rerank_mix) == (300, "zsum")
    main_job = config_lib.load_config_file(REPO / "experiments" / "configs" / "demo_med.py")
    assert recipe.index == dataclasses.replace(main_job.index, span_queries=4)  # rule G: only the spans differ
    train = config_lib.override(config_lib.load_config_file(REPO / recipe.train_config), list(recipe.train_overrides))
    assert (train.train.rank_score, train.train.rank_every, train.data.negatives) == ("head", 1, 7)


def test_cpu_top12_is_the_levers_recipe():
    """The named recipe and the overrides its recorded runs passed (levers.py's variant) resolve to one config."""
    import sys

    sys.path.insert(0, str(REPO / "experiments"))
    import levers

    configs = REPO / "experiments" / "configs"
    train_config, overrides = None, []
    for item in levers.VARIANTS["full_top12_e3_lr1e3"][1]:
        key, _, value = item.partition("=")
        if key == "train_config":
            train_config = value
        elif key == "train_overrides":
            overrides = value.split(",")
    by_overrides = config_lib.override(config_lib.load_config_file(REPO / train_config), overrides)
    named = config_lib.load_config_file(configs / "cpu_top12.py")
    assert named == by_overrides
    assert named.train.trainable == "top_layers:12" and named.model.num_layers == 0


def test_pipeline_train_overrides_stay_over_a_swapped_train_config():
    """The zero-shot recipe's `train.epochs=1` applies to whatever train config the command line swaps in (and the
    pipeline says so); `train_overrides=` clears it, and then the pipeline trains cpu_top12 exactly."""
    from zerogr_jax import pipeline

    top12 = str(REPO / "experiments" / "configs" / "cpu_top12.py")
    named = config_lib.load_config_file(top12)
    recipe = config_lib.load_config_file(REPO / "experiments" / "configs" / "zero_shot_cpu.py")
    kept = config_lib.override(recipe, [f"train_config={top12}"])
    kept_exp, replaced = pipeline.train_experiment(kept)
    assert kept_exp.train.epochs == 1.0 and replaced == [("train.epochs", 3.0, 1.0)]
    cleared = config_lib.override(recipe, [f"train_config={top12}", "train_overrides="])
    assert cleared.train_overrides == () and pipeline.train_experiment(cleared) == (named, [])
    assert config_lib.changes(named, ["train.epochs=3", "train.lr=1e-3"]) == []
    with pytest.raises(config_lib.ConfigError, match="no field 'epoch'"):
        config_lib.changes(named, ["train.epoch=3"])


def test_paper_1b_state_builds_abstractly():
    """The 1B recipe's train state (params + AdamW moments) has the right size and shards, without any weights."""
    import jax

    from zerogr_jax import sharding as shd
    from zerogr_jax.models import llama

    module = {}
    exec((REPO / "experiments" / "configs" / "paper_1b.py").read_text(), module)
    exp, shape = module["get_config"](), module["LLAMA_3_2_1B"]
    abstract = llama.abstract_params(shape)
    n = sum(a.size for a in jax.tree.leaves(abstract))
    assert n == shape.num_params() and 1.23e9 < n < 1.24e9
    tx = tr.make_optimizer(exp.train, 1000)
    mesh = shd.make_mesh(exp.mesh, jax.devices()[:1])
    state, shardings = tr.state_shardings(mesh, abstract, llama.param_logical_axes(shape), tx)
    moments = sum(a.size for a in jax.tree.leaves(state.opt_state))
    assert moments >= 2 * n  # mu and nu for every weight
    assert jax.tree.structure(shardings) == jax.tree.structure(state)


def test_settings_are_checked_when_the_config_is_loaded(tmp_path):
    """A typo in a strategy, docid scheme or baseline is an error at load time, not after indexing and training."""
    from zerogr_jax import pipeline

    base = config_lib.load_config_file(REPO / "experiments" / "configs" / "demo_med.py")
    for key, bad, message in (("search.strategy", "beam_search", "must be one of"),
                              ("index.docid_scheme", "tfidf", "must be one of"),
                              ("fusion", "bm26", "unknown baselines"), ("baselines", "bm25,splade", "unknown"),
                              ("search.num_docids", "0", ">= 1")):
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.override(base, [f"{key}={bad}"])
    path = tmp_path / "typo.py"
    path.write_text("from zerogr_jax.pipeline import PipelineConfig\nfrom zerogr_jax.retrieval.search import SearchConfig\n\n"
                    "def get_config():\n    return PipelineConfig(search=SearchConfig(strategy='beem'))\n")
    with pytest.raises(config_lib.ConfigError, match=r"search.strategy='beem': must be one of"):
        config_lib.load_config_file(path)
    assert isinstance(config_lib.override(base, ["search.strategy=beam"]), pipeline.PipelineConfig)
    # the main job ranks with the docid prior, which needs a scored pool (beam / exact): the error says what to do
    with pytest.raises(config_lib.ConfigError, match="prior_weight=0"):
        config_lib.override(base, ["search.strategy=greedy"])
    for order in (["search.strategy=greedy", "search.prior_weight=0"], ["search.prior_weight=0", "search.strategy=greedy"]):
        assert config_lib.override(base, order).search.strategy == "greedy"  # either order on the command line
    # the last word on a key wins, also over an assignment that had to wait for another
    assert config_lib.override(base, ["search.strategy=greedy", "search.strategy=exact"]).search.strategy == "exact"


def test_index_settings_are_declared_once():
    """`zerogr index` flags, the builder's IndexConfig and the pipeline's IndexStage share one declaration and one
    default per setting (`index_builder.IndexSettings`); the LM sampling settings are reachable from both."""
    import argparse
    import dataclasses

    from zerogr_jax import pipeline
    from zerogr_jax.indexing import index_builder as ib

    settings = {f.name: f.default for f in dataclasses.fields(ib.IndexSettings)}
    args = vars(ib.add_index_arguments(argparse.ArgumentParser()).parse_args(["--out", "x"]))
    assert {k: args[k] for k in settings} == settings
    assert pipeline.IndexStage().settings() == settings == ib.IndexConfig(instruction="x").settings()
    cfg = config_lib.override(pipeline.PipelineConfig(), ["index.query_temperature=0.7", "index.query_top_p=0.9"])
    assert (cfg.index.query_temperature, cfg.index.query_top_p) == (0.7, 0.9)
    flags = ib.add_index_arguments(argparse.ArgumentParser()).parse_args(
        ["--out", "x", "--query-temperature", "0.7", "--title-queries"])
    assert flags.query_temperature == 0.7 and flags.title_queries is True


def test_stage_configs_are_typed_and_checked():
    # `zerogr train` is TrainStageConfig read from the command line: its argv() reads back to the same config
    from zerogr_jax.retrieval.search import SearchStageConfig
    from zerogr_jax.training.loop import TrainStageConfig

    stage = TrainStageConfig(config="c.py", indexes=("a", "b"), workdir="w", overrides=("train.lr=1e-4",),
                             resume=True, progress=False)
    assert TrainStageConfig.from_argv(stage.argv()) == stage
    plain = TrainStageConfig(config="c.py", indexes=("a",), workdir="w")
    assert TrainStageConfig.from_argv(plain.argv()) == plain
    with pytest.raises(config_lib.ConfigError, match="index"):
        TrainStageConfig(config="c.py", indexes=(), workdir="w")
    with pytest.raises(config_lib.ConfigError, match="one of them"):
        SearchStageConfig(index="i", retriever="m", out="r.trec", collection="med", queries="q.jsonl")
    with pytest.raises(config_lib.ConfigError, match="one of them"):
        SearchStageConfig(index="i", retriever="m", out="r.trec")
