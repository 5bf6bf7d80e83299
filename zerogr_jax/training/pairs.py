"""Retriever training examples `instruction + query -> docid` from one or several index directories.

An index directory (written by `zerogr_jax.indexing`) holds `manifest.json` (with the task `instruction`),
`docids.jsonl` (rows `{"doc_id", "docid"}`) and `queries.jsonl` (rows `{"doc_id", "query", "kind"}`, kind
"pseudo", "doc_as_query", "span", "title" or "keyphrase").

One example is a chat conversation tokenized with the model's chat template:

    user turn      = instruction (cut to 64 tokens) + "\\n" + query (cut to 64 tokens)
    assistant turn = docid tokens + EOS (<|im_end|> for SmolLM2)

Only the docid tokens and the EOS are labels. Layout: **right padding**, one example per row. Training runs without
a KV cache, so right padding keeps RoPE positions equal to column indices (`positions = arange(T)` for every row)
and real tokens never see the pads behind them under the causal mask. Packing would save the pad compute but needs
a per-segment attention mask that `models.llama.forward` does not take; prompts here are short and similar in length,
so padding wastes little.

Labels are stored as a short *label window* rather than a `[N, T]` mask: `target_index[n, l]` is the column whose
logits predict `labels[n, l]`. The train step gathers only those hidden states before the LM head, so the head (a
large matmul for a 49K vocabulary) runs on ~16 positions per row instead of T.

The index reader, the prompt (`PromptBuilder`) and the docid tokens are the retriever contract that indexing, training
and search share: they live in `zerogr_jax/retrieval_contract.py` (and are re-exported here).

**Ranking groups** (`PairsConfig.negatives` = n > 0): every training row again, followed by n rows of the same prompt
with other documents' docids (`training/negatives.py`), G = 1 + n consecutive rows per group in `PairsData.rank`; the
ranking step (`training.step.rank_loss_terms`) reads them. Counted per collection (groups, groups too long, BM25
lists topped up with uniform draws).

**Shared prefixes.** Every example of a collection starts with the same tokens: the chat template's system turn and
the user turn up to and including the instruction (~50 of ~80 tokens for SmolLM2 and short queries).
`split_shared_prefixes` moves that prefix out of the rows into one `[C, P]` array; the train step computes its KV
once per step and every row attends to it through the KV cache (`training.hidden_states`), so the rows carry only
query + docid. Same attention, same positions, same loss; about 2.5x fewer tokens through the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Literal, Sequence

import numpy as np

from zerogr_jax.retrieval_contract import (  # noqa: F401  (re-exported: the contract's names, as before)
    QUERY_KINDS, IndexData, IndexFormatError, PromptBuilder, docid_token_ids, eos_id_of, load_index)
from zerogr_jax.tokenization import pad_id_of

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class PairsConfig:
    instruction_max_tokens: int = 64
    query_max_tokens: int = 64
    max_len: int = 0  # sequence length T; 0 = longest example rounded up to a multiple of 8
    max_label_len: int = 0  # label window L; 0 = longest docid + EOS rounded up to a multiple of 4
    use_doc_as_query: bool = True
    heldout_fraction: float = 0.02  # of the pseudo-queries, chosen by a hash of (doc_id, query)
    heldout_max: int = 256  # per collection; the lowest hashes are kept
    weights: tuple[float, ...] = ()  # per index directory, in --index order; () = 1.0 each
    # ranking groups (`train.rank_every`): each training row again, followed by `negatives` rows of the same query
    # with another document's docid (`training/negatives.py`); 0 = none built
    negatives: int = 0
    negatives_source: Literal["bm25", "random"] = "bm25"  # bm25: drawn from BM25's top negatives_depth over the rows
    negatives_depth: int = 20
    negatives_seed: int = 0
    # of the `negatives` per group, how many are drawn uniformly (the rest from BM25): easy negatives, so that the
    # rerank head also learns to score documents unlike the query low
    negatives_random: int = 0

    def __post_init__(self):
        if self.negatives < 0 or self.negatives_depth < 1:
            raise ValueError(f"data.negatives={self.negatives} must be >= 0 and data.negatives_depth="
                             f"{self.negatives_depth} >= 1")
        if self.negatives_random < 0:
            raise ValueError(f"data.negatives_random={self.negatives_random} must be >= 0")
        if self.negatives_random > self.negatives:
            from zerogr_jax.config import ConfigError  # an override that a later one may make valid (config.override)

            raise ConfigError(f"data.negatives_random={self.negatives_random} must be at most data.negatives="
                              f"{self.negatives}")


@dataclasses.dataclass
class Examples:
    """Fixed-shape host arrays; row n is one (instruction, query, docid) example."""

    tokens: np.ndarray  # [N, T] int32, right-padded with the pad id
    kv_mask: np.ndarray  # [N, T] bool, True at real tokens
    target_index: np.ndarray  # [N, L] int32, column whose logits predict labels[n, l]
    labels: np.ndarray  # [N, L] int32 token ids (docid tokens, then EOS)
    label_mask: np.ndarray  # [N, L] bool, True at real labels
    collection: np.ndarray  # [N] int32, index of the source index directory
    doc_index: np.ndarray  # [N] int32, row of the document in `docid_rows` of its collection
    # [N, T, D] the frozen lower layers' output per row (train.cache_frozen_features), or None: the rows then
    # enter the step there, and only the trained layers run
    features: np.ndarray | None = None
    # [N, P] int32 / bool: the ranking group's shared prefix (`split_group_prefixes`: the prompt up to the docid, the
    # same for the group's rows), run once per group; the rows then hold only what follows. None: rows are whole
    prefix: np.ndarray | None = None
    prefix_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def take(self, rows: np.ndarray) -> "Examples":
        return Examples(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                           for f in dataclasses.fields(self)})

    def as_batch(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The arrays the train/eval step reads (without the bookkeeping columns)."""
        sel = (lambda a: a) if rows is None else (lambda a: a[rows])
        return {k: sel(getattr(self, k)) for k in batch_keys(self.features is not None, self.prefix is not None)}


