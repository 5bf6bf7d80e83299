"""A BEIR directory as a TFDS dataset in ArrayRecord files, read back with random access and without TensorFlow.

`tensorflow_datasets` writes and reads `array_record` files through `array_record` + `etils` + numpy only;
TensorFlow is imported lazily by TFDS and only for `tf.data` pipelines (`as_dataset`), which we never call
(tests/test_tfds_builder.py checks that preparing and reading leave `tensorflow` out of `sys.modules`).
TFDS 4.9.10 needs the `importlib_resources` backport for any builder defined inside a package (its
`DatasetBuilder.code_path` uses it, but declares it only for Python < 3.9: tensorflow/datasets#11212), so it is
in our requirements.
We read with `builder.as_data_source()` (a random-access `Sequence`), so index `i` is the i-th record kept by
`beir.iter_corpus` (shuffling is disabled when the files are written).

One prepared dataset per collection: `data_dir` holds `beir_directory/{corpus,queries}/1.0.0/`, plus a metadata
file with the source file's sha256 and the reader's `ReadStats` (skips and cuts), so a stale or silently
filtered dataset can be told apart. Preparing into a `data_dir` that already holds a dataset built from a
different source file raises instead of reusing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import os
import pathlib
from typing import Iterator, Sequence

import tensorflow_datasets as tfds

from zerogr_jax.data import beir

PARTS = ("corpus", "queries")
_ITER_CHUNK = 1024  # records per ArrayRecord read when iterating
SPLIT = "full"  # one split: everything in the file ("all" is reserved by TFDS' split syntax)


@dataclasses.dataclass(eq=False)
class BeirPartConfig(tfds.core.BuilderConfig):
    """`name` is the part: "corpus" or "queries"."""


class BeirDirectory(tfds.core.GeneratorBasedBuilder):
    """Turns `beir_dir` (a BEIR directory) into ArrayRecord files; `beir_dir` is only needed to prepare."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "BEIR corpus (doc_id, title, text) and queries (query_id, text)."}
    BUILDER_CONFIGS = [BeirPartConfig(name=p, description=f"the {p} of a BEIR directory") for p in PARTS]

    def __init__(self, beir_dir: str | os.PathLike | None = None, *, on_invalid: beir.OnInvalid = "error",
                 on_empty: beir.OnEmpty = "skip", max_chars: int | None = beir.DEFAULT_MAX_CHARS, **kwargs):
        self._beir_dir = pathlib.Path(beir_dir) if beir_dir is not None else None
        self._read_kwargs = dict(on_invalid=on_invalid, on_empty=on_empty, max_chars=max_chars)
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo directly: `dataset_info_from_configs` looks for metadata files beside this module.
        if self.builder_config.name == "corpus":
            features = {"doc_id": tfds.features.Text(), "title": tfds.features.Text(), "text": tfds.features.Text()}
        else:
            features = {"query_id": tfds.features.Text(), "text": tfds.features.Text()}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                     disable_shuffling=True, metadata=tfds.core.MetadataDict())

    def source_file(self) -> pathlib.Path:
        if self._beir_dir is None:
            raise ValueError("BeirDirectory needs beir_dir=<a BEIR directory> to prepare a dataset")
        return beir.find_jsonl(self._beir_dir, self.builder_config.name)

    def _split_generators(self, dl_manager) -> dict[str, Iterator]:
        del dl_manager  # nothing to download
        return {SPLIT: self._generate_examples(self.source_file())}

    def _generate_examples(self, path: pathlib.Path) -> Iterator[tuple[int, dict]]:
        stats = beir.ReadStats()
        if self.builder_config.name == "corpus":
            records = ({"doc_id": d.doc_id, "title": d.title, "text": d.text}
                       for d in beir.iter_corpus(path, stats=stats, **self._read_kwargs))
        else:
            records = ({"query_id": q.query_id, "text": q.text}
                       for q in beir.iter_queries(path, stats=stats, **self._read_kwargs))
        for i, record in enumerate(records):
            yield i, record  # keys in file order; with shuffling disabled the i-th record lands at index i
        # Written with the dataset info once generation has finished.
        self.info.metadata.update(source=str(path), source_sha256=_sha256(path), read_stats=stats.as_dict(),
                                  read_options=dict(self._read_kwargs))


def _sha256(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def prepare(beir_dir: str | os.PathLike, data_dir: str | os.PathLike, part: str = "corpus",
            **read_kwargs) -> BeirDirectory:
    """Prepares one part of `beir_dir` into `data_dir` (a no-op when it is already there from the same file)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    builder = BeirDirectory(beir_dir, data_dir=os.fspath(data_dir), config=part, **read_kwargs)
    if builder.is_prepared():
        want = _sha256(builder.source_file())
        have = builder.info.metadata.get("source_sha256")
        if have != want:
            raise FileExistsError(f"{builder.data_dir} holds a {part} prepared from another file "
                                  f"({builder.info.metadata.get('source')}, sha256 {have}); "
                                  f"use another data_dir or delete it")
        return builder
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    return builder


class DocumentSource(Sequence[beir.Document]):
    """Random access to a prepared corpus: `source[i]` is the i-th kept document of the BEIR corpus file."""

    def __init__(self, data_dir: str | os.PathLike):
        self.builder = BeirDirectory(data_dir=os.fspath(data_dir), config="corpus")
        if not self.builder.is_prepared():
            raise FileNotFoundError(f"no prepared corpus under {data_dir}: run tfds_builder.prepare first")
        self._source = self.builder.as_data_source(split=SPLIT)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i):  # int -> Document; slice -> list[Document]
        if isinstance(i, slice):
            return self.get_many(range(*i.indices(len(self))))
        return _document(self._source[_index(i, len(self))])

    def __iter__(self) -> Iterator[beir.Document]:
        for start in range(0, len(self), _ITER_CHUNK):
            yield from self.get_many(range(start, min(start + _ITER_CHUNK, len(self))))

    def get_many(self, indices: Sequence[int]) -> list[beir.Document]:
        """Batched read (one ArrayRecord call)."""
        n = len(self)
        return [_document(r) for r in self._source.__getitems__([_index(i, n) for i in indices])]

    @property
    def metadata(self) -> dict:
        return dict(self.builder.info.metadata)


class QuerySource(Sequence[beir.Query]):
    """Random access to prepared queries, in file order."""

    def __init__(self, data_dir: str | os.PathLike):
        self.builder = BeirDirectory(data_dir=os.fspath(data_dir), config="queries")
        if not self.builder.is_prepared():
            raise FileNotFoundError(f"no prepared queries under {data_dir}: run tfds_builder.prepare first")
        self._source = self.builder.as_data_source(split=SPLIT)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [_query(r) for r in self._source.__getitems__(list(range(*i.indices(len(self)))))]
        return _query(self._source[_index(i, len(self))])

    def __iter__(self) -> Iterator[beir.Query]:
        return iter(self[:])


def _index(i: int, n: int) -> int:
    """Python's indexing rules (negative from the end, IndexError past it); ArrayRecord raises ValueError."""
    i = operator.index(i)
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for {n} records")
    return i % n


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _document(record: dict) -> beir.Document:
    return beir.Document(_text(record["doc_id"]), _text(record["title"]), _text(record["text"]))


def _query(record: dict) -> beir.Query:
    return beir.Query(_text(record["query_id"]), _text(record["text"]))
