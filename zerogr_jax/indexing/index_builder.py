"""The resumable, sharded corpus indexer: docids, pseudo-queries, the trie and a manifest in one directory.

    INDEX_DIR/
      shards/docids-00003.jsonl      stage 1 output of shard 3 (docid per document, before collision resolution)
      shards/docids-00003.done.json  its marker: config fingerprint, input hash, output sha256, counts
      shards/queries-00003.jsonl     stage 2 output (pseudo-queries and the document-as-query row)
      shards/queries-00003.done.json
      docids.jsonl                   {"doc_id", "docid", "docid_raw", "changes"} per document, corpus order
      queries.jsonl                  {"doc_id", "query", "kind": "pseudo" | "doc_as_query" | "span" | "title" |
                                      "keyphrase"}
      trie.npz                       the docid prefix tree (when a docid tokenizer is given)
      manifest.json                  model, prompts, config, counts, file hashes, versions

The corpus is streamed (never held in memory) and cut into shards of `shard_size` documents in corpus order.
A shard's output is written atomically, then its marker; a rerun skips every shard whose marker matches the current
config fingerprint, the shard's input hash and its output file's sha256, and redoes the rest (missing, partial or
corrupt). Every generation seed is derived from (seed, stage, shard, batch), so a killed-and-resumed run, or a
run split over processes (process p does the shards with shard % process_count == p), writes the same bytes as one
uninterrupted run. Collision resolution is global, so it happens in the merge (process 0, after all shards).
Run-specific facts (timestamps, throughput, how many shards were resumed) sit under the manifest's "run" key, which
`manifest_sha256` leaves out.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import pathlib
import platform
import sys
import time
from typing import Callable, Iterable, Iterator, Sequence

from zerogr_jax.atomic_files import atomic_open, atomic_write_json
from zerogr_jax.data.beir import Document, ReadStats, iter_corpus
from zerogr_jax.indexing.docids import DocidScheme, docid_to_documents, make_scheme, resolve_collisions
from zerogr_jax.indexing.generator_protocol import TextGenerator
from zerogr_jax.indexing.queries import (DROP_REASONS, QueryFilter, QueryPrompt, doc_as_query, document_spans,
                                         generate_pseudo_queries, keep_pointing_back, keyphrase_queries,
                                         title_query)
from zerogr_jax.indexing.seeds import STAGE_DOCIDS, STAGE_QUERIES, derive_seed
from zerogr_jax.indexing.terms import DocumentTerms, TermStats

logger = logging.getLogger(__name__)

FORMAT = "zerogr-index/1"
STAGES = {"docids": STAGE_DOCIDS, "queries": STAGE_QUERIES}
ROW_SOURCES = ("doc_as_query", "span", "title", "keyphrase")  # training rows that need no LM, counted per kind

# A corpus source streams the documents, in a fixed order, each time it is called; it counts what its reader
# skipped into the ReadStats it is given.
CorpusSource = Callable[[ReadStats], Iterable[Document]]


class IncompleteIndexError(RuntimeError):
    """The merge found shards that no process has finished yet."""


@dataclasses.dataclass(frozen=True)
class IndexSettings:
    """Every setting of the index stage, declared once with one default each: `IndexConfig` adds the task, the
    pipeline's `IndexStage` the generator model, and `zerogr index`'s flags are made from these fields."""

    docid_scheme: str = "keyword_lm"
    num_queries: int = 16  # B pseudo-queries sampled per document (0: no LM pseudo-queries)
    shard_size: int = 1000
    seed: int = 0
    max_docs: int | None = None  # None: the whole corpus
    batch_size: int = 32  # documents per generator call (part of the seed derivation, hence of the result)
    doc_as_query_words: int = 64  # 0: no document-as-query rows
    span_queries: int = 0  # random 6-12 word spans of each document as extra training queries (kind "span")
    title_queries: bool = False  # the title as a training query (kind "title"; none for an untitled document)
    keyphrase_queries: int = 0  # 2-4 of the document's best TF-IDF terms as training queries (kind "keyphrase")
    points_back_top_k: int = 0  # keep a pseudo-query only if BM25 ranks its document in the top k (0 = off)
    query_temperature: float = 1.0
    query_top_p: float = 1.0
    query_max_new_tokens: int = 64

    def __post_init__(self):  # checked when the settings are made (a config file, an override, the command line)
        from zerogr_jax.config import ConfigError
        from zerogr_jax.indexing.docids import SCHEMES

        if self.docid_scheme not in SCHEMES:
            raise ConfigError(f"index.docid_scheme={self.docid_scheme!r}: must be one of {list(SCHEMES)}")

    def settings(self) -> dict:
        """The `IndexSettings` fields of this object (of a subclass too)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(IndexSettings)}


