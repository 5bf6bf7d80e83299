"""Teacher-forced docid scoring: the constrained log-probability of given docids after one prompt.

`score_all_docids` returns, for one prompt, log p(docid | prompt) of every docid of the trie — the sum over its
tokens of log_softmax(logits masked to the node's children), which is 0 at a node with one child, so only a docid's
first tokens, through its last branching node, need feeding (`informative_nodes`) — the same quantity beam search ranks by
(`decoding.DocidRanking.logprobs`) — by running the prompt once into a read-only `SharedKV` segment and all docids
as rows after it: U x L tokens for U docids of L tokens, instead of a beam as wide as the trie whose every row
carries its own copy of the prompt's cache.

Its use here is the **docid prior** of `search.prior_weight`: log p(docid | the instruction with an empty query),
subtracted (times a weight) from each candidate's score, so that docids the retriever likes for every query
(common first words, frequent training targets) stop crowding out the ones this query makes likely — the
pointwise-mutual-information correction of query-likelihood ranking. And `top_docids` is `search.strategy=exact`:
the K best docids (prior included) by branch and bound, scoring a few dozen docids in full instead of all of them;
asked for the rerank head's token, the K found are fed whole once more, EOS included, for their head scores (the
search itself feeds only each docid's informative first tokens, so the head recipe's pool costs about one pass over
its K docids).

Shapes: U docids, L = trie.max_depth (EOS included), V' the head's width (the compact docid vocabulary with
`search.CompactHeadStepModel`).
"""

from __future__ import annotations

import dataclasses
import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax import generation, rerank_head
from zerogr_jax.retrieval import decoding, tree_rows
from zerogr_jax.models import llama
from zerogr_jax.sampling import NEG_INF
from zerogr_jax.retrieval.trie import Trie, TrieHost


def docid_paths(trie: TrieHost) -> tuple[np.ndarray, np.ndarray]:
    """Per docid, its nodes [U, L] (root side first, -1 after the leaf) and the node each token leaves from [U, L].

    Vectorized walk from every leaf to the root; a docid's tokens are `trie.node_token[nodes]`."""
    u, depth = trie.num_docids, trie.max_depth
    up = np.full((u, depth), -1, np.int64)  # leaf side first
    node = trie.docid_leaf.astype(np.int64)
    for j in range(depth):
        live = node > 0
        up[live, j] = node[live]
        node = np.where(live, trie.parent[np.maximum(node, 0)], 0)
    lengths = (up >= 0).sum(1)
    nodes = np.full((u, depth), -1, np.int64)
    for j in range(depth):  # reverse each row's first `length` entries
        src = lengths - 1 - j
        ok = src >= 0
        nodes[ok, j] = up[ok, src[ok]]
    parents = np.where(nodes >= 0, trie.parent[np.maximum(nodes, 0)], -1)
    return nodes.astype(np.int32), parents.astype(np.int32)


