"""Docid schemes behind one interface, and the corpus-wide collision resolution.

Schemes (`make_scheme(name, ...)`):
  keyword_lm      the instruct LM writes 6-8 keywords (system line + instruction + document cut to its first 128
                  words, an assistant turn opened with "Keywords:", greedy with a repetition penalty), then the
                  rules post-check of `docid_rules` makes the output obey the rules.
  tfidf_keywords  the document's 7 best TF-IDF terms (title terms count `title_boost` times), ordered common -> rare.
  title           the normalised title; the first words of the text when the title is empty.
  random_string   8 pseudo-words drawn from sha256(seed, doc_id): deterministic, meaningless.
  atomic          the document's position in the corpus, as a number string.

Collisions are global, so they are resolved once over the whole corpus (`resolve_collisions`): documents sharing a
docid are extended, round by round, with their rarest unused term that the other members of the group do not all
have, then with any other word of their text (numbers, stop words, identifier parts), then with an ordinal; only
documents whose text is identical keep one shared docid, and the trie leaf holds all of them. No document is ever
dropped.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import hashlib
from typing import Callable, Mapping, Protocol, Sequence

from zerogr_jax.indexing.docid_rules import DocidRules, check_docid
from zerogr_jax.indexing.generator_protocol import TextGenerator
from zerogr_jax.indexing.seeds import STAGE_DOCIDS, derive_seed
from zerogr_jax.indexing.terms import DocumentTerms, TermStats, normalize, stem, truncate_words

Progress = Callable[[int], None]  # called with the number of documents just finished


class DocumentLike(Protocol):
    doc_id: str
    title: str
    text: str


@dataclasses.dataclass(frozen=True)
class DocidRecord:
    docid: str  # after the scheme's own rules, before corpus-wide collision resolution
    docid_raw: str  # what the scheme produced first (the LM completion for keyword_lm)
    changes: dict  # JSON-ready record of what the rules changed (empty when nothing)


class DocidScheme(abc.ABC):
    """Maps documents to docids. `start` is the corpus position of documents[0] (atomic ids); `seed` is the
    per-shard generation seed (only LM schemes use it)."""

    name: str = ""

    @abc.abstractmethod
    def assign_records(self, documents: Sequence[DocumentLike], *, start: int = 0, seed: int = 0,
                       progress: Progress | None = None) -> list[DocidRecord]: ...

    def assign(self, documents: Sequence[DocumentLike], *, start: int = 0, seed: int = 0) -> list[str]:
        return [r.docid for r in self.assign_records(documents, start=start, seed=seed)]

    def describe(self) -> dict:
        """Everything that determines the output (goes into the manifest and the resume fingerprint)."""
        return {"name": self.name}


def empty_fallback(doc_id: str) -> str:
    """The docid of a document without a single usable word (e.g. text in a script that ASCII folding removes)."""
    return " ".join(["doc", *normalize(doc_id).split()][:8]) if normalize(doc_id) else \
        "doc " + hashlib.sha256(doc_id.encode()).hexdigest()[:12]


def _record(docid: str, raw: str, doc_id: str, changes: dict | None = None) -> DocidRecord:
    changes = dict(changes or {})
    if not docid:
        docid = empty_fallback(doc_id)
        changes["empty_fallback"] = True
    return DocidRecord(docid, raw, changes)


@dataclasses.dataclass(frozen=True)
class DocidPrompt:
    system: str = "You are an indexing assistant. You write short keyword identifiers for documents."
    instruction: str = ("Write 6 to 8 keywords that identify the document below: lowercase words taken from the "
                        "document, ordered from the most general to the most specific, separated by spaces. "
                        "No articles, no verbs, no punctuation, no repeated words.")
    assistant_prefix: str = "Keywords:"
    doc_words: int = 128

    def conversation(self, doc: DocumentLike) -> list[dict]:
        body = truncate_words(doc.text, self.doc_words)
        shown = f"Title: {doc.title.strip()}\n{body}" if doc.title.strip() else body
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": f"{self.instruction}\n\nDocument:\n{shown}"}]


class KeywordLMScheme(DocidScheme):
    name = "keyword_lm"

    def __init__(self, generator: TextGenerator, stats: TermStats, *, prompt: DocidPrompt = DocidPrompt(),
                 rules: DocidRules = DocidRules(), batch_size: int = 32, max_new_tokens: int = 32,
                 repetition_penalty: float = 1.3, title_boost: float = 3.0):
        self.generator, self.stats, self.prompt, self.rules = generator, stats, prompt, rules
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.repetition_penalty, self.title_boost = repetition_penalty, title_boost

    def describe(self) -> dict:
        return {"name": self.name, "prompt": dataclasses.asdict(self.prompt), "rules": dataclasses.asdict(self.rules),
                "batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens, "temperature": 0.0,
                "repetition_penalty": self.repetition_penalty, "title_boost": self.title_boost}

    def assign_records(self, documents, *, start=0, seed=0, progress=None):
        out: list[DocidRecord] = []
        for b in range(0, len(documents), self.batch_size):
            batch = documents[b:b + self.batch_size]
            completions = self.generator.chat(
                [self.prompt.conversation(d) for d in batch], assistant_prefix=self.prompt.assistant_prefix,
                max_new_tokens=self.max_new_tokens, temperature=0.0, num_samples=1,
                seed=derive_seed(seed, STAGE_DOCIDS, b), repetition_penalty=self.repetition_penalty)
            if len(completions) != len(batch):
                raise ValueError(f"generator returned {len(completions)} results for {len(batch)} conversations")
            for d, samples in zip(batch, completions):
                raw = samples[0] if samples else ""
                terms = DocumentTerms.from_document(d.title, d.text, self.title_boost)
                check = check_docid(raw, terms, self.stats, self.rules)
                out.append(_record(check.docid, raw, d.doc_id, check.changes()))
            if progress:
                progress(len(batch))
        return out


class TfidfKeywordsScheme(DocidScheme):
    name = "tfidf_keywords"

    def __init__(self, stats: TermStats, *, num_terms: int = 7, title_boost: float = 3.0):
        self.stats, self.num_terms, self.title_boost = stats, num_terms, title_boost

    def describe(self) -> dict:
        return {"name": self.name, "num_terms": self.num_terms, "title_boost": self.title_boost}

    def assign_records(self, documents, *, start=0, seed=0, progress=None):
        out = []
        for d in documents:
            docid = " ".join(DocumentTerms.from_document(d.title, d.text, self.title_boost)
                             .keywords(self.stats, self.num_terms))
            out.append(_record(docid, docid, d.doc_id))
        if progress:
            progress(len(documents))
        return out


class TitleScheme(DocidScheme):
    name = "title"

    def __init__(self, *, max_words: int = 20, fallback_words: int = 8):
        self.max_words, self.fallback_words = max_words, fallback_words

    def describe(self) -> dict:
        return {"name": self.name, "max_words": self.max_words, "fallback_words": self.fallback_words}

    def assign_records(self, documents, *, start=0, seed=0, progress=None):
        out = []
        for d in documents:
            words = normalize(d.title).split()[:self.max_words]
            changes = {}
            if not words:
                words = normalize(d.text).split()[:self.fallback_words]
                changes = {"from_text": True}
            out.append(_record(" ".join(words), d.title, d.doc_id, changes))
        if progress:
            progress(len(documents))
        return out


_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


class RandomStringScheme(DocidScheme):
    """`num_words` two-syllable pseudo-words from sha256(seed, doc_id): the same document gets the same string in
    any shard, process or run."""

    name = "random_string"

    def __init__(self, *, seed: int = 0, num_words: int = 8):
        if num_words > 16:
            raise ValueError("random_string supports at most 16 words (two syllables per sha256 byte pair)")
        self.seed, self.num_words = seed, num_words

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, "num_words": self.num_words}

    def string(self, doc_id: str) -> str:
        digest = hashlib.sha256(f"{self.seed}\x00{doc_id}".encode()).digest()
        syllables = [_CONSONANTS[b % len(_CONSONANTS)] + _VOWELS[(b // len(_CONSONANTS)) % len(_VOWELS)]
                     for b in digest]
        return " ".join(syllables[2 * i] + syllables[2 * i + 1] for i in range(self.num_words))

    def assign_records(self, documents, *, start=0, seed=0, progress=None):
        out = [_record(self.string(d.doc_id), self.string(d.doc_id), d.doc_id) for d in documents]
        if progress:
            progress(len(documents))
        return out


class AtomicScheme(DocidScheme):
    name = "atomic"

    def assign_records(self, documents, *, start=0, seed=0, progress=None):
        out = [_record(str(start + i), str(start + i), d.doc_id) for i, d in enumerate(documents)]
        if progress:
            progress(len(documents))
        return out


SCHEMES = ("keyword_lm", "tfidf_keywords", "title", "random_string", "atomic")


def make_scheme(name: str, *, stats: TermStats | None = None, generator: TextGenerator | None = None,
                seed: int = 0, batch_size: int = 32) -> DocidScheme:
    """The named scheme; `stats` (corpus term statistics) for keyword_lm / tfidf_keywords, `generator` for
    keyword_lm."""
    if name == "keyword_lm":
        if generator is None or stats is None:
            raise ValueError("docid scheme keyword_lm needs a text generator and corpus term statistics")
        return KeywordLMScheme(generator, stats, batch_size=batch_size)
    if name == "tfidf_keywords":
        if stats is None:
            raise ValueError("docid scheme tfidf_keywords needs corpus term statistics")
        return TfidfKeywordsScheme(stats)
    if name == "title":
        return TitleScheme()
    if name == "random_string":
        return RandomStringScheme(seed=seed)
    if name == "atomic":
        return AtomicScheme()
    raise ValueError(f"unknown docid scheme {name!r}; choose one of {', '.join(SCHEMES)}")


# --------------------------------------------------------------------------------------------------------------
# Collision resolution


def collision_stats(docids: Sequence[str]) -> dict:
    """collision_rate = 1 - unique / documents; docs_in_collisions = documents whose docid another one shares."""
    counts = collections.Counter(docids)
    n = len(docids)
    in_collisions = sum(c for c in counts.values() if c > 1)
    return {"num_docs": n, "num_unique": len(counts),
            "collision_rate": (1 - len(counts) / n) if n else 0.0,
            "docs_in_collisions": in_collisions,
            "docs_in_collisions_rate": in_collisions / n if n else 0.0}


@dataclasses.dataclass(frozen=True)
class Resolution:
    docids: list[str]  # final docid per document (corpus order)
    appended: dict[int, list[str]]  # document index -> words appended to its docid
    shared: list[list[int]]  # groups of documents left sharing one docid: identical text, nothing can part them
    before: dict  # collision_stats of the input
    after: dict  # collision_stats of the output
    # how the appended words were found: content_term (a rarer keyword), other_term (a number, stop word or short
    # identifier part the keyword rules drop), ordinal ("2", "3", ...: distinct texts with the same words)
    extended_by: dict = dataclasses.field(default_factory=dict)
    shared_distinct_groups: int = 0  # shared groups whose texts differ (0 by construction; counted as a check)


TermsOf = Callable[[list[int]], Mapping[int, DocumentTerms]]


def docid_to_documents(docids: Sequence[str]) -> dict[str, list[int]]:
    """docid -> indices of the documents it leads to (a multi-document leaf when more than one)."""
    out: dict[str, list[int]] = {}
    for i, d in enumerate(docids):
        out.setdefault(d, []).append(i)
    return out


def _content_pick(i: int, group: list[int], cache: Mapping[int, DocumentTerms], stats: TermStats,
                  used: set[str]) -> str | None:
    """Document i's rarest content term that is not in its docid and that not every other member has."""
    doc = cache[i]
    others = set.intersection(*(set(cache[j].stems) for j in group if j != i))
    for k in doc.most_specific_first(stats):
        if doc.stems[k] not in used and doc.stems[k] not in others:
            return doc.surface[k]
    return None


