"""Instructed pseudo-query generation, the filters that keep usable queries, and "document as query" pairs.

Prompt (what the prototype found usable with the 135M SmolLM2): a system line, then two invented worked examples as
earlier chat turns (zero-shot gave meta-questions like "What is the purpose of this passage?"; a single example got
copied), then the task instruction and the document cut to its first 128 words, and an assistant turn opened with
"Query:". B samples per document at temperature 1, up to 64 new tokens; a sample ends at its first line break after
some text (only the first line is kept: generating past it cost ~2x the decode steps for nothing).

Each completion is cleaned (first line, quotes and a repeated "Query:" removed), then dropped, with the reason
counted, when it is: empty, too long, a meta-question about "this passage/document/...", a copy of an example
query, off topic (after stop-word removal, fewer than `min_overlap` content-term stems in common with the document, or
fewer than `min_overlap_share` of the query's content stems), or a duplicate of a query kept before it for the same
document.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Callable, Sequence

from zerogr_jax.indexing.generator_protocol import TextGenerator
from zerogr_jax.indexing.seeds import STAGE_QUERIES, derive_seed
from zerogr_jax.indexing.terms import content_stems, document_text, normalize, truncate_words

DROP_REASONS = ("empty", "too_long", "meta", "copied_example", "off_topic", "duplicate", "not_pointing_back")

# Invented: no example comes from any evaluation collection. Code tasks get code examples (a code example in a
# text task made the 135M model write "python ..." queries about biology abstracts).
TEXT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Title: Night-shift work and sleep quality in hospital nurses\nA survey of 412 nurses in three hospitals "
     "compared sleep duration and daytime sleepiness between rotating night shifts and fixed day shifts. "
     "Nurses on rotating night shifts slept on average 52 minutes less and reported more daytime sleepiness.",
     "do rotating night shifts reduce sleep duration in nurses"),
    ("Title: Corrosion of steel reinforcement in coastal concrete bridges\nCores drilled from 18 bridges within "
     "2 km of the sea were tested for chloride content. Corrosion rates of the reinforcing steel doubled where the "
     "concrete cover was thinner than 40 mm.",
     "chloride corrosion of reinforcing steel in coastal bridges with thin concrete cover"),
)
CODE_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("def load_settings(path):\n    \"\"\"Reads a YAML settings file and returns it as a dict.\"\"\"\n"
     "    with open(path) as f:\n        return yaml.safe_load(f)",
     "python read yaml config file into dictionary"),
    ("def chunks(items, size):\n    \"\"\"Splits a list into lists of at most `size` items.\"\"\"\n"
     "    return [items[i:i + size] for i in range(0, len(items), size)]",
     "split a list into chunks of fixed size in python"),
)
_CODE_TASK = re.compile(r"\b(code|codes|function|functions|python|program|programs|snippet|snippets|method|api)\b",
                        re.IGNORECASE)


def default_examples(instruction: str) -> tuple[tuple[str, str], ...]:
    """Code examples when the instruction names code (a keyword heuristic), else text examples."""
    return CODE_EXAMPLES if _CODE_TASK.search(instruction) else TEXT_EXAMPLES


_META = re.compile(
    r"\b(this|these|above|given|following|provided|attached) (passage|document|text|article|abstract|paper|study|"
    r"snippet|code|function|excerpt|paragraph|report|source|author)s?\b"
    r"|\bthe (passage|document|article|abstract|excerpt|paragraph|author|authors)\b"
    r"|\bwhat is the (main |primary |central )?(purpose|topic|point|idea|subject|focus|theme)\b"
    r"|^(summari[sz]e|paraphrase)\b|^(describe|explain) this\b",
    re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(query|search query|question)\s*[:\-]\s*", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class QueryPrompt:
    instruction: str  # the task, e.g. "Given a scientific claim, retrieve abstracts that support or refute it"
    system: str = ("You are a search assistant. You write the search query a user would type to find the given "
                   "document, for the given task. You reply with one short query on one line.")
    request: str = "Task: {instruction}\nWrite one search query for this task that the document below answers."
    examples: tuple[tuple[str, str], ...] | None = None  # None: `default_examples(instruction)`
    assistant_prefix: str = "Query:"
    doc_words: int = 128

    def __post_init__(self):
        if self.examples is None:
            object.__setattr__(self, "examples", default_examples(self.instruction))

    def _user(self, shown: str) -> str:
        return f"{self.request.format(instruction=self.instruction)}\n\nDocument:\n{shown}"

    def conversation(self, doc) -> list[dict]:
        body = truncate_words(doc.text, self.doc_words)
        shown = f"Title: {doc.title.strip()}\n{body}" if doc.title.strip() else body
        turns = [{"role": "system", "content": self.system}]
        for ex_doc, ex_query in self.examples:
            turns += [{"role": "user", "content": self._user(ex_doc)},
                      {"role": "assistant", "content": f"{self.assistant_prefix} {ex_query}"}]
        return turns + [{"role": "user", "content": self._user(shown)}]


@dataclasses.dataclass(frozen=True)
class QueryFilter:
    max_words: int = 32
    max_chars: int = 300
    min_overlap: int = 1  # content-term stems shared with the document...
    min_overlap_share: float = 0.25  # ...and at least this share of the query's content-term stems
    # Doc2Query--: keep a query only when BM25 over the whole corpus ranks its own document in the top k (0 = off)
    points_back_top_k: int = 0


def clean_completion(text: str) -> str:
    """The query inside a completion: its first non-empty line, without quotes or a repeated "Query:" label."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line.strip())
    return " ".join(line.strip().strip("\"'`").split())


