"""A finished `zerogr run` work directory loaded for re-searching: the collection's judged queries and qrels, the
trained retriever (train/model), its index and trie. Shared by the experiments that re-search or rescore a trained
retriever (ablate_decoding.py, bench_search.py, prior_rescoring.py, bm25_rescoring.py)."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import typing

from zerogr_jax.data import beir, collections
from zerogr_jax.retrieval_contract import IndexData, load_index
from zerogr_jax.models.loading import Model, load_model
from zerogr_jax.retrieval.search import build_index_trie
from zerogr_jax.retrieval.trie import TrieHost


@dataclasses.dataclass
class FinishedRun:
    spec: collections.CollectionSpec
    corpus: dict  # doc id -> beir.Document (BM25 over the collection)
    queries: dict[str, str]  # judged query id -> text, in file order (the first `max_queries`)
    qrels: dict
    retriever: Model
    index: IndexData
    trie: TrieHost
    doc_ids: list[str]  # document of each trie document index

    @property
    def corpus_ids(self) -> frozenset[str]:
        return frozenset(self.corpus)

    def exact_scoring(self) -> "ExactScoring":
        """What `docid_scoring` needs to score this retriever's docids as exact search does (compact head)."""
        from zerogr_jax import tokenization
        from zerogr_jax.retrieval.docid_scoring import docid_paths
        from zerogr_jax.retrieval.search import step_model

        trie, model, params = step_model(self.retriever.cfg, self.retriever.params, self.trie)
        return ExactScoring(trie, trie.to_device(), model, params, docid_paths(trie),
                            tokenization.pad_id_of(self.retriever.tokenizer))


class ExactScoring(typing.NamedTuple):
    trie: TrieHost  # over the compact vocabulary
    device_trie: object  # trie.Trie
    model: object  # decoding.StepModel
    params: object
    paths: tuple  # docid_paths(trie)
    pad: int


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of an experiment over a finished workdir: --workdir and --collection, the docstring's first
    line as its description."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--workdir", required=True, help="a finished `zerogr run` directory: index/ and train/model")
    ap.add_argument("--collection", required=True, help="its registered collection (judged queries, qrels)")
    return ap


def load(workdir: str | pathlib.Path, collection: str, max_queries: int = 0) -> FinishedRun:
    work = pathlib.Path(workdir)
    spec = collections.get_collection(collection)
    data = beir.load_beir(collections.collection_dir(collection), spec.split)
    judged = beir.evaluation_queries(data.queries, data.qrels)
    if max_queries:
        judged = dict(list(judged.items())[:max_queries])
    retriever = load_model(str(work / "train" / "model"))
    index = load_index(work / "index")
    trie, doc_ids = build_index_trie(index, retriever.tokenizer, retriever.cfg.vocab_size)
    return FinishedRun(spec=spec, corpus=data.corpus, queries={q: v.text for q, v in judged.items()},
                       qrels={q: data.qrels[q] for q in judged}, retriever=retriever, index=index, trie=trie,
                       doc_ids=doc_ids)
