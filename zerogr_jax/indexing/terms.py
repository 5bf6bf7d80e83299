"""Terms of a document: normalisation, a closed stop list, stems, corpus document frequencies and TF-IDF keywords.

One normalisation serves every indexing step (docid rules, TF-IDF docids, collision resolution, the pseudo-query
topic filter), so "a term found in the document" means the same thing everywhere:
ASCII-folded, lowercased, every run of characters other than `a-z0-9` turned into one space. Identifiers written
in camelCase (code collections such as cosqa) also contribute their parts (`writeBoolean` -> `writeboolean`,
`write`, `boolean`), so a docid or query word taken from inside an identifier counts as present.

The stop list is a heuristic, not a part-of-speech tagger: articles, pronouns, prepositions, conjunctions,
auxiliaries and a closed list of common verbs (plus a few Python tokens that carry no content). A verb missing
from the list passes the docid rules; a noun that doubles as a listed verb ("use") is dropped. Stems are Snowball
English (PyStemmer): regular plurals and inflections match ("cells" ~ "cell"), irregular ones do not ("mice" vs
"mouse").
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import math
import re
import unicodedata
from typing import Iterable

ARTICLES = frozenset({"a", "an", "the"})

_FUNCTION_WORDS = """
i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves this that these those who whom whose which what when where
why how there here
and or but nor so yet if then else than because while although though unless whether either neither both
of in on at by for with without within from to into onto upon about above below over under between among through
during before after since until till against across along around behind beyond near off out up down via per toward
towards versus vs amongst despite except inside outside throughout as like unlike due
not no yes all any each every some such other another same own more most less least many much few several only
just also too very quite rather again further once ever even still however thus therefore hence moreover furthermore
whereas whereby wherein etc ie eg e g i e et al
one ones can cannot
"""

_VERBS = """
am is are was were be been being do does did done doing have has had having will would shall should can could may
might must ought
get gets got gotten getting make makes made making use uses used using show shows showed shown showing find finds
found finding give gives gave given giving take takes took taken taking go goes went gone going come comes came coming
see sees saw seen seeing know knows knew known knowing say says said saying tell tells told think thinks thought
want wants wanted need needs needed let lets seem seems seemed become becomes became put puts keep keeps kept
include includes included including contain contains contained containing provide provides provided providing
suggest suggests suggested demonstrate demonstrates demonstrated indicate indicates indicated reveal reveals revealed
investigate investigates investigated examine examines examined evaluate evaluates evaluated assess assesses assessed
determine determines determined compare compares compared perform performs performed observe observes observed
obtain obtains obtained describe describes described present presents presented propose proposes proposed
consider considers considered appear appears appeared remain remains remained allow allows allowed enable enables
enabled involve involves involved associate associated identify identifies identified
write writes wrote written writing return returns returned returning
"""

# Python tokens that appear in nearly every function of a code collection and name nothing.
_CODE_TOKENS = "def self cls elif args kwargs none true false lambda nonlocal async await del"

STOP_WORDS = frozenset((_FUNCTION_WORDS + _VERBS + _CODE_TOKENS).split()) | ARTICLES

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def ascii_fold(text: str) -> str:
    """Accents removed (é -> e); other non-ASCII characters (dashes, Greek letters...) become spaces, so they
    still separate words."""
    if text.isascii():
        return text
    return "".join(c if c.isascii() else ("" if unicodedata.combining(c) else " ")
                   for c in unicodedata.normalize("NFKD", text))


def normalize(text: str) -> str:
    """Lowercase letters, digits and single spaces; everything else becomes a word break."""
    return " ".join(_NON_ALNUM.sub(" ", ascii_fold(text)).lower().split())


def words(text: str) -> list[str]:
    """The normalised words of `text`, in order (no camelCase parts)."""
    return normalize(text).split()


def terms(text: str) -> list[str]:
    """Normalised words in order, each camelCase identifier followed by its lowercased parts."""
    out: list[str] = []
    for raw in _NON_ALNUM.split(ascii_fold(text)):
        if not raw:
            continue
        out.append(raw.lower())
        parts = _CAMEL_BOUNDARY.split(raw)
        if len(parts) > 1:
            out.extend(p.lower() for p in parts if p)
    return out


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer: the Snowball English stemmer, also what bm25s uses

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=1 << 18)
def stem(term: str) -> str:
    """Snowball stem of a normalised term (so plurals and simple inflections match)."""
    return _stemmer().stemWord(term)


def is_content_term(term: str) -> bool:
    """A keyword candidate: not a stop word, at least 2 characters, not a bare number."""
    return len(term) >= 2 and term not in STOP_WORDS and not term.isdigit()


def content_stems(text: str) -> set[str]:
    """Stems of the content terms of `text` (what topical overlap is measured on)."""
    return {stem(t) for t in terms(text) if is_content_term(t)}


def document_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text


def text_digest(title: str, text: str) -> str:
    """sha256 of a document's title and text with every run of whitespace made one space (and none at the ends)."""
    return hashlib.sha256(" ".join(document_text(title, text).split()).encode("utf-8")).hexdigest()