def filter_queries(completions: Sequence[str], document_stems: set[str], examples: Sequence[str] = (),
                   rules: QueryFilter = QueryFilter()) -> tuple[list[str], collections.Counter]:
    """Keeps the usable queries among `completions` (in order) and counts the dropped ones per reason."""
    example_keys = {normalize(e) for e in examples}
    kept, seen, drops = [], set(), collections.Counter()
    for raw in completions:
        q = clean_completion(raw)
        key = normalize(q)
        if not key:
            reason = "empty"
        elif len(q.split()) > rules.max_words or len(q) > rules.max_chars:
            reason = "too_long"
        elif _META.search(q):
            reason = "meta"
        elif key in example_keys:
            reason = "copied_example"
        elif _off_topic(q, document_stems, rules):
            reason = "off_topic"
        elif key in seen:
            reason = "duplicate"
        else:
            kept.append(q)
            seen.add(key)
            continue
        drops[reason] += 1
    return kept, drops


def keep_pointing_back(results: Sequence["QueryResult"], documents: Sequence, search: Callable, top_k: int
                       ) -> list["QueryResult"]:
    """Drops (counted as "not_pointing_back") every kept query whose document is not in the top `top_k` that
    `search({key: query}, k)` returns ({key: {doc_id: score}}: BM25 over the whole corpus in the index builder)."""
    keyed = {f"{i}:{j}": q for i, r in enumerate(results) for j, q in enumerate(r.queries)}
    ranked = search(keyed, top_k) if keyed else {}
    out = []
    for i, (r, d) in enumerate(zip(results, documents)):
        kept = [q for j, q in enumerate(r.queries) if d.doc_id in ranked.get(f"{i}:{j}", {})]
        drops = collections.Counter(r.drops)
        drops["not_pointing_back"] += len(r.queries) - len(kept)
        out.append(QueryResult(kept, drops))
    return out


def _off_topic(query: str, document_stems: set[str], rules: QueryFilter) -> bool:
    stems = content_stems(query)
    shared = len(stems & document_stems)
    return shared < rules.min_overlap or shared < rules.min_overlap_share * len(stems)


def doc_as_query(doc, num_words: int = 64) -> str:
    """A leading slice of the document used as a query: the title, then the first `num_words` words of the text."""
    return " ".join(doc.title.split() + doc.text.split()[:num_words])


