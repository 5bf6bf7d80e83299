"""The rules a keyword docid must obey, and the post-check that makes an LM's output obey them.

A keyword docid is 6-8 lowercase words (letters, digits), no articles, no verbs, no repeated term, every word
taken from the document, ordered general -> specific. The embedded 135M model copies the document, repeats terms
and invents words, so its raw output goes through `check_docid`, which
  1. normalises (lowercase, `a-z0-9` and spaces; list numbering like "1." removed),
  2. drops articles, stop words / common verbs (a closed-list heuristic, see `terms.STOP_WORDS`), repeats (same
     stem) and words absent from the document (exact or same-stem match against the whole document),
  3. keeps at most `max_words`,
  4. when fewer than `min_words` remain, appends the document's best TF-IDF keywords not already used, ordered
     common -> rare (general -> specific), until `min_words` are reached or the document runs out of terms.
The result is a pure function of (raw output, document, corpus statistics), so it is deterministic, and the
record of every change feeds the quality report.
"""

from __future__ import annotations

import dataclasses
import re

from zerogr_jax.indexing.terms import ARTICLES, STOP_WORDS, DocumentTerms, TermStats, normalize, stem

_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class DocidRules:
    min_words: int = 6
    max_words: int = 8


@dataclasses.dataclass(frozen=True)
class RuleCheck:
    """A checked docid, the raw text it came from, and what the check changed."""

    docid: str
    raw: str
    dropped: dict  # reason -> terms, reasons: article, stop_word, repeat, absent, over_length
    filled: tuple[str, ...]  # fallback TF-IDF terms appended
    short: bool  # still fewer than min_words words (the document has too few distinct content terms)

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.filled) or self.docid != normalize(self.raw)

    def changes(self) -> dict:
        """JSON-ready record (only the non-empty parts)."""
        out: dict = {}
        if self.dropped:
            out["dropped"] = {k: list(v) for k, v in sorted(self.dropped.items())}
        if self.filled:
            out["filled"] = list(self.filled)
        if self.short:
            out["short"] = True
        return out


def candidate_words(raw: str) -> list[str]:
    """The normalised words of an LM completion, list markers ("1.", "-", "*") removed."""
    return normalize(_LIST_MARKER.sub(" ", raw)).split()


def check_docid(raw: str, doc: DocumentTerms, stats: TermStats, rules: DocidRules = DocidRules()) -> RuleCheck:
    """Applies the docid rules to `raw` for the document `doc` (see the module docstring)."""
    dropped: dict[str, list[str]] = {}
    kept: list[str] = []
    seen_stems: set[str] = set()
    for w in candidate_words(raw):
        if w in ARTICLES:
            reason = "article"
        elif w in STOP_WORDS:
            reason = "stop_word"
        elif stem(w) in seen_stems:
            reason = "repeat"
        elif not doc.contains(w):
            reason = "absent"
        elif len(kept) >= rules.max_words:
            reason = "over_length"
        else:
            kept.append(w)
            seen_stems.add(stem(w))
            continue
        dropped.setdefault(reason, []).append(w)
    filled: list[str] = []
    if len(kept) < rules.min_words:
        filled = fill_terms(doc, stats, rules.min_words - len(kept), seen_stems)
        kept += filled
    return RuleCheck(" ".join(kept), raw, {k: tuple(v) for k, v in dropped.items()}, tuple(filled),
                     len(kept) < rules.min_words)


def fill_terms(doc: DocumentTerms, stats: TermStats, count: int, used_stems: set[str]) -> list[str]:
    """The deterministic fallback: the `count` best TF-IDF terms of the document whose stems are unused,
    ordered common -> rare."""
    if count <= 0:
        return []
    return doc.keywords(stats, count, exclude_stems=used_stems)