@dataclasses.dataclass(frozen=True)
class IndexConfig(IndexSettings):
    instruction: str = ""  # the task instruction (required: the builder refuses a blank one)
    collection: str | None = None


@dataclasses.dataclass(frozen=True)
class DocidTokenizer:
    """The trie hook: token ids of each docid as the retriever generates it, ending with `eos_id`."""

    tokenize: Callable[[list[str]], list[list[int]]]
    eos_id: int
    vocab_size: int
    name: str = ""
    digest: str = ""  # tokenization.tokenizer_digest: search loads trie.npz only for a tokenizer with this digest


def hf_docid_tokenizer(tokenizer, name: str = "", vocab_size: int | None = None) -> DocidTokenizer:
    """Docid tokens exactly as `zerogr_jax.retrieval_contract` gives the retriever's labels (+ EOS).

    `vocab_size` should be the retriever's logits width (the model config's); default len(tokenizer)."""
    from zerogr_jax.retrieval_contract import docid_token_ids, eos_id_of
    from zerogr_jax.tokenization import tokenizer_digest

    eos = eos_id_of(tokenizer)
    return DocidTokenizer(lambda docids: [ids + [eos] for ids in docid_token_ids(tokenizer, docids)], eos,
                          int(vocab_size or len(tokenizer)), name, tokenizer_digest(tokenizer))


# ------------------------------------------------------------------------------------------------ small helpers