def document_spans(doc, num_spans: int, seed: int, min_words: int = 6, max_words: int = 12) -> list[str]:
    """`num_spans` distinct random word spans of title + text: query-length training inputs that need no LM.

    A cheap stand-in for pseudo-queries where generation is too slow (the 2-core CPU): short inputs like real
    queries, always on topic, but lexical copies rather than questions. Fewer spans when the document is short;
    none for an empty one. Deterministic in (`seed`, the document's words)."""
    import numpy as np

    words = doc.title.split() + doc.text.split()
    if not words or num_spans <= 0:
        return []
    rng = np.random.default_rng(seed)
    spans: list[str] = []
    for _ in range(4 * num_spans):  # a bounded number of draws: short documents have few distinct spans
        n = int(rng.integers(min(min_words, len(words)), min(max_words, len(words)) + 1))
        start = int(rng.integers(0, len(words) - n + 1))
        span = " ".join(words[start:start + n])
        if span not in spans:
            spans.append(span)
        if len(spans) == num_spans:
            break
    return spans


def title_query(doc) -> str:
    """The title as a query ("" when the document has none): short, query-like, written by the document's author."""
    return " ".join(doc.title.split())


def keyphrase_queries(doc, stats, num_queries: int, seed: int, *, pool: int = 16, min_terms: int = 2,
                      max_terms: int = 4) -> list[str]:
    """`num_queries` distinct keyword queries: 2-4 of the document's `pool` best TF-IDF terms, drawn with
    probability proportional to their TF-IDF score and written in document order ("boundary layer transition").

    Real queries often are a few content words; these teach the retriever that its document's terms, not only the
    words of its docid, lead to it. Deterministic in (`seed`, the document, the corpus statistics)."""
    import numpy as np

    from zerogr_jax.indexing.terms import DocumentTerms

    terms = DocumentTerms.from_document(doc.title, doc.text)
    best = terms.ranked(stats)[:pool]
    if not best or num_queries <= 0:
        return []
    scores = np.asarray(terms.scores(stats), np.float64)[best]
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(4 * num_queries):  # bounded draws: a document with few terms has few distinct queries
        n = int(rng.integers(min(min_terms, len(best)), min(max_terms, len(best)) + 1))
        picked = sorted(rng.choice(len(best), size=n, replace=False, p=scores / scores.sum()).tolist(),
                        key=lambda j: best[j])  # term index = order of first occurrence
        query = " ".join(terms.surface[best[j]] for j in picked)
        if query not in out:
            out.append(query)
        if len(out) == num_queries:
            break
    return out


@dataclasses.dataclass(frozen=True)
class QueryResult:
    queries: list[str]  # kept pseudo-queries, in sample order
    drops: collections.Counter  # reason -> count


def generate_pseudo_queries(generator: TextGenerator, documents: Sequence, prompt: QueryPrompt, *,
                            num_queries: int = 16, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0,
                            max_new_tokens: int = 64, batch_size: int = 32, rules: QueryFilter = QueryFilter(),
                            progress: Callable[[int], None] | None = None) -> list[QueryResult]:
    """`num_queries` samples per document, cleaned and filtered. Batch b of the shard draws with
    derive_seed(seed, STAGE_QUERIES, b), so results depend only on (documents, settings, seed)."""
    out: list[QueryResult] = []
    example_queries = [q for _, q in prompt.examples]
    for b in range(0, len(documents), batch_size):
        batch = documents[b:b + batch_size]
        samples = generator.chat([prompt.conversation(d) for d in batch], assistant_prefix=prompt.assistant_prefix,
                                 max_new_tokens=max_new_tokens, temperature=temperature, num_samples=num_queries,
                                 seed=derive_seed(seed, STAGE_QUERIES, b), top_p=top_p, stop=("\n",))
        if len(samples) != len(batch):
            raise ValueError(f"generator returned {len(samples)} results for {len(batch)} conversations")
        for d, completions in zip(batch, samples):
            kept, drops = filter_queries(completions, content_stems(document_text(d.title, d.text)),
                                         example_queries, rules)
            out.append(QueryResult(kept, drops))
        if progress:
            progress(len(batch))
    return out