BATCH_KEYS = ("tokens", "kv_mask", "target_index", "labels", "label_mask", "collection")


def batch_keys(with_features: bool = False, with_prefix: bool = False) -> tuple[str, ...]:
    """The arrays of a step's batch: the rows', the frozen layers' cached outputs, ranking groups' prompts."""
    return (BATCH_KEYS + (("features",) if with_features else ())
            + (("prefix", "prefix_mask") if with_prefix else ()))


def heldout_score(doc_id: str, query: str) -> float:
    """A deterministic number in [0, 1) per (doc_id, query): held out iff below the held-out fraction."""
    digest = hashlib.sha256(f"{doc_id}\x1f{query}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


@dataclasses.dataclass
class PairsData:
    train: Examples
    heldout: Examples
    instructions: list[str]
    docid_rows: list[list[str]]  # per collection: doc_id of each doc_index
    counts: dict  # per collection: examples by kind, held out, skipped
    fingerprints: list[str]
    eos_id: int
    pad_id: int
    # ranking groups: rows [g * G, (g + 1) * G) are one query with its positive docid first, then G - 1 negatives
    # (G = 1 + PairsConfig.negatives); None when no negatives were asked for
    rank: Examples | None = None
    group_size: int = 1


def _assemble(rows: Sequence[tuple], max_len: int, max_label: int, pad: int) -> Examples:
    """Right-padded [N, T] rows and their [N, L] label windows from (prompt ids, label ids, collection, doc row)."""
    n = len(rows)
    tokens = np.full((n, max_len), pad, np.int32)  # [N, T]
    kv_mask = np.zeros((n, max_len), bool)  # [N, T]
    target_index = np.zeros((n, max_label), np.int32)  # [N, L]
    labels = np.full((n, max_label), pad, np.int32)  # [N, L]
    label_mask = np.zeros((n, max_label), bool)  # [N, L]
    for i, (prompt, label, *_rest) in enumerate(rows):
        seq = prompt + label
        tokens[i, :len(seq)] = seq
        kv_mask[i, :len(seq)] = True
        # label l is token len(prompt) + l, predicted by the logits one column earlier
        target_index[i] = np.minimum(len(prompt) - 1 + np.arange(max_label), max_len - 1)
        labels[i, :len(label)] = label
        label_mask[i, :len(label)] = True
    collection = np.array([r[2] for r in rows], np.int32)
    doc_index = np.array([r[3] for r in rows], np.int32)
    return Examples(tokens, kv_mask, target_index, labels, label_mask, collection, doc_index)


def build_examples(indexes: Sequence[IndexData], tokenizer, cfg: PairsConfig = PairsConfig()) -> PairsData:
    """Tokenizes every (instruction, query, docid) example of the given index directories.

    Examples longer than `cfg.max_len` (when set) are skipped and counted in `counts`.
    """
    if not indexes:
        raise ValueError("no index directories given")
    builder = PromptBuilder(tokenizer, cfg.instruction_max_tokens, cfg.query_max_tokens)
    eos, pad = eos_id_of(tokenizer), pad_id_of(tokenizer)
    rows = []  # (prompt ids, label ids, collection, doc_index, heldout)
    rank_rows = []  # per training row: its group [(prompt ids, label ids, collection, doc_index)] * (1 + negatives)
    counts, docid_rows = [], []
    for c, index in enumerate(indexes):
        doc_ids = sorted(index.docids)
        doc_row = {d: i for i, d in enumerate(doc_ids)}
        docid_rows.append(doc_ids)
        queries = [q for q in index.queries if cfg.use_doc_as_query or q[2] != "doc_as_query"]
        # held out: the query-like rows (pseudo-queries, spans, titles, keyphrases) with the lowest hash scores
        # below the fraction, at most heldout_max; document-as-query rows always train, so every document keeps a
        # training example
        scored = sorted((heldout_score(d, q), i) for i, (d, q, k) in enumerate(queries) if k != "doc_as_query")
        heldout = {i for s, i in scored if s < cfg.heldout_fraction}
        heldout = set(sorted(heldout, key=lambda i: heldout_score(queries[i][0], queries[i][1]))[:cfg.heldout_max])
        prompts = builder.ids(index.instruction, [q for _, q, _ in queries])
        label_ids = dict(zip(doc_ids, docid_token_ids(tokenizer, [index.docids[d] for d in doc_ids])))
        kinds = {k: 0 for k in QUERY_KINDS}
        for i, ((doc_id, _, kind), prompt) in enumerate(zip(queries, prompts)):
            kinds[kind] += 1
            rows.append((prompt, label_ids[doc_id] + [eos], c, doc_row[doc_id], i in heldout))
        counts.append({"path": index.path, "examples": kinds, "heldout": len(heldout), "skipped_too_long": 0,
                       "documents": len(doc_ids)})
        if cfg.negatives:
            train_rows = [i for i in range(len(queries)) if i not in heldout]
            negatives = _negatives(index, doc_ids, queries, train_rows, cfg, counts[-1])
            for i, negs in zip(train_rows, negatives):
                rank_rows.append([(prompts[i], label_ids[queries[i][0]] + [eos], c, doc_row[queries[i][0]])]
                                 + [(prompts[i], label_ids[doc_ids[d]] + [eos], c, int(d)) for d in negs])

    every = rows + [r for group in rank_rows for r in group]
    max_len = cfg.max_len or _round_up(max(len(p) + len(l) for p, l, *_ in every), 8)
    max_label = cfg.max_label_len or _round_up(max(len(l) for _, l, *_ in every), 4)
    fits = lambda r: len(r[0]) + len(r[1]) <= max_len and len(r[1]) <= max_label
    kept = []
    for r in rows:
        if fits(r):
            kept.append(r)
        else:
            counts[r[2]]["skipped_too_long"] += 1
    skipped = sum(c["skipped_too_long"] for c in counts)
    if skipped:
        log.warning("skipped %d examples longer than max_len=%d or max_label_len=%d", skipped, max_len, max_label)
    if not kept:
        raise ValueError(f"no example fits max_len={max_len}, max_label_len={max_label}")
    rank = None
    if cfg.negatives:
        groups = [g for g in rank_rows if all(fits(r) for r in g)]
        for g in rank_rows:
            if not all(fits(r) for r in g):
                counts[g[0][2]]["rank_groups_skipped_too_long"] += 1
        for g in groups:
            counts[g[0][2]]["rank_groups"] += 1
        if groups:
            rank = _assemble([r for g in groups for r in g], max_len, max_label, pad)

    everything = _assemble(kept, max_len, max_label, pad)
    is_heldout = np.array([r[4] for r in kept], bool)
    return PairsData(
        train=everything.take(np.flatnonzero(~is_heldout)), heldout=everything.take(np.flatnonzero(is_heldout)),
        instructions=[ix.instruction for ix in indexes], docid_rows=docid_rows, counts={"collections": counts},
        fingerprints=[ix.fingerprint for ix in indexes], eos_id=eos, pad_id=pad, rank=rank,
        group_size=1 + cfg.negatives)


def _negatives(index: IndexData, doc_ids: list[str], queries: list[tuple[str, str, str]], train_rows: list[int],
               cfg: PairsConfig, counts: dict) -> np.ndarray:
    """[len(train_rows), cfg.negatives] doc rows; BM25 sees each document as its docid and query rows joined."""
    from zerogr_jax.training.negatives import NegativesStats, mine_negatives

    doc_row = {d: i for i, d in enumerate(doc_ids)}
    texts = [[index.docids[d]] for d in doc_ids]
    for doc_id, query, _ in queries:
        texts[doc_row[doc_id]].append(query)
    stats = NegativesStats()
    out = mine_negatives([" ".join(t) for t in texts], [queries[i][1] for i in train_rows],
                         [doc_row[queries[i][0]] for i in train_rows], cfg.negatives, source=cfg.negatives_source,
                         depth=cfg.negatives_depth, seed=cfg.negatives_seed, num_random=cfg.negatives_random,
                         stats=stats)
    counts.update(negatives=cfg.negatives, negatives_source=cfg.negatives_source,
                  negatives_random=cfg.negatives_random, rank_groups=0,
                  rank_groups_skipped_too_long=0, negatives_topped_up=stats.topped_up)
    return out


def docid_vocabulary(indexes: Sequence[IndexData], tokenizer) -> np.ndarray:
    """Sorted token ids that occur in any docid of the given indexes, plus EOS: [V_docid] int32.

    Under the trie constraint only these tokens can ever be generated, so a head restricted to them loses nothing
    the search can use (see `training.py`, "docid head").
    """
    ids = {eos_id_of(tokenizer)}
    for index in indexes:
        for row in docid_token_ids(tokenizer, list(index.docids.values())):
            ids.update(row)
    return np.array(sorted(ids), np.int32)


@dataclasses.dataclass
class SharedPrefixes:
    """Per collection, the token prefix every one of its examples starts with."""

    tokens: np.ndarray  # [C, P] int32, right-padded
    mask: np.ndarray  # [C, P] bool, True at real tokens
    length: np.ndarray  # [C] int32


def split_shared_prefixes(parts: Sequence[Examples], num_collections: int, pad_id: int, multiple: int = 8
                          ) -> tuple[SharedPrefixes, list[Examples]]:
    """Moves each collection's common token prefix out of the rows of every part (train, held-out, ...).

    The prefix is the longest one shared by all rows of the collection in all parts, stopped before the first
    column whose logits are a target, so every predicting position stays in the rows. Rows are re-padded to the
    longest remainder (rounded up to `multiple`); `target_index` is shifted accordingly.
    """
    lengths = np.zeros((num_collections,), np.int32)
    firsts: list[np.ndarray | None] = [None] * num_collections
    for c in range(num_collections):
        common = None
        for ex in parts:
            rows = np.flatnonzero(ex.collection == c)
            if not len(rows):
                continue
            tokens = ex.tokens[rows]
            first = tokens[0] if firsts[c] is None else firsts[c]
            firsts[c] = first
            lcp = min(int(_shared_columns(tokens, ex.kv_mask[rows], first)), int(ex.target_index[rows, 0].min()))
            common = lcp if common is None else min(common, lcp)
        lengths[c] = common or 0
    width = max(int(lengths.max()), 1)
    tokens = np.full((num_collections, width), pad_id, np.int32)  # [C, P]
    mask = np.zeros((num_collections, width), bool)
    for c in range(num_collections):
        if lengths[c]:
            tokens[c, :lengths[c]] = firsts[c][:lengths[c]]
            mask[c, :lengths[c]] = True

    out = [_cut_rows(ex, lengths[ex.collection], pad_id, multiple) for ex in parts]
    return SharedPrefixes(tokens, mask, lengths), out


def split_group_prefixes(ex: Examples, group_size: int, pad_id: int, multiple: int = 8) -> Examples:
    """Moves each ranking group's common prefix — chat template, instruction and query: everything its rows share
    before the first column whose logits are a target — out of the rows into `prefix` / `prefix_mask` ([N, P], the
    same for the group's G rows), so a ranking step runs a group's query once instead of G times (`step.hidden_states`
    reaches it through the KV cache, as a collection's shared prefix). Rows keep what follows, re-padded."""
    g = group_size
    if g < 1 or len(ex) % g:
        raise ValueError(f"{len(ex)} rows are not whole groups of {g}")
    tokens = ex.tokens.reshape(-1, g, ex.tokens.shape[1])  # [N/G, G, T]
    lcp = _shared_columns(tokens, ex.kv_mask.reshape(tokens.shape), tokens[:, 0])  # [N/G]
    lengths = np.minimum(lcp, ex.target_index[:, 0].reshape(-1, g).min(1)).astype(np.int32)  # [N/G]
    if len(lengths) and lengths.min() < 1:
        raise ValueError("a ranking group's rows share no prefix (each row should start with the same prompt)")
    width = _round_up(max(int(lengths.max(initial=1)), 1), multiple)
    cols = np.arange(width)[None, :]
    mask = cols < lengths[:, None]  # [N/G, P]
    first = np.pad(tokens[:, 0], ((0, 0), (0, max(0, width - tokens.shape[2]))))[:, :width]
    prefix = np.where(mask, first, pad_id).astype(np.int32)
    rows = _cut_rows(ex, np.repeat(lengths, g), pad_id, multiple)
    return dataclasses.replace(rows, prefix=np.repeat(prefix, g, axis=0), prefix_mask=np.repeat(mask, g, axis=0))


def _shared_columns(tokens: np.ndarray, kv_mask: np.ndarray, first: np.ndarray) -> np.ndarray:
    """[...] how many leading columns are shared: every row of tokens / kv_mask [..., R, T] has a real token there
    equal to `first`'s [..., T]."""
    same = np.all((tokens == first[..., None, :]) & kv_mask, axis=-2)  # [..., T]
    return np.where(same.all(-1), same.shape[-1], np.argmin(same, axis=-1))


def _cut_rows(ex: Examples, cut: np.ndarray, pad_id: int, multiple: int) -> Examples:
    """`ex` with each row's first cut[n] tokens removed, re-padded to the longest remainder (rounded up to
    `multiple`); `target_index` shifted."""
    real = ex.kv_mask.sum(1) - cut
    width_s = _round_up(max(int(real.max()) if len(real) else 1, 1), multiple)
    cols = np.minimum(cut[:, None] + np.arange(width_s)[None, :], ex.tokens.shape[1] - 1)  # [N, S]
    keep = np.arange(width_s)[None, :] < real[:, None]
    return dataclasses.replace(
        ex, tokens=np.where(keep, np.take_along_axis(ex.tokens, cols, 1), pad_id).astype(np.int32),
        kv_mask=keep, target_index=np.clip(ex.target_index - cut[:, None], 0, width_s - 1).astype(np.int32))
