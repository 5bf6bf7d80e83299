"""Docid schemes and corpus-wide collision resolution: every document stays reachable, identical ones share a leaf."""

from __future__ import annotations

import collections
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing_fakes import FakeGenerator, synthetic_documents
from zerogr_jax.data.beir import Document
from zerogr_jax.indexing import docids as D
from zerogr_jax.indexing.terms import STOP_WORDS, DocumentTerms, TermStats, normalize, stem


def stats_of(docs) -> TermStats:
    return TermStats.from_documents(docs)


def test_tfidf_keywords_are_seven_title_boosted_terms_common_to_rare():
    docs = synthetic_documents(30)
    docs[0] = Document("d0", "Zebrafish", "protein cell receptor kinase pathway tumor growth signal membrane gene "
                                          "expression mouse model protein protein")
    stats = stats_of(docs)
    scheme = D.make_scheme("tfidf_keywords", stats=stats)
    out = scheme.assign(docs)
    assert len(out) == len(docs)
    for d, docid in zip(docs, out):
        words = docid.split()
        terms = DocumentTerms.from_document(d.title, d.text)
        assert len(words) == min(7, len(terms.surface))
        assert all(terms.contains(w) for w in words)
        dfs = [stats.df[stem(w)] for w in words]
        assert dfs == sorted(dfs, reverse=True)
    first = out[0].split()
    assert "zebrafish" in first and first[-1] == "zebrafish"  # rarest (title-only) term goes last


def test_title_scheme_normalises_and_falls_back_to_text():
    docs = [Document("a", "The Effect of X-Rays on Cells", "body"), Document("b", "", "def parse_json(s): return 1")]
    records = D.make_scheme("title").assign_records(docs)
    assert [r.docid for r in records] == ["the effect of x rays on cells", "def parse json s return 1"]
    assert records[1].changes == {"from_text": True}


def test_random_string_is_deterministic_per_document_and_seed():
    docs = synthetic_documents(10)
    a = D.make_scheme("random_string", seed=3).assign(docs)
    assert a == D.make_scheme("random_string", seed=3).assign(list(reversed(docs)))[::-1]  # order-independent
    assert a != D.make_scheme("random_string", seed=4).assign(docs)
    assert len(set(a)) == len(a)
    assert all(len(s.split()) == 8 and normalize(s) == s for s in a)


def test_atomic_ids_are_corpus_positions():
    docs = synthetic_documents(4)
    assert D.make_scheme("atomic").assign(docs, start=10) == ["10", "11", "12", "13"]


def test_keyword_lm_prompts_the_cut_document_and_applies_the_rules():
    gen = FakeGenerator()
    long_doc = Document("x", "Long title", " ".join(f"w{i}" for i in range(300)) + " protein")
    docs = synthetic_documents(8) + [long_doc]
    stats = stats_of(docs)
    scheme = D.make_scheme("keyword_lm", stats=stats, generator=gen, batch_size=4)
    records = scheme.assign_records(docs, seed=7)
    assert [c["n"] for c in gen.calls] == [4, 4, 1]
    call = gen.calls[0]
    assert call["assistant_prefix"] == "Keywords:" and call["temperature"] == 0.0 and call["num_samples"] == 1
    assert call["repetition_penalty"] > 1.0
    assert len({c["seed"] for c in gen.calls}) == 3  # one derived seed per batch
    conv = gen.calls[2]["conversations"][0]
    assert conv[0]["role"] == "system" and conv[-1]["role"] == "user"
    assert "w127" in conv[-1]["content"] and "w128" not in conv[-1]["content"]  # cut to 128 words
    assert "6 to 8" in conv[-1]["content"]
    for d, r in zip(docs, records):
        terms = DocumentTerms.from_document(d.title, d.text)
        words = r.docid.split()
        assert all(terms.contains(w) for w in words) and not set(words) & STOP_WORDS
        assert "zzyzx" in r.changes["dropped"]["absent"] and r.docid_raw.startswith(" The")
    assert records == scheme.assign_records(docs, seed=7)


def test_make_scheme_rejects_unknown_names_and_missing_inputs():
    with pytest.raises(ValueError, match="unknown docid scheme"):
        D.make_scheme("bm25")
    with pytest.raises(ValueError, match="generator"):
        D.make_scheme("keyword_lm", stats=TermStats())


def near_duplicate_corpus() -> list[Document]:
    base = "glucose insulin liver obesity diet mouse model cohort trial dose " * 2  # 10 terms, each twice
    common = [Document(f"z{i}", "", "asthma allergy bone fracture muscle") for i in range(6)]  # asthma/allergy: high df
    return [
        Document("a", "Insulin and diet", base),
        Document("b", "Insulin and diet", base),  # identical to a
        Document("c", "Insulin and diet", base + " asthma"),  # a plus one (common) term
        Document("d", "Insulin and diet", base + " allergy"),  # a plus another
        Document("e", "Insulin and diet", base.replace("trial", "trials") + " asthma"),  # c with a plural
        Document("f", "Insulin and diet", " ".join(reversed(base.split()))),  # a reordered
        Document("g", "Insulin and diet", base + " asthma allergy"),
        *common,
    ]