def truncate_words(text: str, max_words: int) -> str:
    """The first `max_words` whitespace-separated words of `text` (the LM prompts see documents cut this way)."""
    parts = text.split()
    return " ".join(parts[:max_words])


@dataclasses.dataclass
class TermStats:
    """Corpus document frequencies of content-term stems (built in one streaming pass)."""

    num_docs: int = 0
    df: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, title: str, text: str) -> None:
        self.num_docs += 1
        self.df.update(content_stems(document_text(title, text)))

    def idf(self, term_stem: str) -> float:
        """Smoothed idf, log((1 + N) / (1 + df)) + 1: positive for every term, unseen terms the highest."""
        return math.log((1 + self.num_docs) / (1 + self.df.get(term_stem, 0))) + 1.0

    @classmethod
    def from_documents(cls, documents: Iterable) -> "TermStats":
        stats = cls()
        for d in documents:
            stats.add(d.title, d.text)
        return stats


@dataclasses.dataclass(frozen=True)
class DocumentTerms:
    """The content terms of one document, one entry per stem, in order of first occurrence (title first).

    `surface[i]` is the first surface form seen for `stems[i]`; `tf[i]` counts text occurrences plus
    `title_boost` per title occurrence.
    """

    surface: tuple[str, ...]
    stems: tuple[str, ...]
    tf: tuple[float, ...]
    all_stems: frozenset  # stems of every term of the document, stop words included (for presence checks)
    all_terms: frozenset  # every normalised term of the document (exact presence)
    # every normalised term once, in order of first occurrence (title first), numbers, stop words and one-letter
    # identifier parts included: what collision resolution falls back on when the content terms are the same
    sequence: tuple[str, ...] = ()
    text_digest: str = ""  # sha256 of title + text with whitespace normalised: identical documents, same digest

    @classmethod
    def from_document(cls, title: str, text: str, title_boost: float = 3.0) -> "DocumentTerms":
        index: dict[str, int] = {}
        surface: list[str] = []
        stems: list[str] = []
        tf: list[float] = []
        everything: list[str] = []
        for weight, source in ((title_boost, title), (1.0, text)):
            for t in terms(source):
                everything.append(t)
                if not is_content_term(t):
                    continue
                s = stem(t)
                if s not in index:
                    index[s] = len(surface)
                    surface.append(t)
                    stems.append(s)
                    tf.append(0.0)
                tf[index[s]] += weight
        return cls(tuple(surface), tuple(stems), tuple(tf), frozenset(stem(t) for t in everything),
                   frozenset(everything), tuple(dict.fromkeys(everything)), text_digest(title, text))

    def contains(self, term: str) -> bool:
        """Whether a normalised term occurs in the document, exactly or up to its stem."""
        return term in self.all_terms or stem(term) in self.all_stems

    def scores(self, stats: TermStats) -> list[float]:
        return [tf * stats.idf(s) for tf, s in zip(self.tf, self.stems)]

    def ranked(self, stats: TermStats) -> list[int]:
        """Term indices by TF-IDF, best first (ties: earlier first occurrence)."""
        sc = self.scores(stats)
        return sorted(range(len(self.surface)), key=lambda i: (-sc[i], i))

    def keywords(self, stats: TermStats, k: int, exclude_stems: Iterable[str] = ()) -> list[str]:
        """The `k` best TF-IDF terms (not in `exclude_stems`), ordered general -> specific: common -> rare by df."""
        excluded = set(exclude_stems)
        chosen = [i for i in self.ranked(stats) if self.stems[i] not in excluded][:k]
        sc = self.scores(stats)
        chosen.sort(key=lambda i: (-stats.df.get(self.stems[i], 0), -sc[i], i))
        return [self.surface[i] for i in chosen]

    def most_specific_first(self, stats: TermStats) -> list[int]:
        """Term indices rarest first (by corpus df; ties by TF-IDF, then position): the order used to extend
        colliding docids."""
        sc = self.scores(stats)
        return sorted(range(len(self.surface)), key=lambda i: (stats.df.get(self.stems[i], 0), -sc[i], i))
