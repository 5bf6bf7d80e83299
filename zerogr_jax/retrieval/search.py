"""Search: queries -> trie-constrained docid decoding -> ranked document ids -> TREC run.

The retriever prompt is built exactly as in training (`retrieval_contract.PromptBuilder`), and the trie from the
index's docids tokenized exactly as the training labels (`docid_token_ids` + EOS), so a trained retriever and its
trie always agree. A document's score is 1 / (rank + 1) of the iteration that produced its docid (ZeroGR);
documents sharing one docid get the same rank and score, in corpus order.

    zerogr search --index runs/cranfield/index --retriever runs/cranfield/train/model \
        --collection cranfield --out runs/cranfield/run.trec --num-docids 100 --strategy reverse_annealing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import typing
from typing import Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax import atomic_files, rerank_head, tokenization
from zerogr_jax.retrieval import decoding
from zerogr_jax.retrieval_contract import IndexData, PromptBuilder, docid_token_ids, eos_id_of, load_index
from zerogr_jax.models import llama
from zerogr_jax.retrieval.trie import TrieHost, build_trie, expand_to_documents, npz_content_sha256

# "exact": the K docids with the best constrained log-probability (minus the prior with prior_weight) with no
# pruning error — the answer of a beam as wide as the trie — found by branch and bound over teacher-forced scores
# (`docid_scoring.top_docids`: bounds from each docid's first tokens, then few docids in full)
StrategyName = Literal["reverse_annealing", "greedy", "fixed_temperature", "nucleus", "beam", "exact"]
STRATEGIES = typing.get_args(StrategyName)
RerankMix = Literal["head", "zsum", "rrf"]  # SearchConfig.rerank_mix


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    num_docids: int = 100  # K
    strategy: StrategyName = "reverse_annealing"
    t_max: float = 1.5  # reverse annealing: T_max, the sigmoid's steepness k and midpoint m (paper 4.3)
    sigmoid_k: float = 10.0
    m: float = 0.1
    temperature: float = 1.0  # fixed_temperature / nucleus
    top_p: float = 0.9  # nucleus
    beam_width: int = 0  # beam: beams kept per step (0 = K); wider finds the K best docids with fewer pruning errors
    batch_size: int = 32
    seed: int = 0
    restrict_head: bool = True  # decode over the docid tokens only (compact vocabulary; same logits, less compute)
    # beam: rank the max(K, beam_width) candidates by log p(d | query) - prior_weight * log p(d | no query) (the
    # docid prior, `docid_scoring`, scored once per search for every docid); exact: the K best docids by that score;
    # 0 = the plain log-probability
    prior_weight: float = 0.0
    # the rerank head (`rerank_head`, a retriever trained with train.rank_score="head"): the best `rerank_depth`
    # docids of the pool (after the prior) re-ordered by the head's logit of `rerank_token` after query + docid, the
    # reference's rescoring; the pool grows to at least rerank_depth (at most every docid: a depth at or above the
    # trie's docids re-orders all of them, with "exact" each scored in full once for both scores); 0 = off
    rerank_depth: int = 0
    rerank_token: str = rerank_head.DEFAULT_TOKEN
    # how the best rerank_depth are re-ordered: "head" by the head's score alone (the reference); "zsum" by z(head) +
    # z(generative score), each standardised over the query's rerank_depth docids; "rrf" by 1/(60 + rank by the
    # generative score) + 1/(60 + rank by the head). The last two keep what the generative score knows.
    rerank_mix: RerankMix = "head"
    # the sampling strategies: each query row starts its next docid as soon as its last one ends, instead of every
    # iteration waiting for the batch's longest docid (`decoding.iterative_decode`); the same docids either way.
    # 1.38x on a trained med retriever's keyword docids at K = 10 (BENCHMARKS.md, session 18)
    independent_rows: bool = True

    def __post_init__(self):  # checked when the config is made (a config file, an override), not after training
        from zerogr_jax.config import ConfigError

        if self.strategy not in STRATEGIES:
            raise ConfigError(f"search.strategy={self.strategy!r}: must be one of {list(STRATEGIES)}")
        if self.prior_weight and self.strategy not in ("beam", "exact"):
            raise ConfigError(f"search.prior_weight={self.prior_weight}: rescoring needs strategy 'beam' or 'exact' "
                              f"(got {self.strategy!r}); add search.prior_weight=0 to decode with {self.strategy!r}")
        if self.prior_weight < 0:
            raise ConfigError(f"search.prior_weight must be >= 0, got {self.prior_weight}")
        if self.rerank_depth < 0:
            raise ConfigError(f"search.rerank_depth must be >= 0, got {self.rerank_depth}")
        if self.rerank_mix not in typing.get_args(RerankMix):
            raise ConfigError(f"search.rerank_mix={self.rerank_mix!r}: must be one of "
                              f"{list(typing.get_args(RerankMix))}")
        if self.num_docids < 1 or self.batch_size < 1 or self.beam_width < 0:
            raise ConfigError(f"search: num_docids and batch_size must be >= 1 and beam_width >= 0, got "
                              f"{self.num_docids}, {self.batch_size}, {self.beam_width}")

    def make_strategy(self, trie_docids: int) -> decoding.Strategy:
        """The decoding strategy; "exact" as a beam as wide as the trie (`trie_docids`), which `decode_candidates`
        replaces by branch and bound over teacher-forced scores (same answer; tests compare the two)."""
        return {
            "reverse_annealing": lambda: decoding.ReverseAnnealing(self.t_max, self.sigmoid_k, self.m),
            "greedy": decoding.Greedy,
            "fixed_temperature": lambda: decoding.FixedTemperature(self.temperature),
            "nucleus": lambda: decoding.Nucleus(self.top_p, self.temperature),
            "beam": lambda: decoding.BeamSearch(self.beam_width),
            "exact": lambda: decoding.BeamSearch(trie_docids),
        }[self.strategy]()


@dataclasses.dataclass(frozen=True)
class CompactHeadStepModel(decoding.LlamaStepModel):
    """Llama step over a compact vocabulary: the V' tokens that occur in docids, `params["head_vocab"]` [V'] (sorted
    token ids). Logits are [B, V'] and the tokens fed back are compact ids, mapped to real ids for the embedding.

    Constrained decoding only ever allows trie tokens, so no allowed logit changes; what shrinks is every per-step
    array of the decoder (mask, removal, softmax, sampling) from V = 49,152 (SmolLM2) to V' (a few thousand), and the
    head's matmul with it. params = {"model", "head_vocab"}; pair it with `compact_vocabulary(trie)`.
    """

    def model_params(self, params):
        return params["model"]

    def head(self, params, hidden):  # hidden [B, D] -> [B, V']
        rows = jnp.take(llama.head_rows(params["model"], self.cfg), params["head_vocab"], axis=0
                        ).astype(hidden.dtype)  # [V', D]
        return (hidden @ rows.T).astype(jnp.float32)

    def vocab_ids(self, params, tokens):
        return jnp.take(params["head_vocab"], tokens, axis=0)  # compact -> vocabulary ids


def compact_vocabulary(trie: TrieHost) -> tuple[TrieHost, np.ndarray]:
    """The same trie over compact token ids 0..V'-1, and the vocabulary ids they stand for ([V'] int32, sorted).

    The map is monotone, so siblings keep their order and node, docid and document numbering are unchanged
    (`expand_to_documents` works on either trie). High-fan-out bitmask rows are rebuilt over V' bits."""
    vocab = np.unique(trie.node_token[trie.node_token >= 0]).astype(np.int32)
    node_token = np.where(trie.node_token >= 0, np.searchsorted(vocab, np.maximum(trie.node_token, 0)), -1)
    bitmask = np.zeros((trie.bitmask.shape[0], -(-len(vocab) // 32)), np.uint32)
    for node in np.flatnonzero(trie.bitmask_row >= 0):  # bit t % 32 of word t // 32
        children = node_token[trie.child_start[node]:trie.child_start[node + 1]]
        np.bitwise_or.at(bitmask[trie.bitmask_row[node]], children // 32,
                         (np.uint32(1) << (children % 32).astype(np.uint32)))
    compact = dataclasses.replace(trie, node_token=node_token.astype(np.int32), bitmask=bitmask,
                                  vocab_size=len(vocab), eos_id=int(np.searchsorted(vocab, trie.eos_id)))
    return compact, vocab


def step_model(cfg: llama.LlamaConfig, params, trie: TrieHost, restrict_head: bool = True
               ) -> tuple[TrieHost, decoding.StepModel, dict]:
    """(trie the model scores over, step model, its params): the compact docid head and compact trie, or the full
    vocabulary (same logits for every allowed token either way)."""
    if restrict_head:
        compact, vocab = compact_vocabulary(trie)
        return compact, CompactHeadStepModel(cfg), {"model": params, "head_vocab": jnp.asarray(vocab)}
    return trie, decoding.LlamaStepModel(cfg), params


def _saved_trie(index: IndexData, tokenizer, vocab_size: int, eos: int, num_docs: int) -> TrieHost | None:
    import pathlib

    from zerogr_jax.tokenization import tokenizer_digest

    root = pathlib.Path(index.path)
    try:
        manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    info, recorded = manifest.get("trie", {}), manifest.get("files", {}).get("trie.npz")
    if not (info.get("built") and recorded and (root / "trie.npz").is_file()):
        return None
    if (info.get("tokenizer_sha256") != tokenizer_digest(tokenizer) or info.get("eos_id") != eos
            or info.get("vocab_size") != vocab_size):
        return None
    if npz_content_sha256(root / "trie.npz") != recorded:
        return None
    trie = TrieHost.load(root / "trie.npz")
    return trie if trie.num_documents == num_docs else None


def build_index_trie(index: IndexData, tokenizer, vocab_size: int) -> tuple[TrieHost, list[str]]:
    """The trie over the index's docids (one per document; shared docids share a leaf) and the document ids.

    The index's own `trie.npz` is loaded when the indexer built it for this tokenizer (same digest, EOS and logits
    width) and its bytes are the ones the manifest records; otherwise the trie is built here from the docids."""
    doc_ids = list(index.docids)
    eos = eos_id_of(tokenizer)
    saved = _saved_trie(index, tokenizer, vocab_size, eos, len(doc_ids))
    if saved is not None:
        return saved, doc_ids
    tokens = [t + [eos] for t in docid_token_ids(tokenizer, [index.docids[d] for d in doc_ids])]
    return build_trie(tokens, eos_id=eos, vocab_size=vocab_size), doc_ids


@dataclasses.dataclass(frozen=True)
class Candidates:
    """What decoding found for a query set, before documents: the pool of docids per query with their scores."""

    qids: list[str]
    docids: np.ndarray  # [Q, N] int32 docid indices, best first (-1 padding); N = K, or the rescoring pool
    logprobs: np.ndarray  # [Q, N] float32 constrained log p(docid | query), -inf at padding
    prior: np.ndarray | None  # [U] float32 log p(docid | empty query) when asked for (prior_weight), else None
    # [Q, N] float32 the rerank head's score of the pool's best rerank_depth docids (after the prior), NaN elsewhere;
    # None without search.rerank_depth
    rerank: np.ndarray | None = None

    def save(self, path: str | os.PathLike) -> None:
        """Writes the pool as an .npz atomically (plain arrays, loadable without pickle), so other orderings of the
        same pool can be computed without the model."""
        arrays = {"qids": np.asarray(self.qids, dtype=str), "docids": self.docids, "logprobs": self.logprobs}
        if self.prior is not None:
            arrays["prior"] = self.prior
        if self.rerank is not None:
            arrays["rerank"] = self.rerank
        with atomic_files.atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Candidates":
        with np.load(path, allow_pickle=False) as z:
            missing = {"qids", "docids", "logprobs"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: not a saved candidate pool, missing {sorted(missing)}")
            return cls(qids=[str(q) for q in z["qids"]], docids=z["docids"], logprobs=z["logprobs"],
                       prior=z["prior"] if "prior" in z.files else None,
                       rerank=z["rerank"] if "rerank" in z.files else None)

    @classmethod
    def concat(cls, parts: Sequence["Candidates"]) -> "Candidates":
        """The pools of disjoint query blocks of one search (same retriever, trie, config) as one, in block order."""
        if not parts:
            raise ValueError("no candidate pools to join")
        first = parts[0]
        for part in parts[1:]:
            if (part.docids.shape[1] != first.docids.shape[1] or (part.prior is None) != (first.prior is None)
                    or (part.rerank is None) != (first.rerank is None)):
                raise ValueError("candidate pools of different searches: pool widths, prior or head differ")
            if part.prior is not None and not np.array_equal(part.prior, first.prior):
                raise ValueError("candidate pools of different searches: their docid priors differ")
        qids = [q for part in parts for q in part.qids]
        if len(set(qids)) != len(qids):
            raise ValueError("candidate pools overlap: a query is in two blocks")
        return cls(qids, np.concatenate([p.docids for p in parts]), np.concatenate([p.logprobs for p in parts]),
                   first.prior, None if first.rerank is None else np.concatenate([p.rerank for p in parts]))


def pool_size(config: SearchConfig, trie_docids: int) -> int:
    """Docids decoded per query: K, or with prior_weight the max(K, beam_width) pool of a beam (exact finds the K
    best by the corrected score directly); at least rerank_depth with the rerank head."""
    pool = config.num_docids
    if config.prior_weight and config.strategy != "exact":
        pool = max(pool, config.beam_width)
    return min(max(pool, config.rerank_depth), trie_docids)


def decode_candidates(cfg: llama.LlamaConfig, params, tokenizer, trie: TrieHost, queries: dict[str, str],
                      instruction: str, config: SearchConfig = SearchConfig(), *, mesh=None, progress: bool = True,
                      key_offset: int = 0, with_prior: bool = False, prior: np.ndarray | None = None
                      ) -> Candidates:
    """Decodes `pool_size` docids per query (and the docid prior with `config.prior_weight` or `with_prior`, unless
    given: `prior` [U] from an earlier call over the same retriever and trie).

    Query n of `queries` draws its random stream with key fold_in(seed, key_offset + n): a block of a larger query
    set searched alone (one process's share, `search_across_processes`) gets the docids it gets in the whole set."""
    from tqdm.auto import tqdm

    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; choose one of {STRATEGIES}")
    scored_trie, model, model_params = step_model(cfg, params, trie, config.restrict_head)
    device_trie = scored_trie.to_device()
    builder = PromptBuilder(tokenizer)
    qids = list(queries)
    prompts = builder.ids(instruction, [queries[q] for q in qids])
    pad = tokenization.pad_id_of(tokenizer)
    rng = jax.random.key(config.seed)
    pool = pool_size(config, trie.num_docids)
    if prior is None and (config.prior_weight or with_prior):
        from zerogr_jax.retrieval.docid_scoring import score_all_docids

        prior = score_all_docids(model, model_params, builder.ids(instruction, [""])[0], scored_trie, device_trie,
                                 pad_id=pad)
    docids = np.full((len(qids), pool), -1, np.int32)
    logprobs = np.full((len(qids), pool), -np.inf, np.float32)
    bar = tqdm(total=len(qids), desc=f"search ({config.strategy}, K={config.num_docids})", unit="q",
               disable=not progress)
    if config.strategy == "exact":
        from zerogr_jax.retrieval.docid_scoring import docid_paths, top_docids

        # the pool is exactly the best max(K, rerank_depth) docids (found on their informative first tokens); the
        # head's scores come from one pass over the pool's docids, whole, inside `top_docids`
        head_token = rerank_head.token_id(tokenizer, config.rerank_token) if config.rerank_depth else None
        rerank = np.full((len(qids), pool), np.nan, np.float32) if config.rerank_depth else None
        paths = docid_paths(scored_trie)
        for n, prompt in enumerate(prompts):
            top = top_docids(model, model_params, prompt, scored_trie, device_trie, pool, prior=prior,
                             prior_weight=config.prior_weight, pad_id=pad, paths=paths, head_token=head_token)
            docids[n, :len(top.ids)], logprobs[n, :len(top.ids)] = top.ids, top.logprobs
            if rerank is not None:
                rerank[n, :config.rerank_depth] = top.head[:config.rerank_depth]
            bar.update(1)
        bar.close()
        return Candidates(qids, docids, logprobs, prior, rerank)
    strategy = config.make_strategy(trie.num_docids)
    # equal chunks (225 queries at batch 32: 8 x 29, not 7 x 32 + 1 padded to 32), each padded to one fixed size so
    # that every chunk reuses one compiled program; a query's docids do not depend on its batch (decoding.py)
    num_chunks = max(1, -(-len(qids) // config.batch_size))
    batch_size = -(-len(qids) // num_chunks) if qids else config.batch_size
    for start in range(0, len(qids), batch_size):
        chunk = prompts[start:start + batch_size]
        chunk = chunk + [chunk[-1]] * (batch_size - len(chunk))
        tokens, mask = tokenization.left_pad(chunk, pad, multiple_of=32)
        ranking = decoding.decode_docids(model, model_params, tokens, mask, device_trie, pool, rng,
                                         strategy, mesh=mesh, key_offset=key_offset + start,
                                         independent_rows=config.independent_rows)
        n = min(batch_size, len(qids) - start)
        docids[start:start + n] = np.asarray(ranking.docids)[:n]
        logprobs[start:start + n] = np.asarray(ranking.logprobs)[:n]
        bar.update(n)
    bar.close()
    return _with_rerank(Candidates(qids, docids, logprobs, prior), model, model_params, prompts, scored_trie,
                        tokenizer, config)


def _with_rerank(candidates: Candidates, model, model_params, prompts: list[list[int]], scored_trie: TrieHost,
                 tokenizer, config: SearchConfig) -> Candidates:
    """The candidates with the rerank head's scores of each query's best `rerank_depth` docids (unchanged when
    search.rerank_depth is 0): one prompt pass and one row per docid, per query."""
    if not config.rerank_depth:
        return candidates
    from zerogr_jax.retrieval.docid_scoring import docid_paths, head_scores

    token = rerank_head.token_id(tokenizer, config.rerank_token)
    pad = tokenization.pad_id_of(tokenizer)
    paths, device_trie = docid_paths(scored_trie), scored_trie.to_device()
    top = pool_order(candidates, dataclasses.replace(config, rerank_depth=0))[:, :config.rerank_depth]
    rerank = np.full(candidates.docids.shape, np.nan, np.float32)
    for n, prompt in enumerate(prompts):
        cols = top[n][candidates.docids[n, top[n]] >= 0]
        rerank[n, cols] = head_scores(model, model_params, prompt, scored_trie, candidates.docids[n, cols], token,
                                      pad_id=pad, paths=paths, trie=device_trie)
    return dataclasses.replace(candidates, rerank=rerank)


def pool_order(candidates: Candidates, config: SearchConfig) -> np.ndarray:
    """[Q, N] the pool's columns best first: by log p(d | q) - prior_weight * prior[d] (stable; padding last), then
    with rerank_depth the first rerank_depth of them by the rerank head's score (stable)."""
    docids = candidates.docids
    score = candidates.logprobs
    if config.prior_weight:
        if candidates.prior is None:
            raise ValueError("search.prior_weight needs candidates decoded with the docid prior")
        score = score - config.prior_weight * candidates.prior[np.maximum(docids, 0)]
    order = np.argsort(-np.where(docids >= 0, score, -np.inf), axis=1, kind="stable")
    if config.rerank_depth:
        if candidates.rerank is None:
            raise ValueError("search.rerank_depth needs candidates decoded with the rerank head's scores")
        top = order[:, :config.rerank_depth]
        valid = np.take_along_axis(docids, top, axis=1) >= 0
        head = np.take_along_axis(candidates.rerank, top, axis=1)
        mixed = _mix_scores(head, np.take_along_axis(score, top, axis=1), valid, config.rerank_mix)
        top = np.take_along_axis(top, np.argsort(-np.where(valid, mixed, -np.inf), axis=1, kind="stable"), axis=1)
        order = np.concatenate([top, order[:, config.rerank_depth:]], axis=1)
    return order


def _mix_scores(head: np.ndarray, generative: np.ndarray, valid: np.ndarray, mix: str) -> np.ndarray:
    """[Q, N] the re-ordering score of a query's N best docids (columns already in generative order, best first)."""
    if mix == "head":
        return head
    if mix == "rrf":
        ranks = np.arange(1, head.shape[1] + 1, dtype=np.float64)[None, :]
        head_ranks = np.empty_like(head, np.float64)
        np.put_along_axis(head_ranks, np.argsort(-np.where(valid, head, -np.inf), axis=1, kind="stable"),
                          np.broadcast_to(ranks, head.shape), axis=1)
        return 1.0 / (60.0 + ranks) + 1.0 / (60.0 + head_ranks)
    return _standardise(head, valid) + _standardise(generative, valid)


def _standardise(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row (mean 0, sd 1) over the valid entries; a row with sd 0 becomes 0."""
    n = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    x = np.where(valid, x.astype(np.float64), 0.0)
    mean = x.sum(axis=1, keepdims=True) / n
    sd = np.sqrt(np.where(valid, (x - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n)
    return np.where(sd > 0, (x - mean) / np.where(sd > 0, sd, 1.0), 0.0)


def rank_documents(trie: TrieHost, doc_ids: Sequence[str], candidates: Candidates, config: SearchConfig
                   ) -> dict[str, dict[str, float]]:
    """{query_id: {doc_id: 1 / (docid rank + 1)}}: K docids per query (the pool rescored with the prior, and its
    best rerank_depth by the rerank head, first: `pool_order`)."""
    docids = np.take_along_axis(candidates.docids, pool_order(candidates, config), axis=1)
    run: dict[str, dict[str, float]] = {}
    for qid, ranked in zip(candidates.qids, expand_to_documents(trie, docids[:, :config.num_docids])):
        run[qid] = {}
        for doc_index, rank, _ in ranked:
            run[qid].setdefault(doc_ids[doc_index], 1.0 / (rank + 1))
    return run


def search(cfg: llama.LlamaConfig, params, tokenizer, trie: TrieHost, doc_ids: Sequence[str],
           queries: dict[str, str], instruction: str, config: SearchConfig = SearchConfig(), *,
           mesh=None, progress: bool = True, key_offset: int = 0) -> dict[str, dict[str, float]]:
    """Ranked documents per query: {query_id: {doc_id: score}} with score = 1 / (docid rank + 1)
    (`decode_candidates`, then `rank_documents`)."""
    candidates = decode_candidates(cfg, params, tokenizer, trie, queries, instruction, config, mesh=mesh,
                                   progress=progress, key_offset=key_offset)
    return rank_documents(trie, doc_ids, candidates, config)


def process_block(num_queries: int, process_index: int, process_count: int) -> tuple[int, int]:
    """[start, stop) of the contiguous block of a query set that one process searches (sizes differ by <= 1)."""
    base, extra = divmod(num_queries, process_count)
    start = process_index * base + min(process_index, extra)
    return start, start + base + (process_index < extra)


def search_across_processes(cfg: llama.LlamaConfig, params, tokenizer, trie: TrieHost, doc_ids: Sequence[str],
                            queries: dict[str, str], instruction: str, config: SearchConfig, out, *,
                            tag: str = "", progress: bool = True) -> dict[str, dict[str, float]] | None:
    """Search over every process of a `jax.distributed` job (one process: plain `search`), written to `out`.

    The trie and the model are replicated: each process searches its contiguous block of the queries on its own
    devices (the batch sharded over a local mesh when it has several), with no collective, and writes its part of
    the run atomically (`out.part-P-of-N`). After a barrier process 0 merges the parts into `out` — checking that
    every query is there exactly once — and removes them. A query's docids do not depend on the block it is in
    (`search`'s key offset), so the run equals a one-process search of the same queries. Returns the whole run on
    process 0, None elsewhere.
    """
    import pathlib

    from zerogr_jax import distributed
    from zerogr_jax.evaluation import runfile

    out = pathlib.Path(out)
    tag = tag or f"zerogr-{config.strategy}"
    p, n = jax.process_index(), jax.process_count()
    qids = list(queries)
    start, stop = process_block(len(qids), p, n)
    local = jax.local_devices()
    mesh = distributed.local_mesh() if len(local) > 1 else None
    part = search(cfg, params, tokenizer, trie, doc_ids, {q: queries[q] for q in qids[start:stop]}, instruction,
                  config, mesh=mesh, progress=progress and p == 0, key_offset=start)
    if n == 1:
        runfile.write_run(out, part, tag=tag)
        return part
    part_path = lambda i: out.with_name(f"{out.name}.part-{i:05d}-of-{n:05d}")  # noqa: E731
    runfile.write_run(part_path(p), part, tag=tag)
    distributed.barrier(f"search parts of {out}")

    def merge():
        run: dict[str, dict[str, float]] = {}
        for i in range(n):
            block = runfile.read_run(part_path(i))
            lo, hi = process_block(len(qids), i, n)
            if not set(block) <= set(qids[lo:hi]):  # a query without any docid has no line, so <=, not ==
                raise RuntimeError(f"{part_path(i)}: not the queries of process {i}'s block")
            run.update(block)
        runfile.write_run(out, run, tag=tag)
        for i in range(n):
            part_path(i).unlink()
        return run

    return distributed.run_on_main(merge, f"merge {out}")


@dataclasses.dataclass(frozen=True)
class SearchStageConfig:
    """The search stage: a trained retriever over an index's docids, a query set, and the TREC run it writes.

    `zerogr search --collection/--queries` is this dataclass read from the command line; `run_search` runs it."""

    index: str  # index directory (docids.jsonl, manifest.json, trie.npz)
    retriever: str  # trained retriever: HF directory, .gguf or model name
    out: str  # TREC run file
    collection: str = ""  # a registered collection: its judged test queries
    queries: str = ""  # or queries.jsonl[.gz]: every query in it
    data_root: str = ""  # "" = $ZEROGR_DATA or <repo>/../shared/data
    search: SearchConfig = SearchConfig()
    progress: bool = True

    def __post_init__(self):
        from zerogr_jax.config import ConfigError

        if bool(self.collection) == bool(self.queries):
            raise ConfigError("search: give a collection or a queries file (one of them)")


@dataclasses.dataclass(frozen=True)
class SearchResult:
    out: str  # the run file
    queries: int
    seconds: float  # trie + decoding + writing, model loading excluded
    processes: int
    run: dict[str, dict[str, float]] | None  # the whole run on process 0, None on the others


def stage_queries(stage: SearchStageConfig) -> dict[str, str]:
    """{query id: text}: a collection's judged queries, or every query of a queries file."""
    from zerogr_jax.data import beir, collections

    if stage.collection:
        data = beir.load_beir(collections.collection_dir(stage.collection, stage.data_root or None))
        return {qid: q.text for qid, q in beir.evaluation_queries(data.queries, data.qrels).items()}
    return {q.query_id: q.text for q in beir.iter_queries(stage.queries)}


def search_index(index_dir, retriever_cfg: llama.LlamaConfig, params, tokenizer, queries: dict[str, str],
                 config: SearchConfig, out, *, progress: bool = True) -> SearchResult:
    """Searches `queries` over the index's docids with a loaded retriever and writes the run to `out` (in a
    multi-process job each process searches its block of the queries and process 0 merges)."""
    index = load_index(index_dir)
    t0 = time.perf_counter()
    trie, doc_ids = build_index_trie(index, tokenizer, retriever_cfg.vocab_size)
    run = search_across_processes(retriever_cfg, params, tokenizer, trie, doc_ids, queries, index.instruction,
                                  config, out, progress=progress)
    return SearchResult(out=str(out), queries=len(queries), seconds=round(time.perf_counter() - t0, 1),
                        processes=jax.process_count(), run=run)


def run_search(stage: SearchStageConfig) -> SearchResult:
    """Loads the retriever, searches the stage's queries and writes its run."""
    from zerogr_jax.models.loading import load_model

    queries = stage_queries(stage)
    model = load_model(stage.retriever)
    return search_index(stage.index, model.cfg, model.params, model.tokenizer, queries, stage.search, stage.out,
                        progress=stage.progress)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="zerogr search", description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", help="a `zerogr run` workdir (index/ and train/model) instead of --index/--retriever")
    ap.add_argument("--index", help="index directory (docids.jsonl, manifest.json)")
    ap.add_argument("--retriever", help="trained retriever: HF directory, .gguf or model name")
    ap.add_argument("--query", action="append", default=[], help="a free-text query (repeatable): prints its hits")
    ap.add_argument("--collection", help="registered collection (its test queries are searched)")
    ap.add_argument("--queries", help="queries.jsonl[.gz] instead of --collection")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", help="TREC run file to write (with --collection / --queries)")
    ap.add_argument("--no-progress", action="store_true")
    for f in dataclasses.fields(SearchConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if f.type != "bool" else int,
                        default=f.default)
    args = ap.parse_args(argv)
    config = SearchConfig(**{f.name: type(f.default)(getattr(args, f.name)) for f in dataclasses.fields(SearchConfig)})
    index_dir = args.index or (args.workdir and f"{args.workdir}/index")
    model_dir = args.retriever or (args.workdir and f"{args.workdir}/train/model")
    if not (index_dir and model_dir):
        ap.error("give --workdir, or --index and --retriever")

    if args.query:
        from zerogr_jax.retrieval.retriever import Retriever

        retriever = Retriever.load(index=index_dir, model=model_dir, config=config)
        for query, hits in zip(args.query, retriever.search(args.query)):
            print(f"query: {query}")
            for h in hits:
                print(f"{h.rank + 1:>4}  {h.doc_id:<16} {h.docid}" + (f"  | {h.title}" if h.title else ""))
        return
    if not args.out:
        ap.error("--out is needed to write the run of --collection / --queries")
    if not (args.collection or args.queries):
        ap.error("give --collection or --queries")
    result = run_search(SearchStageConfig(index=index_dir, retriever=model_dir, out=args.out,
                                          collection=args.collection or "", queries=args.queries or "",
                                          data_root=args.data_root or "", search=config,
                                          progress=not args.no_progress))
    if result.run is not None:
        print(json.dumps({"queries": result.queries, "seconds": result.seconds, "out": result.out,
                          "processes": result.processes}))