def informative_lengths(trie: TrieHost, paths: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """[U] int: how many of each docid's first tokens carry its constrained log-probability — through its last token
    drawn at a node with two or more children. After it every node has one child, whose masked log-softmax is
    exactly 0, so the first `informative_lengths` tokens sum to the whole docid's score: on a keyword trie a docid
    of ~12 tokens is decided by its first 2-3 (the rest only spells out a docid already determined)."""
    nodes, parents = paths
    branching = (nodes >= 0) & (trie.fanout[np.maximum(parents, 0)] > 1)  # [U, L]
    depth = np.arange(1, nodes.shape[1] + 1)
    return np.maximum(np.where(branching, depth, 0).max(1, initial=0), 1)


def informative_nodes(trie: TrieHost, paths: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """[U, L] each docid's nodes (`docid_paths`) cut after its `informative_lengths` (-1 after): root paths whose
    constrained log-probability equals the docid's, for a fraction of the tokens fed."""
    nodes = paths[0]
    keep = np.arange(nodes.shape[1])[None, :] < informative_lengths(trie, paths)[:, None]
    return np.where(keep, nodes, -1).astype(nodes.dtype)


# padded docid lengths: a few compiled row programs, and a short docid never pays for the longest one's length
LENGTH_BUCKETS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


def length_bucket(length: int) -> int:
    return next((b for b in LENGTH_BUCKETS if b >= length), -(-length // 64) * 64)


# rows per compiled call: every call of a program has exactly this many rows (the last padded with repeats of its last
# row, computed twice), so a search compiles one program per length bucket and not one per (bucket, row count) it
# happens to meet: those compiles had been 40 % of exact search's time on med (BENCHMARKS.md, session 14). 16 keeps a
# branch-and-bound block's padding small while its matmuls stay near the CPU's per-row cost of larger calls.
ROWS = 16
# rows per call of `next_logprobs` (paths of 1-2 tokens: cheap rows, many of them)
NEXT_ROWS = 64
# tree rows (`score_tree`): slots per row, and the most rows per compiled call (fewer rows go in power-of-two calls,
# so a search compiles at most log2(TREE_ROWS) + 1 programs and pads no row). 64 slots hold ~6 docids of ~10 tokens
# with their shared prefixes and waste ~3 % at the rows' tails (cranfield's trie)
TREE_WIDTH = 64
TREE_ROWS = 8


def _fixed_rows(rows: np.ndarray, size: int) -> np.ndarray:
    """`rows` (at most `size` indices) padded with repeats of its last to exactly `size`."""
    return np.concatenate([rows, np.repeat(rows[-1:], size - len(rows))])


@functools.partial(jax.jit, static_argnames=("model",))
def _prompt_pass(model: decoding.StepModel, params, prompt_tokens, prompt_mask):
    """prompt [1, P] -> (head logits after it [1, V'], its keys/values as a read-only segment, next position [1])."""
    cfg = model.cfg
    positions = generation.prompt_positions(prompt_mask)
    hidden, cache = llama.forward(model.model_params(params), cfg, prompt_tokens, positions,
                                  llama.init_cache(cfg, 1, prompt_tokens.shape[1]), 0, prompt_mask,
                                  return_hidden=True)
    return model.head(params, hidden[:, -1]), llama.SharedKV(cache.k, cache.v, prompt_mask), positions[:, -1] + 1


def _constrained_logp(model: decoding.StepModel, params, first, trie: Trie, hid, tokens, from_nodes):
    """[C] float32: the constrained log-probability of the rows `tokens` / `from_nodes` [C, L] (-1 padding) from the
    hidden states `hid` [C, >= L - 1, D] of their tokens after the prompt (position j predicts token j + 1) and the
    head's logits after the prompt `first` [1, V'] (which predict token 0)."""
    c, length = tokens.shape
    real = tokens >= 0  # [C, L]
    hid = hid[:, :length - 1]
    logits = jnp.concatenate([jnp.broadcast_to(first[:, None], (c, 1, first.shape[-1])),
                              model.head(params, hid.reshape(c * (length - 1), -1)).reshape(c, length - 1, -1)],
                             axis=1)  # [C, L, V']
    allowed = decoding.children_mask(trie, jnp.maximum(from_nodes, 0).reshape(-1)).reshape(logits.shape)
    logp = jax.nn.log_softmax(jnp.where(allowed, logits, NEG_INF), axis=-1)
    picked = jnp.take_along_axis(logp, jnp.maximum(tokens, 0)[..., None], axis=-1)[..., 0]  # [C, L]
    return jnp.sum(jnp.where(real, picked, 0.0), axis=1)


def _rows_hidden(model: decoding.StepModel, params, shared: llama.SharedKV, next_pos, tokens):
    """tokens [C, W] (-1 padding) as rows after one prompt's keys/values -> hidden states [C, W, D]. The rows read
    the prompt's segment once, never copying it."""
    c, width = tokens.shape
    row_pos = next_pos[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :]  # [1, W]
    hid, _ = llama.forward(model.model_params(params), model.cfg, model.vocab_ids(params, jnp.maximum(tokens, 0)),
                           jnp.broadcast_to(row_pos, (c, width)), llama.init_cache(model.cfg, c, width), 0,
                           tokens >= 0, return_hidden=True, shared=(shared,))
    return hid


@functools.partial(jax.jit, static_argnames=("model",))
def _score_rows(model: decoding.StepModel, params, first, shared: llama.SharedKV, next_pos, trie: Trie, tokens,
                from_nodes):
    """tokens / from_nodes [C, L] (-1 padding) after one prompt (`_prompt_pass`) -> [C] float32 constrained
    log-probabilities. A row's last token is only predicted, never fed."""
    hid = _rows_hidden(model, params, shared, next_pos, tokens[:, :-1])  # token j is read to predict token j + 1
    return _constrained_logp(model, params, first, trie, hid, tokens, from_nodes)


@functools.partial(jax.jit, static_argnames=("model",))
def _score_head_rows(model: decoding.StepModel, params, first, shared: llama.SharedKV, next_pos, trie: Trie, tokens,
                     from_nodes, head_token):
    """`_score_rows` of whole docids (EOS included) with the EOS fed too, so that the same pass gives the rerank
    head's logit of `head_token` after each docid (`_head_rows`) -> [C, 2] float32: (log-probability, head score).
    One more position per row than `_score_rows` buys the head's score, which alone costs a whole pass."""
    hid = _rows_hidden(model, params, shared, next_pos, tokens)
    row = llama.head_rows(model.model_params(params), model.cfg)[head_token]
    head = rerank_head.scores(hid, rerank_head.last_positions(tokens >= 0), row)
    return jnp.stack([_constrained_logp(model, params, first, trie, hid, tokens, from_nodes), head], axis=1)


def _tree_hidden(model: decoding.StepModel, params, shared: llama.SharedKV, next_pos, tokens, depth, visible):
    """Tree rows (`tree_rows.TreeRows`: tokens / depth [C, W], -1 = empty slot; visible [C, W, W]) after one prompt's
    keys/values -> hidden states [C, W, D]: each slot at the prompt's next position plus its depth, seeing the prompt
    and its ancestors (`_rows_hidden` for rows that are trees)."""
    c, width = tokens.shape
    hid, _ = llama.forward(model.model_params(params), model.cfg, model.vocab_ids(params, jnp.maximum(tokens, 0)),
                           next_pos[:, None] + depth, llama.init_cache(model.cfg, c, width), 0,
                           visible & (tokens >= 0)[:, None, :], return_hidden=True, shared=(shared,))
    return hid


def _after_nodes(model: decoding.StepModel, params, trie: Trie, hid, node, free: bool = False):
    """hidden [C, W, D] at the nodes `node` [C, W] -> [C, W, V'] the next token's log-probabilities after each node,
    constrained to its children; with `free`, also those over the head's whole vocabulary (unconstrained)."""
    c, width = node.shape
    logits = model.head(params, hid.reshape(c * width, -1))  # [C * W, V']
    own = jax.nn.log_softmax(jnp.where(decoding.children_mask(trie, node.reshape(-1)), logits, NEG_INF), axis=-1
                             ).reshape(c, width, -1)
    return (own, jax.nn.log_softmax(logits, axis=-1).reshape(c, width, -1)) if free else own


@functools.partial(jax.jit, static_argnames=("model", "free"))
def _score_tree_rows(model: decoding.StepModel, params, first, shared: llama.SharedKV, next_pos, trie: Trie, tokens,
                     depth, node, parent_slot, visible, read_slot, read_token, head_token, free: bool = False):
    """Tree rows (`tree_rows.TreeRows`, C rows of W slots and M reads) after one prompt -> ([C, W, 2] float32 per
    slot: the log-probability of its token at its parent (the prompt's `first` logits where the parent is the root)
    and the rerank head's logit of `head_token` at the slot (read after a fed EOS leaf); [C, M] float32 the rows'
    reads: the log-probability of `read_token` after the node of `read_slot`, or after the prompt where it is -1).
    Each slot sees the prompt and its ancestors only. With `free`, a third per-slot column and a second read column
    [C, M, 2] give the same log-probabilities unconstrained (over the head's whole vocabulary)."""
    c = tokens.shape[0]
    hid = _tree_hidden(model, params, shared, next_pos, tokens, depth, visible)
    tables = _after_nodes(model, params, trie, hid, node, free)
    tables = tables if free else (tables,)
    roots = (jnp.where(decoding.children_mask(trie, jnp.zeros(1, jnp.int32)), first, NEG_INF), first)
    tok, read_tok, rows = jnp.maximum(tokens, 0), jnp.maximum(read_token, 0), jnp.arange(c)[:, None]
    token_logp, reads = [], []
    for table, logits in zip(tables, roots):
        root = jax.nn.log_softmax(logits, axis=-1)[0]  # [V'] after the prompt
        token_logp.append(jnp.where(parent_slot >= 0, table[rows, jnp.maximum(parent_slot, 0), tok], root[tok]))
        reads.append(jnp.where(read_slot >= 0, table[rows, jnp.maximum(read_slot, 0), read_tok], root[read_tok]))
    row = llama.head_rows(model.model_params(params), model.cfg)[head_token]
    head = jnp.einsum("cwd,d->cw", hid.astype(jnp.float32), row.astype(jnp.float32))
    per_slot = jnp.stack([token_logp[0], head, *token_logp[1:]], axis=-1)
    return per_slot, (jnp.stack(reads, axis=-1) if free else reads[0])


@functools.partial(jax.jit, static_argnames=("model",))
def _tree_next_logprobs(model: decoding.StepModel, params, shared: llama.SharedKV, next_pos, trie: Trie, tokens, depth,
                        node, visible):
    """Tree rows (C rows of W slots, every node fed) after one prompt -> [C, W, V'] float32: the log-probabilities of
    the next token after each slot's node, constrained to its children (`_next_logprobs` for every slot at once)."""
    return _after_nodes(model, params, trie, _tree_hidden(model, params, shared, next_pos, tokens, depth, visible),
                        node)


@dataclasses.dataclass(frozen=True)
class EncodedPrompt:
    """A prompt run once (`encode_prompt`): the head's logits after it, its keys/values, the next position."""

    first: jax.Array  # [1, V'] float32
    shared: llama.SharedKV  # [layers, 1, kv, P, head_dim]
    next_pos: jax.Array  # [1] int32


# prompts are left-padded to a multiple of this: every program after the prompt is compiled per prompt width, so a
# coarse multiple lets one set of programs serve a whole query set (and the docid prior's prompt) — most instructed
# queries fit one width — while the padding costs only masked attention
PROMPT_MULTIPLE = 128


def encode_prompt(model: decoding.StepModel, params, prompt: list[int], pad_id: int = 0) -> EncodedPrompt:
    from zerogr_jax.tokenization import left_pad

    tokens, mask = left_pad([prompt], pad_id, multiple_of=PROMPT_MULTIPLE)
    return EncodedPrompt(*_prompt_pass(model, params, jnp.asarray(tokens), jnp.asarray(mask)))


def score_paths(model: decoding.StepModel, params, encoded: EncodedPrompt, trie: Trie, tokens: np.ndarray,
                from_nodes: np.ndarray, *, chunk: int = ROWS) -> np.ndarray:
    """[N] float32: the constrained log-probability of N root paths after the prompt — tokens / from_nodes [N, L]
    (-1 after a path's end): whole docids, or prefixes of them (a prefix's score bounds its docids' from above)."""
    return _bucketed_rows(tokens, chunk, lambda take, width: _score_rows(
        model, params, encoded.first, encoded.shared, encoded.next_pos, trie,
        jnp.asarray(_pad_columns(tokens[take], width)), jnp.asarray(_pad_columns(from_nodes[take], width))))


def score_paths_and_head(model: decoding.StepModel, params, encoded: EncodedPrompt, trie: Trie, tokens: np.ndarray,
                         from_nodes: np.ndarray, head_token: int, *, chunk: int = ROWS) -> np.ndarray:
    """[N, 2] float32: (`score_paths`, the rerank head's score of `head_token`) of N whole docids (EOS included)
    after the prompt, both from one pass per row (`_score_head_rows`)."""
    return _bucketed_rows(tokens, chunk, lambda take, width: _score_head_rows(
        model, params, encoded.first, encoded.shared, encoded.next_pos, trie,
        jnp.asarray(_pad_columns(tokens[take], width)), jnp.asarray(_pad_columns(from_nodes[take], width)),
        jnp.asarray(head_token, jnp.int32)), row_shape=(2,))


TREE_FIELDS = ("tokens", "depth", "node", "parent_slot", "visible")


def _tree_calls(packed: tree_rows.TreeRows, rows: int, run, fields: tuple[str, ...] = TREE_FIELDS):
    """`run(*(packed.<field> for field in fields))` over the packed rows, `rows` rows per call and the rest in
    power-of-two calls (no row is padding, and at most log2(rows) + 1 programs are compiled per row width) -> its
    outputs (an array or a tuple of arrays, each [R, ...]) concatenated."""
    out, start, total = [], 0, len(packed.tokens)
    while start < total:
        take = slice(start, start + min(rows, 1 << ((total - start).bit_length() - 1)))
        out.append(jax.device_get(run(*(jnp.asarray(getattr(packed, f)[take]) for f in fields))))
        start = take.stop
    if isinstance(out[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*out))
    return np.concatenate(out)


def score_tree(model: decoding.StepModel, params, encoded: EncodedPrompt, host_trie: TrieHost, trie: Trie,
               nodes: np.ndarray, *, head_token: int | None = None, free: bool = False, width: int = TREE_WIDTH,
               rows: int = TREE_ROWS) -> np.ndarray:
    """`score_paths` (or with `head_token`, `score_paths_and_head`: [N, 2]) of N root paths given by their nodes
    [N, L] (`docid_paths`: whole docids; or `informative_nodes`: the first nodes of each, which carry the same
    score), packed as prefix trees (`tree_rows.pack`): each node the paths of a row share is fed once, and rows are
    padded only at their tails; exactly `rows` rows of `width` slots per compiled call. The head is read after a
    path's last node, so with `head_token` the paths are whole docids. With `free`, one more column: each path's
    log-probability unconstrained (every token over the head's whole vocabulary, `_after_nodes`): [N, 2], or with
    the head [N, 3] (log-probability, head, unconstrained)."""
    nodes = np.asarray(nodes)
    columns = 1 + (head_token is not None) + free
    if not len(nodes):
        return np.empty((0,) if columns == 1 else (0, columns), np.float32)
    packed = tree_rows.pack(host_trie, nodes, max(width, host_trie.max_depth), feed_leaves=head_token is not None)
    per_slot, reads = _tree_calls(packed, rows, lambda *arrays: _score_tree_rows(
        model, params, encoded.first, encoded.shared, encoded.next_pos, trie, *arrays,
        jnp.asarray(0 if head_token is None else head_token, jnp.int32), free),
        TREE_FIELDS + ("read_slot", "read_token"))  # [R, W, 2 or 3], [R, M] or [R, M, 2]
    out = [tree_rows.path_sums(packed, per_slot[..., 0], reads[..., 0] if free else reads)]
    if head_token is not None:
        lengths = (packed.slots >= 0).sum(1)
        leaf = packed.slots[np.arange(len(nodes)), lengths - 1]
        out.append(per_slot[packed.row, leaf, 1])
    if free:
        out.append(tree_rows.path_sums(packed, per_slot[..., 2], reads[..., 1]))
    return out[0] if columns == 1 else np.stack(out, axis=1)


def _bucketed_rows(tokens: np.ndarray, chunk: int, run, row_shape: tuple[int, ...] = ()) -> np.ndarray:
    """[N, *row_shape] float32 of `run(rows, width) -> [len(rows), *row_shape]` over the paths `tokens` [N, L] (-1
    after a path's end): shortest first, exactly `chunk` rows per call (`_fixed_rows`), each call as wide as the
    length bucket (`length_bucket`) of its longest path, so that one compiled program per bucket serves any set of
    paths and a short path rarely pays for a long one."""
    out = np.empty((len(tokens), *row_shape), np.float32)
    lengths = (tokens >= 0).sum(1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), chunk):
        take = _fixed_rows(order[start:start + chunk], chunk)
        out[take] = np.asarray(run(take, length_bucket(int(lengths[take].max()))))
    return out


@functools.partial(jax.jit, static_argnames=("model",))
def _head_rows(model: decoding.StepModel, params, shared: llama.SharedKV, next_pos, tokens, head_token):
    """tokens [C, L] (-1 padding; each row a whole docid, EOS included) after one prompt -> [C] float32: the rerank
    head's logit (`rerank_head`) at each row's last token, i.e. after the docid's EOS."""
    hid = _rows_hidden(model, params, shared, next_pos, tokens)
    row = llama.head_rows(model.model_params(params), model.cfg)[head_token]
    return rerank_head.scores(hid, rerank_head.last_positions(tokens >= 0), row)


def head_scores(model: decoding.StepModel, params, prompt: list[int], host_trie: TrieHost, docids: np.ndarray,
                head_token: int, *, chunk: int = ROWS, pad_id: int = 0,
                paths: tuple[np.ndarray, np.ndarray] | None = None, layout: str = "tree",
                trie: Trie | None = None) -> np.ndarray:
    """[N] float32: the rerank head's score of the docid indices `docids` [N] after `prompt` (token `head_token`,
    a vocabulary id): the prompt runs once, the docids (EOS included) after it, packed as prefix trees (`layout=
    "tree"`, `score_tree`; `trie` = `host_trie` on device, built here if not given) or one row each (`"rows"`)."""
    docids = np.asarray(docids, np.int64)
    if not len(docids):
        return np.empty(0, np.float32)
    paths = docid_paths(host_trie) if paths is None else paths
    encoded = encode_prompt(model, params, prompt, pad_id)
    if _layout(layout) == "tree":
        return score_tree(model, params, encoded, host_trie, host_trie.to_device() if trie is None else trie,
                          paths[0][docids], head_token=head_token)[:, 1]
    tokens = path_tokens(host_trie, paths, docids)[0]
    return _bucketed_rows(tokens, chunk, lambda take, width: _head_rows(
        model, params, encoded.shared, encoded.next_pos, jnp.asarray(_pad_columns(tokens[take], width)),
        jnp.asarray(head_token, jnp.int32)))


def path_tokens(host_trie: TrieHost, paths: tuple[np.ndarray, np.ndarray], docids: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """tokens and from_nodes [N, L] of the docid indices `docids` [N] (-1 after each docid's EOS)."""
    nodes, from_nodes = paths[0][docids], paths[1][docids]
    return np.where(nodes >= 0, host_trie.node_token[np.maximum(nodes, 0)], -1).astype(np.int32), from_nodes


def score_all_docids(model: decoding.StepModel, params, prompt: list[int], host_trie: TrieHost, trie: Trie, *,
                     chunk: int = ROWS, pad_id: int = 0,
                     paths: tuple[np.ndarray, np.ndarray] | None = None, layout: str = "tree") -> np.ndarray:
    """[U] float32: log p(docid u | prompt) under the trie constraint, for every docid of `host_trie`.

    `trie` is `host_trie` on device (the compact one with a compact head)."""
    return score_docids(model, params, prompt, host_trie, trie, np.arange(host_trie.num_docids), chunk=chunk,
                        pad_id=pad_id, paths=paths, layout=layout)


def score_docids(model: decoding.StepModel, params, prompt: list[int], host_trie: TrieHost, trie: Trie,
                 docids: np.ndarray, *, chunk: int = ROWS, pad_id: int = 0,
                 paths: tuple[np.ndarray, np.ndarray] | None = None, layout: str = "tree") -> np.ndarray:
    """[N] float32: log p(docid | prompt) under the trie constraint for the docid indices `docids` [N] (any order,
    repeats allowed); `paths` = `docid_paths(host_trie)` when the caller scores many prompts over one trie. The
    prompt runs once, then the docids after it: packed as prefix trees (`layout="tree"`, `score_tree`) or one row
    each in chunks of `chunk` rows (`layout="rows"`, `score_paths`)."""
    docids = np.asarray(docids, np.int64)
    if not len(docids):
        return np.empty(0, np.float32)
    paths = docid_paths(host_trie) if paths is None else paths
    paths = (informative_nodes(host_trie, paths), paths[1])  # the tokens that carry the score, no more
    encoded = encode_prompt(model, params, prompt, pad_id)
    if _layout(layout) == "tree":
        return score_tree(model, params, encoded, host_trie, trie, paths[0][docids])
    tokens, from_nodes = path_tokens(host_trie, paths, docids)
    return score_paths(model, params, encoded, trie, tokens, from_nodes, chunk=chunk)


@functools.partial(jax.jit, static_argnames=("model",))
def _next_logprobs(model: decoding.StepModel, params, first, shared: llama.SharedKV, next_pos, trie: Trie, tokens,
                   last_node):
    """tokens [C, m] (root paths of m >= 0 tokens, no padding) -> [C, V'] float32: log-probabilities of the next
    token after each path, constrained to the children of its last node `last_node` [C] (-inf elsewhere)."""
    c, m = tokens.shape
    if m == 0:
        logits = jnp.broadcast_to(first, (c, first.shape[-1]))
    else:
        row_pos = next_pos[:, None] + jnp.arange(m, dtype=jnp.int32)[None, :]
        hid, _ = llama.forward(model.model_params(params), model.cfg, model.vocab_ids(params, tokens),
                               jnp.broadcast_to(row_pos, (c, m)), llama.init_cache(model.cfg, c, m), 0,
                               jnp.ones((c, m), bool), return_hidden=True, shared=(shared,))
        logits = model.head(params, hid[:, -1])
    return jax.nn.log_softmax(jnp.where(decoding.children_mask(trie, last_node), logits, NEG_INF), axis=-1)


def next_logprobs(model: decoding.StepModel, params, encoded: EncodedPrompt, trie: Trie, tokens: np.ndarray,
                  last_node: np.ndarray, *, chunk: int = NEXT_ROWS) -> np.ndarray:
    """[C, V'] `_next_logprobs` of C paths of one length, exactly `chunk` rows per call (`_fixed_rows`)."""
    out = []
    for start in range(0, len(tokens), chunk):
        block = np.arange(start, min(start + chunk, len(tokens)))
        take = _fixed_rows(block, chunk)
        out.append(np.asarray(_next_logprobs(model, params, encoded.first, encoded.shared, encoded.next_pos, trie,
                                             jnp.asarray(tokens[take], jnp.int32),
                                             jnp.asarray(last_node[take], jnp.int32)))[:len(block)])
    return np.concatenate(out)


def tree_next_logprobs(model: decoding.StepModel, params, encoded: EncodedPrompt, host_trie: TrieHost, trie: Trie,
                       prefixes: np.ndarray, *, width: int = TREE_WIDTH, rows: int = TREE_ROWS) -> np.ndarray:
    """[N, V'] `next_logprobs` after N root paths given by their nodes [N, m] (m >= 1, no padding), packed as prefix
    trees: the nodes they share are fed once, and no call is padded (power-of-two calls as in `score_tree`)."""
    packed = tree_rows.pack(host_trie, prefixes, max(width, prefixes.shape[1]), feed_leaves=True)
    per_slot = _tree_calls(packed, rows, lambda tokens, depth, node, parent_slot, visible: _tree_next_logprobs(
        model, params, encoded.shared, encoded.next_pos, trie, tokens, depth, node, visible))  # [R, W, V']
    return per_slot[packed.row, packed.slots[:, prefixes.shape[1] - 1]]


# bounds come from other programs than the full rows' sums and may differ in the last bits: prune with this margin
BOUND_SLACK = 1e-3


class TopDocids(typing.NamedTuple):
    """`top_docids`' answer, best first by the corrected score (ties: lower docid index first)."""

    ids: np.ndarray  # [k] docid indices
    logprobs: np.ndarray  # [k] float32 log p(d | prompt), without the prior
    scored: int  # how many docids were scored (in full, or by a bound over their whole informative path)
    head: np.ndarray | None  # [k] float32 the rerank head's score of each (with head_token), else None


def top_docids(model: decoding.StepModel, params, prompt: list[int], host_trie: TrieHost, trie: Trie, k: int, *,
               prior: np.ndarray | None = None, prior_weight: float = 0.0, bound_depth: int = 3, chunk: int = 32,
               rows: int = ROWS, pad_id: int = 0, paths: tuple[np.ndarray, np.ndarray] | None = None,
               head_token: int | None = None, layout: str = "tree") -> TopDocids:
    """The k docids with the best log p(d | prompt) - prior_weight * prior[d], exactly, scoring few docids in full:
    the top k of `score_all_docids` minus the prior, without scoring every docid.

    Branch and bound: each token's log-probability is <= 0, so a docid's score is at most the score of its first m
    tokens plus the prior term. Depth 1 comes free with the prompt; the `chunk` docids with the best depth-1 bound
    are scored in full, which gives a k-th best score; then, down to `bound_depth`, the bound of every docid still
    above it gains one token: one row per distinct trie node at that depth (its path fed once, the next token's
    distribution over all its children read off). Last, docids are scored in full in order of their bound, `chunk`
    at a time, until the k-th best full score beats every bound left. Nothing is pruned that could be in the top k.
    On a trained retriever a small share of the docids is scored in full, since its first tokens' distributions
    are peaked; with k >= every docid, all are scored in full and no bound is computed. With `layout="tree"` the
    docids scored in full and the bound rows are packed as prefix trees (`score_tree`, `tree_next_logprobs`: shared
    nodes fed once); with `"rows"`, one row per docid, `rows` per compiled call, and one row per bound path. With
    `head_token` (a vocabulary id) the k docids found get their rerank head score from one more pass over them
    whole (EOS fed). The search scores a docid over its `informative_nodes` only (the tokens after them are
    forced: log-probability 0), so a docid whose bound has reached its last informative token is scored by its
    bound, and one scored in full feeds its first 2-3 tokens, not its ~12.
    """
    u = host_trie.num_docids
    k = min(k, u)
    whole = docid_paths(host_trie) if paths is None else paths
    paths = (informative_nodes(host_trie, whole), whole[1])  # a docid's first tokens carry its whole score
    nodes = paths[0]  # [U, L] node at depth j + 1, -1 past the path's end
    lengths = (nodes >= 0).sum(1)
    correction = np.zeros(u, np.float32) if prior is None or not prior_weight else -prior_weight * prior
    encoded = encode_prompt(model, params, prompt, pad_id)
    full = np.full(u, -np.inf, np.float32)
    scored = np.zeros(u, bool)

    tree = _layout(layout) == "tree"

    def score_in_full(block: np.ndarray) -> float:
        if tree:
            full[block] = score_tree(model, params, encoded, host_trie, trie, nodes[block])
        else:
            full[block] = score_paths(model, params, encoded, trie, *path_tokens(host_trie, paths, block), chunk=rows)
        scored[block] = True
        got = full[scored] + correction[scored]
        return float(np.partition(got, len(got) - k)[len(got) - k]) if len(got) >= k else -np.inf

    if k == u:  # every docid is in the answer: no bound can prune one
        score_in_full(np.arange(u))
    else:
        root = next_logprobs(model, params, encoded, trie, np.zeros((1, 0), np.int32), np.zeros(1, np.int32))[0]
        bound = root[host_trie.node_token[nodes[:, 0]]] + correction

        through = np.ones(u, np.int64)  # each docid's bound holds its first `through` tokens

        def settle() -> None:
            """Without the head, a bound over a docid's whole (informative) path is its score: take it as scored."""
            nonlocal kth
            done = np.flatnonzero(~scored & (through >= lengths))
            if len(done):
                full[done] = bound[done] - correction[done]
                scored[done] = True
                got = full[scored] + correction[scored]
                kth = max(kth, float(np.partition(got, len(got) - k)[len(got) - k]) if len(got) >= k else -np.inf)

        def best_unscored() -> np.ndarray:
            rest = np.flatnonzero(~scored)
            return rest[np.lexsort((rest, -bound[rest]))[:chunk]]

        kth = -np.inf
        settle()
        if (~scored).any():
            kth = max(kth, score_in_full(best_unscored()))
        for m in range(1, bound_depth):  # one more token in the bound of every docid that could still make the top k
            alive = np.flatnonzero(~scored & (bound >= kth - BOUND_SLACK) & (lengths > m))
            if not len(alive):
                break
            unique, first, inverse = np.unique(nodes[alive, m - 1], return_index=True, return_inverse=True)
            if tree:
                lp = tree_next_logprobs(model, params, encoded, host_trie, trie, nodes[alive[first], :m])
            else:
                tokens = path_tokens(host_trie, paths, alive[first])[0][:, :m]
                lp = next_logprobs(model, params, encoded, trie, tokens, unique)  # [distinct depth-m nodes, V']
            bound[alive] += lp[inverse, host_trie.node_token[nodes[alive, m]]]
            through[alive] = m + 1
            settle()
        while (~scored).any():
            block = best_unscored()
            if bound[block[0]] < kth - BOUND_SLACK:
                break  # every docid left is bounded below the k-th best found
            kth = score_in_full(block)
    ids = np.flatnonzero(scored)
    best = ids[np.lexsort((ids, -(full[ids] + correction[ids])))[:k]]
    head = None
    if head_token is not None:  # read after the whole docid: its EOS fed
        if tree:
            head = score_tree(model, params, encoded, host_trie, trie, whole[0][best], head_token=head_token)[:, 1]
        else:
            head = score_paths_and_head(model, params, encoded, trie, *path_tokens(host_trie, whole, best),
                                        head_token, chunk=rows)[:, 1]
    return TopDocids(best, full[best], len(ids), head)


LAYOUTS = ("tree", "rows")


def _layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown docid layout {layout!r}; choose one of {LAYOUTS}")
    return layout


def _pad_columns(a: np.ndarray, width: int) -> np.ndarray:
    """[N, L] -> [N, width] (cut or padded with -1): L = the trie's depth, width >= every row's real length."""
    if a.shape[1] >= width:
        return a[:, :width]
    return np.concatenate([a, np.full((a.shape[0], width - a.shape[1]), -1, a.dtype)], axis=1)