def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _jsonl(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _canonical(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("zerogr-jax", "jax", "jaxlib", "flax", "transformers", "tokenizers", "numpy", "bm25s", "PyStemmer"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _document_key(d: Document) -> bytes:
    return (_canonical([d.doc_id, d.title, d.text]) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------------ the builder

@dataclasses.dataclass
class CorpusScan:
    """One streaming pass: what every later step needs to know about the corpus."""

    num_docs: int
    doc_ids: list[str]
    shard_input_sha256: list[str]  # per shard, over its documents (id, title, text)
    stats: TermStats
    read_stats: dict

    @property
    def num_shards(self) -> int:
        return len(self.shard_input_sha256)

    @property
    def corpus_sha256(self) -> str:
        return _sha256_bytes("".join(self.shard_input_sha256).encode())

    def shard_range(self, shard: int, shard_size: int) -> range:
        return range(shard * shard_size, min((shard + 1) * shard_size, self.num_docs))


class IndexBuilder:
    """Builds (or resumes) one index directory; see the module docstring. Typical use: `build_index(...)`."""

    def __init__(self, source: CorpusSource, out_dir: str | os.PathLike, cfg: IndexConfig, *,
                 generator: TextGenerator | None = None, docid_tokenizer: DocidTokenizer | None = None,
                 model_info: dict | None = None, corpus_info: dict | None = None, process_index: int = 0,
                 process_count: int = 1, show_progress: bool = True,
                 on_shard_done: Callable[[str, int], None] | None = None):
        if cfg.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {cfg.shard_size}")
        if cfg.num_queries < 0:
            raise ValueError(f"num_queries must be >= 0, got {cfg.num_queries}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
        if not cfg.instruction.strip():
            raise ValueError("the task instruction must not be blank")
        self.source, self.out, self.cfg = source, pathlib.Path(out_dir), cfg
        self.generator, self.docid_tokenizer = generator, docid_tokenizer
        self.model_info = model_info or {}
        self.corpus_info = corpus_info or {}
        self.process_index, self.process_count = process_index, process_count
        self.show_progress, self.on_shard_done = show_progress, on_shard_done
        self.shard_dir = self.out / "shards"
        self.query_prompt = QueryPrompt(cfg.instruction)
        self.query_filter = QueryFilter(points_back_top_k=cfg.points_back_top_k)
        self._scan: CorpusScan | None = None
        self._bm25 = None  # the corpus BM25 index of the "points back" filter, built on first use
        self._scheme: DocidScheme | None = None
        self._fingerprint: str | None = None
        self.run_info: dict = {"process_index": process_index, "process_count": process_count,
                               "stages": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        needs_lm = cfg.docid_scheme == "keyword_lm" or cfg.num_queries > 0
        if needs_lm and generator is None:
            raise ValueError(f"docid scheme {cfg.docid_scheme!r} with num_queries={cfg.num_queries} needs a text "
                             "generator (or use --docid-scheme tfidf_keywords --num-queries 0)")

    # -- corpus --------------------------------------------------------------------------------------------------
    def documents(self, stats: ReadStats | None = None) -> Iterator[Document]:
        """The corpus in order, cut at max_docs; doc ids must be unique (the BEIR reader guarantees it)."""
        stats = stats if stats is not None else ReadStats()
        for i, d in enumerate(self.source(stats)):
            if self.cfg.max_docs is not None and i >= self.cfg.max_docs:
                return
            yield d

    def scan(self) -> CorpusScan:
        if self._scan is None:
            read_stats = ReadStats()
            stats = TermStats()
            doc_ids: list[str] = []
            seen: set[str] = set()
            hashes: list[str] = []
            h = hashlib.sha256()
            for i, d in enumerate(self.documents(read_stats)):
                if d.doc_id in seen:
                    raise ValueError(f"duplicate document id {d.doc_id!r} (document {i} of the corpus source)")
                seen.add(d.doc_id)
                if i % self.cfg.shard_size == 0 and i:
                    hashes.append(h.hexdigest())
                    h = hashlib.sha256()
                h.update(_document_key(d))
                stats.add(d.title, d.text)
                doc_ids.append(d.doc_id)
            if doc_ids:
                hashes.append(h.hexdigest())
            else:
                raise ValueError("the corpus has no documents (after skipping invalid and empty records: "
                                 f"{read_stats.as_dict()})")
            rs = read_stats.as_dict()
            self._scan = CorpusScan(len(doc_ids), doc_ids, hashes, stats, rs)
        return self._scan

    def shards(self) -> Iterator[tuple[int, list[Document]]]:
        """(shard id, documents) in corpus order, streamed."""
        batch: list[Document] = []
        shard = 0
        for d in self.documents():
            batch.append(d)
            if len(batch) == self.cfg.shard_size:
                yield shard, batch
                batch, shard = [], shard + 1
        if batch:
            yield shard, batch

    def owns(self, shard: int) -> bool:
        return shard % self.process_count == self.process_index

    # -- configuration -------------------------------------------------------------------------------------------
    @property
    def scheme(self) -> DocidScheme:
        if self._scheme is None:
            self._scheme = make_scheme(self.cfg.docid_scheme, stats=self.scan().stats, generator=self.generator,
                                       seed=self.cfg.seed, batch_size=self.cfg.batch_size)
        return self._scheme

    def settings(self) -> dict:
        """Everything that determines the outputs (the fingerprint covers exactly this)."""
        out = {"format": FORMAT, "config": dataclasses.asdict(self.cfg), "docid_scheme": self.scheme.describe(),
               "model": self.model_info}
        if self.cfg.num_queries > 0:
            out["query_prompt"] = dataclasses.asdict(self.query_prompt)
            out["query_filter"] = dataclasses.asdict(self.query_filter)
        return out

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = _sha256_bytes(_canonical(self.settings()).encode())
        return self._fingerprint

    # -- shards --------------------------------------------------------------------------------------------------
    def shard_path(self, stage: str, shard: int) -> pathlib.Path:
        return self.shard_dir / f"{stage}-{shard:05d}.jsonl"

    def marker_path(self, stage: str, shard: int) -> pathlib.Path:
        return self.shard_dir / f"{stage}-{shard:05d}.done.json"

    def _inputs(self, stage: str, shard: int) -> dict:
        """What a shard's output depends on besides the settings: its documents, and for docids (TF-IDF terms,
        rule fallback; keyphrase queries) the corpus statistics, i.e. the whole corpus."""
        scan = self.scan()
        out = {"shard_sha256": scan.shard_input_sha256[shard]}
        if stage == "docids" or (stage == "queries" and self.cfg.keyphrase_queries > 0):
            out["corpus_sha256"] = scan.corpus_sha256
        return out

    def read_marker(self, stage: str, shard: int) -> dict | None:
        """The shard's marker when the shard is complete and current, else None (so the shard is redone)."""
        path, marker_path = self.shard_path(stage, shard), self.marker_path(stage, shard)
        try:
            marker = json.loads(marker_path.read_text("utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if (not isinstance(marker, dict) or marker.get("fingerprint") != self.fingerprint()
                or marker.get("inputs") != self._inputs(stage, shard)
                or not path.is_file() or marker.get("output_sha256") != _sha256_file(path)):
            return None
        return marker

    def _write_shard(self, stage: str, shard: int, rows: list[dict], counts: dict) -> None:
        data = _jsonl(rows)
        self.marker_path(stage, shard).unlink(missing_ok=True)  # output and marker must never disagree
        with atomic_open(self.shard_path(stage, shard), "wb") as f:
            f.write(data)
        atomic_write_json(self.marker_path(stage, shard), {
            "stage": stage, "shard": shard, "fingerprint": self.fingerprint(),
            "inputs": self._inputs(stage, shard), "output_sha256": _sha256_bytes(data),
            "num_docs": counts["documents"], "counts": counts})

    def _remove_stale_tmp(self, stage: str, shard: int) -> None:
        """Temporary files a killed run left for a shard of this process (other processes may be writing theirs)."""
        for name in (self.shard_path(stage, shard).name, self.marker_path(stage, shard).name):
            for tmp in self.shard_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)

    def _docid_rows(self, shard: int, docs: Sequence[Document], progress) -> tuple[list[dict], dict]:
        seed = derive_seed(self.cfg.seed, STAGE_DOCIDS, shard)
        records = self.scheme.assign_records(docs, start=shard * self.cfg.shard_size, seed=seed, progress=progress)
        rows = [{"doc_id": d.doc_id, "docid": r.docid, "docid_raw": r.docid_raw, "changes": r.changes}
                for d, r in zip(docs, records)]
        return rows, {"documents": len(docs)}

    def _query_rows(self, shard: int, docs: Sequence[Document], progress) -> tuple[list[dict], dict]:
        drops: collections.Counter = collections.Counter()
        results = None
        if self.cfg.num_queries > 0:
            results = generate_pseudo_queries(
                self.generator, docs, self.query_prompt, num_queries=self.cfg.num_queries,
                seed=derive_seed(self.cfg.seed, STAGE_QUERIES, shard), temperature=self.cfg.query_temperature,
                top_p=self.cfg.query_top_p, max_new_tokens=self.cfg.query_max_new_tokens,
                batch_size=self.cfg.batch_size, rules=self.query_filter, progress=progress)
            if self.query_filter.points_back_top_k > 0:
                results = keep_pointing_back(results, docs, self._corpus_search, self.query_filter.points_back_top_k)
        elif progress:
            progress(len(docs))
        rows: list[dict] = []
        kept = doc_rows = span_rows = title_rows = keyphrase_rows = no_query_docs = 0
        span_seed = derive_seed(self.cfg.seed, STAGE_QUERIES, shard, 1)
        keyphrase_seed = derive_seed(self.cfg.seed, STAGE_QUERIES, shard, 2)
        for i, d in enumerate(docs):
            if results is not None:
                rows += [{"doc_id": d.doc_id, "query": q, "kind": "pseudo"} for q in results[i].queries]
                kept += len(results[i].queries)
                drops.update(results[i].drops)
                no_query_docs += not results[i].queries
            if self.cfg.doc_as_query_words > 0:
                rows.append({"doc_id": d.doc_id, "query": doc_as_query(d, self.cfg.doc_as_query_words),
                             "kind": "doc_as_query"})
                doc_rows += 1
            if self.cfg.span_queries > 0:
                spans = document_spans(d, self.cfg.span_queries, derive_seed(span_seed, i))
                rows += [{"doc_id": d.doc_id, "query": q, "kind": "span"} for q in spans]
                span_rows += len(spans)
            if self.cfg.title_queries and title_query(d):
                rows.append({"doc_id": d.doc_id, "query": title_query(d), "kind": "title"})
                title_rows += 1
            if self.cfg.keyphrase_queries > 0:
                phrases = keyphrase_queries(d, self.scan().stats, self.cfg.keyphrase_queries,
                                            derive_seed(keyphrase_seed, i))
                rows += [{"doc_id": d.doc_id, "query": q, "kind": "keyphrase"} for q in phrases]
                keyphrase_rows += len(phrases)
        counts = {"documents": len(docs), "generated": len(docs) * self.cfg.num_queries, "kept": kept,
                  "dropped": {r: drops.get(r, 0) for r in DROP_REASONS}, "docs_without_pseudo_query": no_query_docs,
                  "doc_as_query": doc_rows, "span": span_rows, "title": title_rows, "keyphrase": keyphrase_rows}
        return rows, counts

    def run_stage(self, stage: str) -> None:
        """Does this process's shards of one stage ("docids" or "queries"), skipping the completed ones."""
        from tqdm import tqdm

        scan = self.scan()
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        mine = [s for s in range(scan.num_shards) if self.owns(s)]
        for s in mine:
            self._remove_stale_tmp(stage, s)
        todo = {s for s in mine if self.read_marker(stage, s) is None}
        todo_docs = sum(len(scan.shard_range(s, self.cfg.shard_size)) for s in todo)
        make_rows = self._docid_rows if stage == "docids" else self._query_rows
        start = time.perf_counter()
        with tqdm(total=todo_docs, desc=f"{stage} ({len(mine) - len(todo)}/{len(mine)} shards done before)",
                  unit="doc", disable=not self.show_progress, file=sys.stderr) as bar:
            for shard, docs in (self.shards() if todo else ()):
                if shard not in todo:
                    continue
                rows, counts = make_rows(shard, docs, bar.update)
                self._write_shard(stage, shard, rows, counts)
                if self.on_shard_done:
                    self.on_shard_done(stage, shard)
        seconds = time.perf_counter() - start
        self.run_info["stages"][stage] = {
            "shards_owned": len(mine), "shards_resumed": len(mine) - len(todo), "shards_done": len(todo),
            "documents_done": todo_docs, "seconds": round(seconds, 3),
            "docs_per_s": round(todo_docs / seconds, 3) if todo_docs and seconds > 0 else None}

    # -- merge ---------------------------------------------------------------------------------------------------
    def missing_shards(self) -> dict[str, list[int]]:
        scan = self.scan()
        return {stage: [s for s in range(scan.num_shards) if self.read_marker(stage, s) is None]
                for stage in STAGES}

    def _corpus_search(self, queries: dict[str, str], k: int) -> dict[str, dict[str, float]]:
        """BM25 over the whole corpus (built once per builder): the pseudo-query "points back" filter."""
        from zerogr_jax.evaluation.bm25 import bm25_search, build_bm25_index

        if self._bm25 is None:
            self._bm25 = build_bm25_index(self.documents())
        return bm25_search(self._bm25, queries, k=k)

    def _terms_of(self, indices: list[int]) -> dict[int, DocumentTerms]:
        """DocumentTerms of the given corpus positions, by one streaming pass."""
        want, out = set(indices), {}
        for i, d in enumerate(self.documents()):
            if i in want:
                out[i] = DocumentTerms.from_document(d.title, d.text)
                if len(out) == len(want):
                    break
        return out

    def _read_shard_rows(self, stage: str, shard: int) -> Iterator[dict]:
        with open(self.shard_path(stage, shard), "rb") as f:
            for line in f:
                yield json.loads(line)

    def merge(self, wait_s: float = 0.0, poll_s: float = 5.0) -> dict:
        """Checks every shard, resolves docid collisions over the whole corpus, writes the final files and the
        manifest; returns the manifest. With `wait_s`, waits that long for other processes' shards."""
        deadline = time.monotonic() + wait_s
        while True:
            missing = self.missing_shards()
            if not any(missing.values()):
                break
            if time.monotonic() >= deadline:
                owners = {st: {s: s % self.process_count for s in ss} for st, ss in missing.items() if ss}
                raise IncompleteIndexError(f"{self.out}: shards not finished (stage: {{shard: process}}): {owners}; "
                                           "run the missing processes with the same command, then merge again")
            time.sleep(poll_s)
        scan = self.scan()
        start = time.perf_counter()

        raw_docids: list[str] = []
        rule_counts: collections.Counter = collections.Counter()
        dropped_terms: collections.Counter = collections.Counter()
        for shard in range(scan.num_shards):
            for row in self._read_shard_rows("docids", shard):
                raw_docids.append(row["docid"])
                ch = row["changes"]
                rule_counts["changed_docs"] += bool(ch)
                rule_counts["filled_docs"] += bool(ch.get("filled"))
                rule_counts["short_docs"] += bool(ch.get("short"))
                rule_counts["empty_fallback_docs"] += bool(ch.get("empty_fallback"))
                for reason, terms in ch.get("dropped", {}).items():
                    dropped_terms[reason] += len(terms)
        if len(raw_docids) != scan.num_docs:
            raise RuntimeError(f"docid shards hold {len(raw_docids)} rows for {scan.num_docs} documents")
        resolution = resolve_collisions(raw_docids, self._terms_of, scan.stats)
        shared = {i for group in resolution.shared for i in group}

        docids_path = self.out / "docids.jsonl"
        h = hashlib.sha256()
        with atomic_open(docids_path, "wb") as f:
            i = 0
            for shard in range(scan.num_shards):
                for row in self._read_shard_rows("docids", shard):
                    if row["doc_id"] != scan.doc_ids[i]:
                        raise RuntimeError(f"docid shard {shard} is out of step with the corpus at document {i}")
                    changes = dict(row["changes"])
                    if i in resolution.appended:
                        changes["appended"] = resolution.appended[i]
                    if i in shared:
                        changes["shared"] = True
                    line = _jsonl([{"doc_id": row["doc_id"], "docid": resolution.docids[i],
                                    "docid_raw": row["docid_raw"], "changes": changes}])
                    f.write(line)
                    h.update(line)
                    i += 1
        files = {"docids.jsonl": h.hexdigest()}

        query_counts: collections.Counter = collections.Counter()
        query_drops: collections.Counter = collections.Counter()
        h = hashlib.sha256()
        with atomic_open(self.out / "queries.jsonl", "wb") as f:
            for shard in range(scan.num_shards):
                data = self.shard_path("queries", shard).read_bytes()
                f.write(data)
                h.update(data)
                counts = self.read_marker("queries", shard)["counts"]
                for k in ("generated", "kept", "docs_without_pseudo_query", *ROW_SOURCES):
                    query_counts[k] += counts.get(k, 0)
                query_drops.update(counts["dropped"])
        files["queries.jsonl"] = h.hexdigest()

        trie_info = self._build_trie(resolution.docids)
        if trie_info.get("built"):
            files["trie.npz"] = trie_info.pop("content_sha256")

        manifest = {
            "format": FORMAT,
            "instruction": self.cfg.instruction,
            "collection": self.cfg.collection,
            "corpus": {**self.corpus_info, "num_docs": scan.num_docs, "num_shards": scan.num_shards,
                       "input_sha256": scan.corpus_sha256,
                       "read_stats": scan.read_stats},
            **{k: v for k, v in self.settings().items() if k != "format"},
            "fingerprint": self.fingerprint(),
            "counts": {
                "documents": scan.num_docs,
                "documents_reachable": sum(len(v) for v in docid_to_documents(resolution.docids).values()),
                "docids_before_resolution": resolution.before,
                "docids_after_resolution": resolution.after,
                "docids_extended": len(resolution.appended),
                "docids_extended_by": resolution.extended_by,
                # shared leaves: identical texts (after whitespace normalisation); distinct texts never share
                "docids_shared_groups": len(resolution.shared),
                "docids_shared_identical_groups": len(resolution.shared) - resolution.shared_distinct_groups,
                "docids_shared_distinct_groups": resolution.shared_distinct_groups,
                "rules": {**{k: rule_counts.get(k, 0) for k in ("changed_docs", "filled_docs", "short_docs",
                                                                 "empty_fallback_docs")},
                          "dropped_terms": dict(sorted(dropped_terms.items()))},
                "queries": {**{k: query_counts.get(k, 0) for k in ("generated", "kept", "docs_without_pseudo_query",
                                                                    *ROW_SOURCES)},
                            "dropped": {r: query_drops.get(r, 0) for r in DROP_REASONS}},
            },
            "trie": trie_info,
            "files": files,
            "versions": package_versions(),
        }
        manifest["manifest_sha256"] = _sha256_bytes(_canonical(manifest).encode())
        self.run_info["merge_seconds"] = round(time.perf_counter() - start, 3)
        self.run_info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest["run"] = self.run_info
        atomic_write_json(self.out / "manifest.json", manifest)
        return manifest

    def _build_trie(self, docids: list[str]) -> dict:
        if self.docid_tokenizer is None:
            return {"built": False, "reason": "no docid tokenizer given"}
        try:
            from zerogr_jax.retrieval.trie import build_trie, npz_content_sha256
        except ImportError as e:
            logger.warning("trie not built: zerogr_jax.retrieval.trie is not importable (%s)", e)
            return {"built": False, "reason": f"zerogr_jax.retrieval.trie not importable: {e}"}
        tok = self.docid_tokenizer
        trie = build_trie(tok.tokenize(list(docids)), eos_id=tok.eos_id, vocab_size=tok.vocab_size)
        if trie.num_documents != len(docids):
            raise RuntimeError(f"the trie holds {trie.num_documents} documents for {len(docids)} docids")
        path = self.out / "trie.npz"
        trie.save(path)
        return {"built": True, "tokenizer": tok.name, "tokenizer_sha256": tok.digest, "eos_id": tok.eos_id,
                "vocab_size": tok.vocab_size,
                "content_sha256": npz_content_sha256(path), **trie.metadata()}


def build_index(source: CorpusSource, out_dir: str | os.PathLike, cfg: IndexConfig, *, merge: bool = True,
                merge_wait_s: float = 0.0, **kwargs) -> dict | None:
    """Runs (or resumes) this process's shards of both stages, then, on process 0 with `merge`, the merge.

    Returns the manifest (None on processes that do not merge). kwargs go to `IndexBuilder`.
    """
    builder = IndexBuilder(source, out_dir, cfg, **kwargs)
    builder.run_stage("docids")
    builder.run_stage("queries")
    if merge and builder.process_index == 0:
        return builder.merge(wait_s=merge_wait_s)
    return None


# ------------------------------------------------------------------------------------------------ command line

SETTING_HELP = {
    "num_queries": "pseudo-queries sampled per document (B)", "batch_size": "documents per generator call",
    "doc_as_query_words": "words of the document-as-query row (0: none)",
    "span_queries": "random 6-12 word spans of each document added as training queries (no LM needed)",
    "title_queries": "the title as a training query (no LM)",
    "keyphrase_queries": "keyword queries of 2-4 of a document's best TF-IDF terms per document (no LM)",
    "points_back_top_k": "keep a pseudo-query only if BM25 over the corpus ranks its document in the top k",
    "max_docs": "index only the first N documents",
}


def add_index_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `zerogr index` (the lead's cli.py adds them to its subparser)."""
    from zerogr_jax.indexing.docids import SCHEMES

    parser.add_argument("--corpus", help="BEIR directory (corpus.jsonl[.gz]) or corpus file; default: the "
                                         "collection's directory under the data root")
    parser.add_argument("--collection", help="registered collection name (gives the default instruction/corpus)")
    parser.add_argument("--data-root", help="data root for --collection (default $ZEROGR_DATA or ../shared/data)")
    parser.add_argument("--instruction", help="task instruction (default: the collection's registered one)")
    parser.add_argument("--out", required=True, help="index directory (created; rerun to resume)")
    for f in dataclasses.fields(IndexSettings):
        flag, default = "--" + f.name.replace("_", "-"), f.default
        kwargs = {"help": SETTING_HELP.get(f.name, "")}
        if f.name == "docid_scheme":
            kwargs["choices"] = SCHEMES
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", **kwargs)
        else:
            parser.add_argument(flag, type=int if default is None else type(default), default=default, **kwargs)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="docid / query generator (name or path)")
    parser.add_argument("--trie-tokenizer", default=None,
                        help="model whose tokenizer tokenizes docids for the trie (default: --model)")
    parser.add_argument("--no-trie", action="store_true")
    parser.add_argument("--on-invalid", choices=("error", "skip"), default="error",
                        help="malformed corpus lines: stop with file:line, or skip and count them")
    parser.add_argument("--process-index", type=int, default=None,
                        help="this process's shard owner index (default: jax.process_index())")
    parser.add_argument("--process-count", type=int, default=None,
                        help="number of indexing processes (default: jax.process_count())")
    parser.add_argument("--merge-wait-s", type=float, default=0.0,
                        help="process 0: how long to wait for other processes' shards before the merge")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _model_info(name: str, model) -> dict:
    source = pathlib.Path(model.source)
    target = source if source.is_file() else source / "model.safetensors"
    return {"name": name, "source": str(source),
            "sha256": _sha256_file(target) if target.is_file() else None, "dtype": model.cfg.dtype}


def index_main(args: argparse.Namespace) -> dict | None:
    """`zerogr index ...`: builds or resumes an index directory; returns the manifest (process 0)."""
    from zerogr_jax.data.collections import collection_dir
    from zerogr_jax.data.instructions import task_instruction

    if args.corpus is None and args.collection is None:
        raise SystemExit("zerogr index: give --corpus DIR or --collection NAME")
    corpus = pathlib.Path(args.corpus) if args.corpus else collection_dir(args.collection, args.data_root)
    cfg = IndexConfig(instruction=task_instruction(args.collection, custom=args.instruction),
                      collection=args.collection,
                      **{f.name: getattr(args, f.name) for f in dataclasses.fields(IndexSettings)})
    return run_index(cfg, corpus, args.out, model=args.model, trie_tokenizer=args.trie_tokenizer,
                     trie=not args.no_trie, on_invalid=args.on_invalid, process_index=args.process_index,
                     process_count=args.process_count, merge_wait_s=args.merge_wait_s, progress=not args.no_progress)


def run_index(cfg: IndexConfig, corpus: str | os.PathLike, out: str | os.PathLike, *,
              model: str = "smollm2-135m-instruct", trie_tokenizer: str | None = None, trie: bool = True,
              on_invalid: str = "error", process_index: int | None = None, process_count: int | None = None,
              merge_wait_s: float = 0.0, progress: bool = True) -> dict | None:
    """The index stage as a function: builds or resumes `out` from the BEIR corpus at `corpus`; returns the
    manifest (process 0). `model` writes LM docids / pseudo-queries (loaded only when the settings need it);
    `trie_tokenizer` (default: `model`) tokenizes docids for the trie."""
    import jax  # 1 process unless jax.distributed was initialized (`zerogr` does that first)

    corpus = pathlib.Path(corpus)
    generator = lm = None
    model_info: dict = {}
    if cfg.docid_scheme == "keyword_lm" or cfg.num_queries > 0:
        from zerogr_jax.models.loading import load_model
        from zerogr_jax.text_generator import JaxTextGenerator

        lm = load_model(model)
        generator = JaxTextGenerator(lm, batch_size=cfg.batch_size)
        model_info = _model_info(model, lm)
    docid_tokenizer = None
    if trie:
        trie_model = trie_tokenizer or model
        if lm is not None and trie_model == model:
            docid_tokenizer = hf_docid_tokenizer(lm.tokenizer, trie_model, lm.cfg.vocab_size)
        else:
            from zerogr_jax.models.loading import resolve_source
            from zerogr_jax.tokenization import load_tokenizer

            docid_tokenizer = hf_docid_tokenizer(load_tokenizer(resolve_source(trie_model)), trie_model)

    def source(stats: ReadStats) -> Iterator[Document]:
        return iter_corpus(corpus, on_invalid=on_invalid, stats=stats)

    return build_index(source, out, cfg, generator=generator, docid_tokenizer=docid_tokenizer,
                       model_info=model_info, corpus_info={"path": str(corpus), "on_invalid": on_invalid},
                       process_index=jax.process_index() if process_index is None else process_index,
                       process_count=jax.process_count() if process_count is None else process_count,
                       show_progress=progress, merge_wait_s=merge_wait_s)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m zerogr_jax.indexing.index_builder ...` (the same as `zerogr index ...`)."""
    parser = add_index_arguments(argparse.ArgumentParser(prog="zerogr index", description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    import contextlib

    import jax

    from zerogr_jax.workdir_lock import workdir_lock

    # one builder per index directory, unless several processes share it by design (--process-count, a jax job)
    single = jax.process_count() == 1 and (args.process_count or 1) == 1
    with workdir_lock(args.out) if single else contextlib.nullcontext():
        manifest = index_main(args)
    if manifest is not None:
        print(summary_line(args.out, manifest))


def summary_line(out: str | os.PathLike, manifest: dict | None) -> str:
    """The one-line JSON summary `zerogr index` prints (process 0; "" elsewhere)."""
    if manifest is None:
        return ""
    c = manifest["counts"]
    return json.dumps({"out": str(out), "documents": c["documents"],
                       "collision_rate_before": c["docids_before_resolution"]["collision_rate"],
                       "collision_rate_after": c["docids_after_resolution"]["collision_rate"],
                       "queries_kept": c["queries"]["kept"], "trie": manifest["trie"].get("built")})


if __name__ == "__main__":
    main()