def _other_pick(i: int, group: list[int], cache: Mapping[int, DocumentTerms], used: set[str]) -> str | None:
    """Document i's first term of any kind (numbers, stop words, one-letter identifier parts) that is not in its
    docid and that not every other member has."""
    others = frozenset.intersection(*(cache[j].all_terms for j in group if j != i))
    for t in cache[i].sequence:
        if t not in others and t not in used and stem(t) not in used:
            return t
    return None


def resolve_collisions(docids: Sequence[str], terms_of: TermsOf, stats: TermStats) -> Resolution:
    """Makes colliding docids distinct unless the documents' texts are identical.

    Round by round, every member of a group that shares a docid is extended with one word that tells it apart from
    the others: its rarest content term that not all the others have; failing that, any term of its text (a number,
    a stop word, `x` of `winfo_x`); failing that — the texts hold the same words in another order or number — the
    members whose text differs from the group's first document get an ordinal ("2", "3", ...), the smallest that
    makes a docid no other document has. Documents whose title + text are identical (whitespace normalised) keep one
    shared docid, and the trie leaf holds all of them. No document is ever dropped.

    `terms_of(indices)` returns the `DocumentTerms` of those documents; it is called only for documents that take
    part in a collision (a streaming corpus pass in the index builder), batched per round.
    """
    final = list(docids)
    cache: dict[int, DocumentTerms] = {}
    used: dict[int, set[str]] = {}  # words of each docid and their stems
    appended: dict[int, list[str]] = {}
    extended_by: collections.Counter = collections.Counter()

    def extend(i: int, word: str, how: str) -> None:
        final[i] = f"{final[i]} {word}"
        used[i] |= {word, stem(word)}
        appended.setdefault(i, []).append(word)
        extended_by[how] += 1

    while True:
        groups = [g for g in docid_to_documents(final).values() if len(g) > 1]
        missing = sorted({i for g in groups for i in g if i not in cache})
        if missing:
            got = terms_of(missing)
            for i in missing:
                cache[i] = got[i]
                used[i] = {w for t in final[i].split() for w in (t, stem(t))}
        groups = [g for g in groups if len({cache[i].text_digest for i in g}) > 1]  # identical texts stay shared
        if not groups:
            break
        taken = set(final)
        for group in groups:
            # picks are applied after the group is scanned: they do not see each other
            picks = {i: (w, "content_term") for i in group
                     if (w := _content_pick(i, group, cache, stats, used[i])) is not None}
            if not picks:
                picks = {i: (w, "other_term") for i in group
                         if (w := _other_pick(i, group, cache, used[i])) is not None}
            if not picks:  # the same words: the first document keeps the docid, other texts get an ordinal
                first = cache[group[0]].text_digest
                ordinals: dict[str, str] = {}
                for i in group:
                    digest = cache[i].text_digest
                    if digest != first and digest not in ordinals:
                        n = 2
                        while f"{final[i]} {n}" in taken:
                            n += 1
                        ordinals[digest] = str(n)
                        taken.add(f"{final[i]} {n}")
                    if digest != first:
                        picks[i] = (ordinals[digest], "ordinal")
            for i, (word, how) in picks.items():
                extend(i, word, how)
    leaves = docid_to_documents(final)
    reachable = sorted(i for docs in leaves.values() for i in docs)
    assert reachable == list(range(len(docids))), "collision resolution lost or duplicated a document"
    assert all(final), "empty docid after collision resolution"
    shared = [g for g in leaves.values() if len(g) > 1]
    distinct = sum(len({cache[i].text_digest for i in g}) > 1 for g in shared)
    return Resolution(final, appended, shared, collision_stats(docids), collision_stats(final),
                      dict(sorted(extended_by.items())), distinct)


def in_memory_terms(documents: Sequence[DocumentLike], title_boost: float = 3.0) -> TermsOf:
    """`terms_of` for documents held in memory."""
    return lambda idx: {i: DocumentTerms.from_document(documents[i].title, documents[i].text, title_boost)
                        for i in idx}
