"""Task instructions: one natural-language description per collection, given to the query generator and the
retriever (ZeroGR conditions indexing and search on it) and stored with the index."""

from __future__ import annotations

import types

# Keyed by the collection's short name (the last part of its registry path, see `collections.py`).
INSTRUCTIONS: types.MappingProxyType[str, str] = types.MappingProxyType({
    "scifact": "Given a scientific claim, retrieve abstracts that support or refute it",
    "arguana": "Given an argument, retrieve the passage that best counters it",
    "cranfield": "Given a question about aeronautics, retrieve the aerodynamics research abstracts that answer it",
    "cisi": "Given a question about library and information science, retrieve the articles that address it",
    "med": "Given a medical information need, retrieve the MEDLINE abstracts that are relevant to it",
    "vaswani": "Given a physics topic, retrieve the physics abstracts (NPL collection) that are about it",
    "cosqa": "Given a web search query, retrieve the Python function that answers it",
})


def task_instruction(collection: str | None = None, *, custom: str | None = None) -> str:
    """The instruction for `collection` ("scifact" or "beir/scifact"), or `custom` when given.

    A custom instruction wins over the registry, so a new collection needs no code change.
    """
    if custom is not None:
        if not custom.strip():
            raise ValueError("a custom task instruction must not be blank")
        return custom.strip()
    if collection is None:
        raise ValueError("give a collection name or a custom instruction")
    key = collection.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    if key not in INSTRUCTIONS:
        raise KeyError(f"no task instruction for collection {collection!r}; known: {', '.join(INSTRUCTIONS)}. "
                       "Pass custom='...' to give one.")
    return INSTRUCTIONS[key]
