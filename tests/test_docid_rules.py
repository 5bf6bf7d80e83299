"""The keyword-docid rules post-check: each rule, the TF-IDF fallback, determinism, and the rules as invariants."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from zerogr_jax.indexing.docid_rules import DocidRules, check_docid
from zerogr_jax.indexing.terms import ARTICLES, STOP_WORDS, DocumentTerms, TermStats, normalize, stem, terms

CORPUS = [
    ("Insulin resistance in obese mice", "High fat diet increases insulin resistance and liver fat in obese mice. "
     "Glucose tolerance tests show impaired glucose uptake in muscle cells."),
    ("Sleep and memory", "Sleep deprivation impairs memory consolidation in the hippocampus of adult mice."),
    ("Vaccine trial", "A randomized trial of an influenza vaccine in elderly patients measured antibody titers."),
    ("", "Diet and obesity in mice: fat intake and insulin levels."),
]


def corpus_stats() -> TermStats:
    stats = TermStats()
    for title, text in CORPUS:
        stats.add(title, text)
    return stats


def doc_terms(i: int = 0) -> DocumentTerms:
    return DocumentTerms.from_document(*CORPUS[i])


def test_normalize_folds_case_accents_and_punctuation():
    assert normalize("  Naïve Café—TNF-α, (IL-6)!  ") == "naive cafe tnf il 6"
    assert terms("writeBoolean(self)") == ["writeboolean", "write", "boolean", "self"]


def test_each_rule_drops_and_records():
    raw = "1. The insulin\n2. is resistance, resistance; obese MICE Mice zebrafish glucose uptake muscle liver diet"
    check = check_docid(raw, doc_terms(), corpus_stats())
    assert check.docid == "insulin resistance obese mice glucose uptake muscle liver"
    assert check.dropped == {"article": ("the",), "stop_word": ("is",), "repeat": ("resistance", "mice"),
                             "absent": ("zebrafish",), "over_length": ("diet",)}
    assert check.filled == () and not check.short
    assert check.changes()["dropped"]["repeat"] == ["resistance", "mice"]


def test_plural_and_stem_matches_count_as_present():
    check = check_docid("cell tests tolerance uptakes fats livers", doc_terms(), corpus_stats())
    assert check.docid == "cell tests tolerance uptakes fats livers"
    assert "absent" not in check.dropped


def test_fallback_fills_with_tfidf_terms_common_to_rare_and_is_deterministic():
    stats = corpus_stats()
    doc = doc_terms()
    check = check_docid("insulin zebrafish the", doc, stats)
    again = check_docid("insulin zebrafish the", doc, stats)
    assert check == again
    words = check.docid.split()
    assert words[0] == "insulin" and len(words) == DocidRules().min_words
    assert list(check.filled) == words[1:]
    dfs = [stats.df[stem(w)] for w in check.filled]
    assert dfs == sorted(dfs, reverse=True)  # general -> specific
    assert len({stem(w) for w in words}) == len(words)
    # the filled terms are the document's best TF-IDF terms not already used
    best = [doc.surface[i] for i in doc.ranked(stats) if doc.stems[i] != stem("insulin")][:len(check.filled)]
    assert sorted(check.filled) == sorted(best)


def test_document_with_few_terms_is_marked_short():
    doc = DocumentTerms.from_document("", "Heart attack.")
    stats = TermStats()
    stats.add("", "Heart attack.")
    check = check_docid("", doc, stats)
    assert check.docid == "heart attack" and check.short
    assert check.changes() == {"filled": ["heart", "attack"], "short": True}


@settings(max_examples=60, deadline=None)
@given(raw=st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz ,.-\n1É")), max_size=120),
       doc_index=st.integers(0, len(CORPUS) - 1),
       extra=st.lists(st.sampled_from(["insulin", "mice", "the", "is", "glucose", "sleep", "fat", "fats", "an"]),
                      max_size=12))
def test_checked_docids_always_obey_the_rules(raw, doc_index, extra):
    rules = DocidRules()
    raw = raw + " " + " ".join(extra)
    doc = doc_terms(doc_index)
    check = check_docid(raw, doc, corpus_stats(), rules)
    words = check.docid.split()
    assert re.fullmatch(r"[a-z0-9 ]*", check.docid) and "  " not in check.docid
    assert len(words) <= rules.max_words
    assert len(words) >= rules.min_words or check.short
    assert not set(words) & (ARTICLES | STOP_WORDS)
    assert len({stem(w) for w in words}) == len(words)
    assert all(doc.contains(w) for w in words)
    assert check == check_docid(raw, doc, corpus_stats(), rules)
