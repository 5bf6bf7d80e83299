"""A trained retriever that answers free text: the library face of the search stage.

    import zerogr_jax as zg
    retriever = zg.Retriever.load("runs/demo_med")            # a `zerogr run` workdir: index/ + train/model
    for hit in retriever.search(["how do heated wings flutter"], k=10)[0]:
        print(hit.rank, hit.doc_id, hit.score, hit.title)

`Retriever.load` takes a pipeline workdir (its `results.json`, when there, gives the search settings the run used)
or an explicit index directory and model. `search` runs exactly the search stage's code (`search.search`: the
training prompt, the index's trie, the chosen decoding strategy), so a query gets the ranking the stage gives it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Sequence

from zerogr_jax.retrieval.search import SearchConfig


@dataclasses.dataclass(frozen=True)
class Hit:
    doc_id: str
    rank: int  # 0-based rank of the docid that produced it (documents sharing a docid share a rank)
    score: float  # 1 / (rank + 1), as in the run files
    docid: str  # the keyword identifier the retriever generated
    title: str  # from the indexed corpus ("" when the corpus is not at hand or the document has none)


class Retriever:
    def __init__(self, model, index, config: SearchConfig = SearchConfig(), titles: dict[str, str] | None = None):
        from zerogr_jax.retrieval.search import build_index_trie

        self.model, self.index, self.config, self.titles = model, index, config, titles or {}
        self.trie, self.doc_ids = build_index_trie(index, model.tokenizer, model.cfg.vocab_size)

    @classmethod
    def load(cls, workdir: str | os.PathLike | None = None, *, index: str | os.PathLike | None = None,
             model: str | os.PathLike | None = None, config: SearchConfig | None = None,
             read_titles: bool = True) -> "Retriever":
        """From a `zerogr run` workdir (index/, train/model, results.json) or an explicit index and model."""
        from zerogr_jax.retrieval_contract import load_index
        from zerogr_jax.models.loading import load_model

        work = pathlib.Path(workdir) if workdir is not None else None
        if work is None and (index is None or model is None):
            raise ValueError("Retriever.load needs a workdir, or both index= and model=")
        index_dir = pathlib.Path(index) if index is not None else work / "index"
        model_dir = pathlib.Path(model) if model is not None else work / "train" / "model"
        if config is None:
            config = SearchConfig()
            results = work / "results.json" if work is not None else None
            if results is not None and results.is_file():
                saved = json.loads(results.read_text("utf-8")).get("config", {}).get("search", {})
                known = {f.name for f in dataclasses.fields(SearchConfig)}
                config = SearchConfig(**{k: v for k, v in saved.items() if k in known})
        data = load_index(index_dir)
        titles = _corpus_titles(index_dir) if read_titles else {}
        return cls(load_model(str(model_dir)), data, config, titles)

    def search(self, queries: Sequence[str], k: int | None = None, **overrides) -> list[list[Hit]]:
        """The ranked hits of each query (K = `k` docids; `overrides` replace other SearchConfig fields)."""
        from zerogr_jax.retrieval.search import search

        cfg = dataclasses.replace(self.config, **({"num_docids": k} if k else {}), **overrides)
        keys = [str(i) for i in range(len(queries))]
        run = search(self.model.cfg, self.model.params, self.model.tokenizer, self.trie, self.doc_ids,
                     dict(zip(keys, queries)), self.index.instruction, cfg, progress=False)
        return [[Hit(d, round(1 / s) - 1, s, self.index.docids[d], self.titles.get(d, ""))
                 for d, s in run[key].items()] for key in keys]


def _corpus_titles(index_dir: pathlib.Path) -> dict[str, str]:
    """Titles of the indexed corpus, read from the path its manifest names ({} when it is not there)."""
    from zerogr_jax.data.beir import iter_corpus

    manifest = json.loads((index_dir / "manifest.json").read_text("utf-8"))
    path = manifest.get("corpus", {}).get("path")
    if not path or not pathlib.Path(path).exists():
        return {}
    return {d.doc_id: d.title for d in iter_corpus(path, on_invalid=manifest["corpus"].get("on_invalid", "error"))}
