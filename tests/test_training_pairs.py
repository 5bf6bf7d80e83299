"""Training examples from index directories, tokenized with the embedded SmolLM2 tokenizer."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from zerogr_jax.training.pairs import (IndexFormatError, PairsConfig, PromptBuilder, build_examples,
                                            docid_vocabulary, heldout_score, load_index)
from zerogr_jax.tokenization import chat_prompt, encode

pytestmark = pytest.mark.embedded

INSTRUCTION = "Given a scientific claim, retrieve abstracts that support or refute it"


@pytest.fixture(scope="module")
def tokenizer():
    from zerogr_jax.models.embedded import embedded_gguf_path
    from zerogr_jax.models.loading import gguf_as_hf_directory
    from zerogr_jax.tokenization import load_tokenizer
    return load_tokenizer(gguf_as_hf_directory(embedded_gguf_path()))


def write_index(root: pathlib.Path, docids: dict, queries: list, instruction: str = INSTRUCTION) -> pathlib.Path:
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"instruction": instruction}))
    (root / "docids.jsonl").write_text("".join(json.dumps({"doc_id": d, "docid": s}) + "\n" for d, s in docids.items()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"doc_id": d, "query": q, "kind": k}) + "\n"
                                                for d, q, k in queries))
    return root


@pytest.fixture
def index_dir(tmp_path):
    docids = {"d1": "protein folding kinase inhibitor", "d2": "graphene thermal conductivity"}
    queries = [("d1", f"does kinase inhibition change folding {i}", "pseudo") for i in range(30)]
    queries += [("d2", f"heat transport in carbon sheets {i}", "pseudo") for i in range(30)]
    queries += [("d1", "Kinase inhibitors fold proteins. " * 40, "doc_as_query"),
                ("d2", "Graphene conducts.", "doc_as_query")]
    return write_index(tmp_path / "ix", docids, queries)


def test_examples_hold_the_chat_prompt_and_labels_only_on_docid_plus_eos(index_dir, tokenizer):
    index = load_index(index_dir)
    data = build_examples([index], tokenizer, PairsConfig(heldout_fraction=0.1))
    ex = data.train
    assert len(ex) + len(data.heldout) == 62 and len(data.heldout) > 0
    eos = tokenizer.eos_token_id
    for i in range(len(ex)):
        n_real = int(ex.kv_mask[i].sum())
        assert ex.kv_mask[i, :n_real].all() and not ex.kv_mask[i, n_real:].any()  # right padding
        labels = ex.labels[i][ex.label_mask[i]]
        assert labels[-1] == eos
        docid = index.docids[data.docid_rows[0][ex.doc_index[i]]]
        assert tokenizer.decode(labels[:-1]) == docid
        # each label is the token right after the column that predicts it; the last label ends the sequence
        cols = ex.target_index[i][ex.label_mask[i]]
        assert np.array_equal(ex.tokens[i, cols + 1], labels) and cols[-1] + 2 == n_real
        prompt = tokenizer.decode(ex.tokens[i, :cols[0] + 1])
        assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
        assert INSTRUCTION + "\n" in prompt


def test_prompt_builder_cuts_instruction_and_query_to_64_tokens(tokenizer):
    builder = PromptBuilder(tokenizer, 64, 64)
    long_query = " ".join(f"word{i}" for i in range(200))
    (text,) = builder.texts("retrieve " * 100, [long_query])
    content = text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
    instruction, query = content.split("\n", 1)
    assert len(encode(tokenizer, instruction)) == 64 and len(encode(tokenizer, query)) <= 64
    assert long_query.startswith(query)
    short = builder.texts(INSTRUCTION, ["short query"])[0]
    assert short == chat_prompt(tokenizer, [{"role": "user", "content": INSTRUCTION + "\nshort query"}])


def test_heldout_split_is_deterministic_and_never_doc_as_query(index_dir, tokenizer):
    index = load_index(index_dir)
    a = build_examples([index], tokenizer, PairsConfig(heldout_fraction=0.3))
    b = build_examples([index], tokenizer, PairsConfig(heldout_fraction=0.3))
    assert np.array_equal(a.heldout.tokens, b.heldout.tokens) and np.array_equal(a.train.tokens, b.train.tokens)
    expected = sum(heldout_score(d, q) < 0.3 for d, q, k in index.queries if k != "doc_as_query")
    assert len(a.heldout) == expected
    capped = build_examples([index], tokenizer, PairsConfig(heldout_fraction=0.3, heldout_max=3))
    assert len(capped.heldout) == 3
    # the doc-as-query rows (long texts) are always training examples
    assert a.counts["collections"][0]["examples"] == {"pseudo": 60, "doc_as_query": 2, "span": 0, "title": 0,
                                                      "keyphrase": 0}


def test_multi_index_mix_and_docid_vocabulary(index_dir, tmp_path, tokenizer):
    other = write_index(tmp_path / "ix2", {"x": "tax law appeal"}, [("x", "can I appeal a tax ruling", "pseudo")],
                        instruction="Given a legal question, retrieve cases")
    indexes = [load_index(index_dir), load_index(other)]
    data = build_examples(indexes, tokenizer, PairsConfig(heldout_fraction=0.0))
    assert sorted(set(data.train.collection.tolist())) == [0, 1]
    vocab = docid_vocabulary(indexes, tokenizer)
    label_tokens = set(data.train.labels[data.train.label_mask].tolist())
    assert label_tokens == set(vocab.tolist()) and np.all(np.diff(vocab) > 0)


def test_too_long_examples_are_counted_and_skipped(index_dir, tokenizer):
    data = build_examples([load_index(index_dir)], tokenizer, PairsConfig(heldout_fraction=0.0, max_len=72))
    assert data.counts["collections"][0]["skipped_too_long"] == 1  # the long doc-as-query row
    assert data.train.tokens.shape[1] == 72


def test_bad_index_rows_name_file_and_line(tmp_path):
    root = write_index(tmp_path / "bad", {"d1": "a b"}, [("d1", "q", "pseudo")])
    with open(root / "queries.jsonl", "a") as f:
        f.write('{"doc_id": "d9", "query": "orphan", "kind": "pseudo"}\n')
    with pytest.raises(IndexFormatError, match=r"queries.jsonl:2: doc_id 'd9'"):
        load_index(root)
    (root / "queries.jsonl").write_text('{"doc_id": "d1", "query": "q"}\n{not json\n')
    with pytest.raises(IndexFormatError, match=r"queries.jsonl:2: not valid JSON"):
        load_index(root)
    (root / "manifest.json").write_text("{}")
    with pytest.raises(IndexFormatError, match="instruction"):
        load_index(root)


def test_ranking_groups_pair_each_training_query_with_other_documents_docids(tmp_path, tokenizer):
    """data.negatives = n: every training row (never a held-out one) again, followed by n rows of the same prompt
    with another document's docid; the groups are counted in the collection's counts."""
    docids = {f"d{i}": f"term{i} alpha{i} beta{i}" for i in range(6)}
    queries = [(f"d{i}", f"question about term{i} and alpha{(i + 1) % 6} {j}", "span") for i in range(6)
               for j in range(4)] + [(f"d{i}", f"term{i} alpha{i} text of document {i}", "doc_as_query")
                                     for i in range(6)]
    index = load_index(write_index(tmp_path / "ix", docids, queries))
    data = build_examples([index], tokenizer, PairsConfig(heldout_fraction=0.2, negatives=2))
    plain = build_examples([index], tokenizer, PairsConfig(heldout_fraction=0.2))
    assert data.group_size == 3 and len(data.rank) == 3 * len(data.train)
    assert np.array_equal(data.train.tokens, plain.train.tokens) and plain.rank is None  # rows unchanged
    counts = data.counts["collections"][0]
    assert counts["rank_groups"] == len(data.train) and counts["negatives"] == 2
    train_prompts = set()
    for i in range(len(data.train)):
        cols = data.train.target_index[i][data.train.label_mask[i]]
        train_prompts.add(tuple(data.train.tokens[i, :cols[0] + 1]))
    rank = data.rank
    for g in range(len(rank) // 3):
        rows = range(3 * g, 3 * g + 3)
        prompts = {tuple(rank.tokens[r, :rank.target_index[r, 0] + 1]) for r in rows}
        assert len(prompts) == 1 and prompts <= train_prompts  # one training query per group
        docs = [int(rank.doc_index[r]) for r in rows]
        assert len(set(docs)) == 3  # the positive, then two other documents
        for r in rows:  # each row's labels are its document's docid + EOS
            labels = rank.labels[r][rank.label_mask[r]]
            assert tokenizer.decode(labels[:-1]) == docids[data.docid_rows[0][rank.doc_index[r]]]
    positives = sorted(int(rank.doc_index[3 * g]) for g in range(len(rank) // 3))
    assert positives == sorted(data.train.doc_index.tolist())