def test_collision_resolution_keeps_every_document_reachable_and_identical_ones_share():
    docs = near_duplicate_corpus()
    stats = stats_of(docs)
    raw = D.make_scheme("tfidf_keywords", stats=stats).assign(docs)
    assert len(set(raw)) < len(raw)  # the corpus does collide
    res = D.resolve_collisions(raw, D.in_memory_terms(docs), stats)
    leaves = D.docid_to_documents(res.docids)
    assert sorted(i for v in leaves.values() for i in v) == list(range(len(docs)))
    # only identical texts share: a, b and the copies z*. e (c with a plural) is told apart from c; f (a reordered)
    # breaks TF-IDF ties by position, so it got other keywords and never collided.
    shared = sorted(sorted(g) for g in res.shared)
    assert shared == [[0, 1], [7, 8, 9, 10, 11, 12]]
    assert res.shared_distinct_groups == 0
    assert len({res.docids[i] for i in (0, 2, 3, 4, 5, 6, 7)}) == 7
    # extended with the rarest term the other members lack (allergy: df 8 < asthma: df 9) ...
    assert res.appended[2][0] == "asthma" and res.appended[3] == ["allergy"] and res.appended[4][0] == "asthma"
    assert res.appended[6] == ["allergy", "asthma"]
    # ... and e, whose content stems equal c's, by the word that differs or an ordinal
    assert res.extended_by["content_term"] == 5 and set(res.extended_by) <= {"content_term", "other_term", "ordinal"}
    assert res.before["collision_rate"] > res.after["collision_rate"]
    assert res.after["num_unique"] == len(leaves) == 7


def test_documents_that_differ_only_in_numbers_get_distinct_docids():
    """The issue's six documents: identical but for their number, which the keyword rules drop (a bare number)."""
    docs = [Document(f"d{i}", f"title {i} aerodynamics", f"the boundary layer number {i} of the wing")
            for i in range(1, 7)]
    stats = stats_of(docs)
    raw = D.make_scheme("tfidf_keywords", stats=stats).assign(docs)
    assert len(set(raw)) == 1  # the TF-IDF keywords alone are all the same
    res = D.resolve_collisions(raw, D.in_memory_terms(docs), stats)
    assert len(set(res.docids)) == 6 and res.shared == []
    assert [res.appended[i] for i in range(6)] == [[str(i)] for i in range(1, 7)]
    assert res.extended_by == {"other_term": 6}


@pytest.mark.parametrize("texts, expect", [
    (["A Note on Approximating e^x", "A Further Note on Approximating e^x"], [[], ["further"]]),  # a stop word
    (["winfo_x", "winfo_y"], [["x"], ["y"]]),  # one-letter identifier parts
    (["alpha beta gamma", "gamma beta alpha"], [[], ["2"]]),  # the same words reordered: an ordinal
    (["alpha beta gamma", "alpha  beta\ngamma "], None),  # the same text up to whitespace: one shared leaf
])
def test_distinct_texts_never_share_a_docid(texts, expect):
    docs = [Document(f"d{i}", "", t) for i, t in enumerate(texts)]
    stats = stats_of(docs)
    res = D.resolve_collisions(["same docid"] * len(docs), D.in_memory_terms(docs), stats)
    if expect is None:
        assert res.shared == [[0, 1]] and res.appended == {}
    else:
        assert res.shared == [] and [res.appended.get(i, []) for i in range(len(docs))] == expect


def test_an_ordinal_never_collides_with_another_documents_docid():
    docs = [Document("a", "", "alpha beta"), Document("b", "", "beta alpha"), Document("c", "", "gamma")]
    stats = stats_of(docs)
    res = D.resolve_collisions(["x", "x", "x 2"], D.in_memory_terms(docs), stats)
    assert res.docids == ["x", "x 3", "x 2"]


def test_identical_documents_share_one_trie_leaf():
    trie_mod = pytest.importorskip("zerogr_jax.retrieval.trie")
    docs = near_duplicate_corpus()
    stats = stats_of(docs)
    res = D.resolve_collisions(D.make_scheme("tfidf_keywords", stats=stats).assign(docs), D.in_memory_terms(docs),
                               stats)
    eos = 256
    trie = trie_mod.build_trie([list(d.encode()) + [eos] for d in res.docids], eos_id=eos, vocab_size=257)
    assert trie.num_documents == len(docs)
    for u in range(trie.num_docids):
        text = bytes(trie.docid_tokens(u)[:-1]).decode()
        assert sorted(trie.documents(u).tolist()) == D.docid_to_documents(res.docids)[text]
    assert sorted(len(trie.documents(u)) for u in range(trie.num_docids)) == [1, 1, 1, 1, 1, 2, 6]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 25), vocab=st.integers(3, 12))
def test_resolution_property_shared_docids_only_for_identical_texts(seed, n, vocab):
    r = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "zeta", "lambda", "rho", "tau"]
    docs = [Document(f"d{i}", "", " ".join(r.choice(words[:vocab]) for _ in range(r.randint(1, 6))))
            for i in range(n)]
    stats = stats_of(docs)
    raw = D.make_scheme("tfidf_keywords", stats=stats).assign(docs)
    res = D.resolve_collisions(raw, D.in_memory_terms(docs), stats)
    text = [" ".join(d.text.split()) for d in docs]
    groups = collections.defaultdict(list)
    for i, d in enumerate(res.docids):
        groups[d].append(i)
    assert sum(len(g) for g in groups.values()) == n
    for g in groups.values():
        assert len({text[i] for i in g}) == 1  # sharing only when the texts are identical
    for i in range(n):
        for j in range(i):
            if text[i] == text[j]:
                assert res.docids[i] == res.docids[j] or raw[i] != raw[j]
