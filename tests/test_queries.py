"""Pseudo-query prompts, cleaning, filtering with per-reason counts, and document-as-query rows."""

from __future__ import annotations

import collections

from indexing_fakes import FakeGenerator, synthetic_documents
from zerogr_jax.data.beir import Document
from zerogr_jax.indexing.queries import (DROP_REASONS, QueryPrompt, clean_completion, doc_as_query, document_spans,
                                         filter_queries, generate_pseudo_queries, keyphrase_queries, title_query)
from zerogr_jax.indexing.terms import DocumentTerms, TermStats, content_stems

INSTRUCTION = "Given a scientific claim, retrieve abstracts that support or refute it"


def test_prompt_is_system_two_examples_then_instruction_and_cut_document():
    doc = Document("x", "Sleep and memory", " ".join(f"w{i}" for i in range(200)))
    prompt = QueryPrompt(INSTRUCTION)
    conv = prompt.conversation(doc)
    assert [t["role"] for t in conv] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert all(INSTRUCTION in t["content"] for t in conv if t["role"] == "user")
    assert all(t["content"].startswith("Query: ") for t in conv if t["role"] == "assistant")
    last = conv[-1]["content"]
    assert "Title: Sleep and memory" in last and "w127" in last and "w128" not in last


def test_code_tasks_get_code_examples():
    code = QueryPrompt("Given a web search query, retrieve the Python function that answers it")
    text = QueryPrompt(INSTRUCTION)
    assert all(ex.startswith("def ") for ex, _ in code.examples)
    assert not any("def " in ex or "python" in q for ex, q in text.examples)
    assert len(code.examples) == len(text.examples) == 2


def test_clean_completion_takes_the_first_line_without_labels_or_quotes():
    assert clean_completion(' "does sleep help memory"\nBecause ...') == "does sleep help memory"
    assert clean_completion("\n\nQuery: vitamin d  falls ") == "vitamin d falls"
    assert clean_completion("   ") == ""


def test_filter_counts_every_drop_reason():
    doc = Document("x", "Vitamin D and falls", "Vitamin D supplements reduced falls in elderly women.")
    stems = content_stems(f"{doc.title}\n{doc.text}")
    completions = [
        " vitamin d falls elderly",  # kept
        " Vitamin D, falls elderly!",  # duplicate after normalisation
        " ",  # empty
        " " + "vitamin " * 40,  # too long
        " What is the main purpose of this passage?",  # meta
        " Summarize the findings about vitamin D",  # meta
        " do rotating night shifts reduce sleep duration in nurses",  # copied example
        " quantum chromodynamics on the lattice",  # off topic: nothing in common
        " python read the previous task based on vitamin filters",  # off topic: 1 of 7 content stems shared
        " do supplements prevent a fall in older women",  # kept (stem match: fall ~ falls)
    ]
    kept, drops = filter_queries(completions, stems, [q for _, q in QueryPrompt(INSTRUCTION).examples])
    assert kept == ["vitamin d falls elderly", "do supplements prevent a fall in older women"]
    assert drops == collections.Counter(empty=1, too_long=1, meta=2, copied_example=1, off_topic=2, duplicate=1)
    assert set(drops) <= set(DROP_REASONS)


def test_generation_samples_b_per_document_at_temperature_one_and_accounts_for_each():
    gen = FakeGenerator()
    docs = synthetic_documents(7)
    prompt = QueryPrompt(INSTRUCTION)
    results = generate_pseudo_queries(gen, docs, prompt, num_queries=16, seed=5, batch_size=3)
    assert [c["n"] for c in gen.calls] == [3, 3, 1]
    for call in gen.calls:
        assert call["temperature"] == 1.0 and call["num_samples"] == 16 and call["max_new_tokens"] == 64
        assert call["assistant_prefix"] == "Query:"
    assert len({c["seed"] for c in gen.calls}) == 3
    total = collections.Counter()
    for d, r in zip(docs, results):
        assert len(r.queries) + sum(r.drops.values()) == 16
        assert len(set(r.queries)) == len(r.queries)
        doc_stems = content_stems(f"{d.title}\n{d.text}")
        assert all(content_stems(q) & doc_stems for q in r.queries)
        total.update(r.drops)
    assert total["meta"] and total["off_topic"] and total["empty"] and total["duplicate"]  # the fake drifts
    again = generate_pseudo_queries(FakeGenerator(), docs, prompt, num_queries=16, seed=5, batch_size=3)
    assert again == results
    other = generate_pseudo_queries(FakeGenerator(), docs, prompt, num_queries=16, seed=6, batch_size=3)
    assert other != results


