"""Registry of the shipped evaluation collections and where they live.

The data root is `$ZEROGR_DATA` when set, else `<repo>/../shared/data` (CI clones the repo with shared/ beside it).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import types

from zerogr_jax.data.instructions import task_instruction

_REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
    name: str
    relative_path: str  # under the data root
    split: str = "test"  # qrels/<split>.tsv
    ignore_identical_ids: bool = False  # drop run entries whose doc id equals the query id (BEIR's arguana rule)

    @property
    def instruction(self) -> str:
        return task_instruction(self.name)


COLLECTIONS: types.MappingProxyType[str, CollectionSpec] = types.MappingProxyType({
    spec.name: spec for spec in (
        CollectionSpec("scifact", "beir/scifact"),
        CollectionSpec("arguana", "beir/arguana", ignore_identical_ids=True),
        CollectionSpec("cranfield", "cranfield"),
        CollectionSpec("cisi", "cisi"),
        CollectionSpec("med", "med"),
        CollectionSpec("vaswani", "vaswani"),
        CollectionSpec("cosqa", "cosqa"),
    )
})


def default_data_root() -> pathlib.Path:
    env = os.environ.get("ZEROGR_DATA")
    return pathlib.Path(env) if env else (_REPO.parent / "shared" / "data").resolve()


def get_collection(name: str) -> CollectionSpec:
    """The spec for "scifact" or "beir/scifact"."""
    key = name.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    if key not in COLLECTIONS:
        raise KeyError(f"unknown collection {name!r}; known: {', '.join(COLLECTIONS)}")
    return COLLECTIONS[key]


def collection_dir(name: str, data_root: str | os.PathLike | None = None) -> pathlib.Path:
    """The BEIR directory of a registered collection; raises if it is not on disk."""
    root = pathlib.Path(data_root) if data_root is not None else default_data_root()
    path = root / get_collection(name).relative_path
    if not path.is_dir():
        raise FileNotFoundError(f"collection {name!r} not found at {path} (data root {root}; set $ZEROGR_DATA or "
                                "pass the data root)")
    return path
