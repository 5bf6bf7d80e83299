"""Collection registry and task instructions."""

import pytest

from conftest import DATA_ROOT
from zerogr_jax.data import collections, instructions


def test_every_collection_has_an_instruction_and_a_path():
    assert set(collections.COLLECTIONS) == set(instructions.INSTRUCTIONS)
    for name, spec in collections.COLLECTIONS.items():
        assert spec.instruction == instructions.task_instruction(name)
    assert collections.get_collection("beir/arguana").ignore_identical_ids
    assert not any(s.ignore_identical_ids for n, s in collections.COLLECTIONS.items() if n != "arguana")


@pytest.mark.skipif(not DATA_ROOT.is_dir(), reason="shared data not present")
def test_registered_collections_are_on_disk():
    for name in collections.COLLECTIONS:
        path = collections.collection_dir(name, DATA_ROOT)
        assert (path / "qrels" / "test.tsv").is_file() and (path / "corpus.jsonl.gz").is_file()


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("ZEROGR_DATA", str(tmp_path))
    assert collections.default_data_root() == tmp_path
    with pytest.raises(FileNotFoundError, match="set \\$ZEROGR_DATA"):
        collections.collection_dir("cranfield")
    monkeypatch.delenv("ZEROGR_DATA")
    assert collections.default_data_root().parts[-2:] == ("shared", "data")


def test_instruction_lookup():
    assert instructions.task_instruction("scifact") == \
        "Given a scientific claim, retrieve abstracts that support or refute it"
    assert instructions.task_instruction("beir/SciFact") == instructions.task_instruction("scifact")
    assert instructions.task_instruction("cosqa") == "Given a web search query, retrieve the Python function that answers it"
    assert instructions.task_instruction("anything", custom=" Find recipes ") == "Find recipes"
    with pytest.raises(KeyError, match="known: scifact, arguana"):
        instructions.task_instruction("msmarco")
    with pytest.raises(KeyError, match="unknown collection 'msmarco'"):
        collections.get_collection("msmarco")
    with pytest.raises(ValueError):
        instructions.task_instruction("scifact", custom="  ")