def test_doc_as_query_is_title_plus_leading_words():
    doc = Document("x", "A title", "one two  three\nfour five")
    assert doc_as_query(doc, 3) == "A title one two three"
    assert doc_as_query(Document("y", "", "only text here"), 64) == "only text here"


def test_document_spans_are_distinct_contiguous_word_runs_and_deterministic():
    doc = Document("x", "Sleep and memory", " ".join(f"w{i}" for i in range(60)))
    words = doc.title.split() + doc.text.split()
    spans = document_spans(doc, 5, seed=3)
    assert len(spans) == 5 and len(set(spans)) == 5
    for span in spans:
        w = span.split()
        assert 6 <= len(w) <= 12
        start = words.index(w[0])
        assert words[start:start + len(w)] == w  # a contiguous run of the document
    assert document_spans(doc, 5, seed=3) == spans
    assert document_spans(doc, 5, seed=4) != spans


def test_document_spans_of_short_and_empty_documents():
    short = Document("s", "", "one two three")
    spans = document_spans(short, 4, seed=0)
    assert spans == ["one two three"]  # a 3-word document has one span of at most its length
    assert document_spans(Document("e", "", ""), 4, seed=0) == []
    assert document_spans(short, 0, seed=0) == []


def test_title_query_is_the_title_with_whitespace_collapsed():
    assert title_query(Document("x", "  Boundary   layer\ntransition ", "text")) == "Boundary layer transition"
    assert title_query(Document("y", "", "text only")) == ""


def test_keyphrase_queries_are_distinct_best_terms_in_document_order_and_deterministic():
    docs = synthetic_documents(12)
    stats = TermStats.from_documents(docs)
    for i, doc in enumerate(docs):
        terms = DocumentTerms.from_document(doc.title, doc.text)
        pool = [terms.surface[k] for k in terms.ranked(stats)[:16]]
        order = {t: k for k, t in enumerate(terms.surface)}
        got = keyphrase_queries(doc, stats, 4, seed=i)
        assert got == keyphrase_queries(doc, stats, 4, seed=i) and len(set(got)) == len(got) >= 1
        for q in got:
            words = q.split()
            assert 2 <= len(words) <= 4 and set(words) <= set(pool)
            assert [order[w] for w in words] == sorted(order[w] for w in words)  # document order
    assert keyphrase_queries(Document("e", "", "the of and"), stats, 4, seed=0) == []  # no content terms
    assert keyphrase_queries(docs[0], stats, 0, seed=0) == []


def test_points_back_filter_keeps_the_queries_whose_document_bm25_ranks_in_the_top_k():
    """Doc2Query--: the filter against an explicit BM25 over the corpus; every drop is counted."""
    from zerogr_jax.evaluation.bm25 import bm25_search, build_bm25_index
    from zerogr_jax.indexing.queries import QueryResult, keep_pointing_back

    docs = [Document("a", "", "glacier retreat in the alps"), Document("b", "", "sourdough yeast fermentation"),
            Document("c", "", "coral reef bleaching in warm oceans")]
    index = build_bm25_index(docs)
    results = [QueryResult(["alpine glacier retreat", "yeast bread"], collections.Counter({"meta": 1})),
               QueryResult(["sourdough fermentation"], collections.Counter()),
               QueryResult([], collections.Counter({"empty": 2}))]
    kept = keep_pointing_back(results, docs, lambda q, k: bm25_search(index, q, k=k), top_k=1)
    assert [r.queries for r in kept] == [["alpine glacier retreat"], ["sourdough fermentation"], []]
    assert kept[0].drops == {"meta": 1, "not_pointing_back": 1} and kept[2].drops["empty"] == 2
    assert sum(len(r.queries) + sum(r.drops.values()) for r in kept) == 6  # every sample accounted for
