"""The docid prefix tree: built on the host with vectorized numpy, used on device as flat arrays.

Keyword docids in an LM vocabulary have heavy-tailed fan-out (a 171K-document corpus: ~1.85M nodes, root fan-out
~40K, 99.9% of nodes <= 11 children), so a dense [nodes, vocab] table is out of the question. Layout:

* Nodes are numbered breadth-first (root = 0, then all depth-1 nodes, ...), siblings in ascending token order.
  Children of node p are therefore the contiguous ids `[child_start[p], child_start[p + 1])` (CSR with the child id
  implicit), and `node_token[c]` is the token on the edge into c, sorted within a sibling range, so "child of p by
  token t" is a binary search.
* A decode step gathers a fixed width W of children per node (covers every node with fan-out <= W); the few nodes
  with more children get a dense bitmask row over the vocabulary (`bitmask[row, t // 32] >> (t % 32) & 1`).
* `count[n]` = number of docids below n (1 at a leaf); per-query removal subtracts from it (see decoding.py).
* Every docid ends with EOS (which occurs nowhere else), so the leaves are exactly the EOS nodes;
  `node_docid[leaf]` is the docid index. Docid indices follow the lexicographic order of the token sequences,
  so the docids below any node form a contiguous index range.
* Several documents may share one docid: docid -> documents is a CSR (`doc_indptr`, `doc_ids`), kept on the host.
  No document is ever dropped: `doc_ids` is a permutation of all input document indices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from zerogr_jax import atomic_files

DEFAULT_WIDTH = 16
_FORMAT_VERSION = 1


@flax.struct.dataclass
class Trie:
    """Device view of the trie. Array shapes: N nodes (possibly padded), R bitmask rows, V vocabulary."""

    node_token: jax.Array  # [N] int32, token on the edge into the node (-1 at the root and padding)
    child_start: jax.Array  # [N + 1] int32, children of p are ids [child_start[p], child_start[p + 1])
    count: jax.Array  # [N] int32, docids below the node (0 for padding)
    node_docid: jax.Array  # [N] int32, docid index at a leaf (EOS node), else -1
    bitmask_row: jax.Array  # [N] int32, row of `bitmask` for nodes with fan-out > width, else -1
    bitmask: jax.Array  # [R, ceil(V / 32)] uint32, child-token bits of the high-fan-out nodes
    vocab_size: int = flax.struct.field(pytree_node=False)
    width: int = flax.struct.field(pytree_node=False)  # W: children gathered per step
    max_depth: int = flax.struct.field(pytree_node=False)  # L: longest docid in tokens, EOS included
    search_steps: int = flax.struct.field(pytree_node=False)  # binary-search iterations, >= log2(max fan-out + 1)
    eos_id: int = flax.struct.field(pytree_node=False)

    @property
    def num_nodes(self) -> int:
        return self.node_token.shape[0]


@dataclasses.dataclass(frozen=True)
class TrieHost:
    """Host (numpy) trie with metadata; `to_device()` gives the `Trie` used inside compiled decoding."""

    node_token: np.ndarray  # [N] int32
    child_start: np.ndarray  # [N + 1] int32
    count: np.ndarray  # [N] int32
    node_docid: np.ndarray  # [N] int32
    parent: np.ndarray  # [N] int32 (-1 at the root): host-side walks from a leaf back to its tokens
    bitmask_row: np.ndarray  # [N] int32
    bitmask: np.ndarray  # [R, ceil(V / 32)] uint32
    docid_leaf: np.ndarray  # [U] int32, leaf node of each docid
    doc_indptr: np.ndarray  # [U + 1] int64, documents of docid u are doc_ids[doc_indptr[u]:doc_indptr[u + 1]]
    doc_ids: np.ndarray  # [num_docs] int64, input document indices grouped by docid (ascending within a docid)
    vocab_size: int
    width: int
    max_depth: int
    eos_id: int

    @property
    def num_nodes(self) -> int:
        return int(self.node_token.shape[0])

    @property
    def num_docids(self) -> int:
        return int(self.docid_leaf.shape[0])

    @property
    def num_documents(self) -> int:
        return int(self.doc_ids.shape[0])

    @property
    def fanout(self) -> np.ndarray:
        return np.diff(self.child_start)

    @property
    def max_fanout(self) -> int:
        return int(self.fanout.max(initial=0))

    @property
    def nbytes(self) -> int:
        """Host bytes of all arrays (the device copy holds a subset: no parent / docid_leaf / doc CSR)."""
        return sum(getattr(self, f.name).nbytes for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), np.ndarray))

    @property
    def device_nbytes(self) -> int:
        return sum(getattr(self, n).nbytes for n in
                   ("node_token", "child_start", "count", "node_docid", "bitmask_row", "bitmask"))

    def docid_tokens(self, docid: int) -> list[int]:
        """Token ids of one docid (EOS included), by walking up from its leaf."""
        out, n = [], int(self.docid_leaf[docid])
        while n > 0:
            out.append(int(self.node_token[n]))
            n = int(self.parent[n])
        return out[::-1]

    def documents(self, docid: int) -> np.ndarray:
        """Input document indices that share this docid (at least one)."""
        return self.doc_ids[self.doc_indptr[docid]:self.doc_indptr[docid + 1]]

    def metadata(self) -> dict:
        return dict(num_nodes=self.num_nodes, num_docids=self.num_docids, num_documents=self.num_documents,
                    max_depth=self.max_depth, max_fanout=self.max_fanout, root_fanout=int(self.fanout[0]),
                    bitmask_rows=int(self.bitmask.shape[0]), width=self.width, vocab_size=self.vocab_size,
                    host_bytes=self.nbytes, device_bytes=self.device_nbytes)

    def to_device(self, *, num_nodes: int | None = None, max_depth: int | None = None,
                  bitmask_rows: int | None = None, search_steps: int | None = None) -> Trie:
        """Device arrays. The optional sizes pad the arrays (each at least the real value) so that several tries
        share one compiled decoder: padding nodes have count 0 and no children, extra depth is never used."""
        n = self.num_nodes if num_nodes is None else num_nodes
        r = self.bitmask.shape[0] if bitmask_rows is None else bitmask_rows
        depth = self.max_depth if max_depth is None else max_depth
        steps = max(1, int(np.ceil(np.log2(self.max_fanout + 1))))
        if n < self.num_nodes or r < self.bitmask.shape[0] or depth < self.max_depth or (
                search_steps is not None and search_steps < steps):
            raise ValueError(f"to_device sizes must be >= the trie's own (nodes {self.num_nodes}, bitmask rows "
                             f"{self.bitmask.shape[0]}, depth {self.max_depth}, search steps {steps})")

        def pad(a, size, value):
            return np.concatenate([a, np.full((size - a.shape[0],) + a.shape[1:], value, a.dtype)])

        return Trie(
            node_token=jnp.asarray(pad(self.node_token, n, -1)),
            child_start=jnp.asarray(pad(self.child_start, n + 1, self.child_start[-1])),
            count=jnp.asarray(pad(self.count, n, 0)),
            node_docid=jnp.asarray(pad(self.node_docid, n, -1)),
            bitmask_row=jnp.asarray(pad(self.bitmask_row, n, -1)),
            bitmask=jnp.asarray(pad(self.bitmask, r, 0)),
            vocab_size=self.vocab_size, width=self.width, max_depth=depth,
            search_steps=steps if search_steps is None else search_steps, eos_id=self.eos_id)

    # -- persistence --------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Writes an .npz atomically (`atomic_files`); plain arrays only, loadable without pickle."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        arrays["format_version"] = _FORMAT_VERSION
        with atomic_files.atomic_open(path, "wb") as f:
            _write_npz(f, {k: np.asarray(v) for k, v in arrays.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrieHost":
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"]) if "format_version" in z else -1
            if version != _FORMAT_VERSION:
                raise ValueError(f"{path}: trie format version {version}, expected {_FORMAT_VERSION}")
            kwargs = {}
            for f in dataclasses.fields(cls):
                if f.name not in z:
                    raise ValueError(f"{path}: missing array '{f.name}'")
                v = z[f.name]
                kwargs[f.name] = int(v) if v.ndim == 0 else v
        return cls(**kwargs)


def _write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez` with fixed zip timestamps, so the same trie is the same bytes (np.savez stamps the current time)."""
    import zipfile

    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arrays[name], allow_pickle=False)


def _pad_sequences(docid_tokens) -> tuple[np.ndarray, np.ndarray]:
    """[num_docs, L] int32 matrix padded with -1, and lengths [num_docs]; accepts lists or (matrix, lengths)."""
    if isinstance(docid_tokens, tuple) and len(docid_tokens) == 2 and isinstance(docid_tokens[0], np.ndarray):
        matrix, lengths = docid_tokens
        lengths = np.asarray(lengths, np.int64)
        cols = np.arange(matrix.shape[1])
        return np.where(cols[None, :] < lengths[:, None], matrix, -1).astype(np.int32), lengths
    lengths = np.fromiter((len(s) for s in docid_tokens), np.int64, count=len(docid_tokens))
    flat = np.fromiter(itertools.chain.from_iterable(docid_tokens), np.int64, count=int(lengths.sum()))
    width = int(lengths.max(initial=1))
    matrix = np.full((len(lengths), width), -1, np.int32)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(flat.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    matrix[rows, cols] = flat
    return matrix, lengths


def _validate(matrix: np.ndarray, lengths: np.ndarray, eos_id: int, vocab_size: int) -> None:
    def fail(mask, what):
        bad = np.flatnonzero(mask)
        if bad.size:
            raise ValueError(f"docid {int(bad[0])} (of {len(lengths)}; {bad.size} bad in all) {what}")

    fail(lengths == 0, "is empty (every docid must end with EOS)")
    rows = np.arange(len(lengths))
    fail(matrix[rows, np.maximum(lengths - 1, 0)] != eos_id, f"does not end with EOS {eos_id}")
    real = np.arange(matrix.shape[1])[None, :] < lengths[:, None]
    fail((((matrix < 0) | (matrix >= vocab_size)) & real).any(axis=1), f"has a token outside [0, {vocab_size})")
    early = (matrix == eos_id) & (np.arange(matrix.shape[1])[None, :] < (lengths - 1)[:, None])
    fail(early.any(axis=1), f"contains EOS {eos_id} before its end")


def build_trie(docid_tokens: Sequence[Sequence[int]] | tuple[np.ndarray, np.ndarray], *, eos_id: int,
               vocab_size: int, width: int = DEFAULT_WIDTH) -> TrieHost:
    """Builds the trie from one tokenized docid per document (each ending with `eos_id`).

    `docid_tokens` is a list of token-id sequences, or a pair (matrix [num_docs, L] int, lengths [num_docs]).
    Identical sequences become one docid whose leaf lists every such document. Everything is vectorized over
    documents: one lexicographic sort, then per-depth cumulative sums number the nodes.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    matrix, lengths = _pad_sequences(docid_tokens)  # [D, L], [D]
    num_docs, depth = matrix.shape
    if num_docs == 0:
        raise ValueError("no docids to build a trie from")
    _validate(matrix, lengths, eos_id, vocab_size)

    order = np.lexsort(matrix.T[::-1])  # stable: documents of one docid stay in input order
    sorted_rows = matrix[order]  # [D, L]
    # first position where a row differs from the previous one (depth if identical = same docid)
    differs = sorted_rows[1:] != sorted_rows[:-1]  # [D - 1, L]
    first_diff = np.where(differs.any(axis=1), differs.argmax(axis=1), depth)
    group_start = np.concatenate([[True], first_diff < depth])  # [D], a new docid starts here
    doc_indptr = np.append(np.flatnonzero(group_start), num_docs).astype(np.int64)  # [U + 1]
    uniq = sorted_rows[group_start]  # [U, L]
    uniq_len = lengths[order][group_start]  # [U]
    lcp = np.concatenate([[0], first_diff[group_start[1:]]])  # [U], common prefix with the previous docid
    num_docids = uniq.shape[0]
    del differs, sorted_rows

    cols = np.arange(depth)[None, :]
    real = cols < uniq_len[:, None]  # [U, L]
    new = real & (cols >= lcp[:, None])  # [U, L], (docid, depth) opens a node not shared with the previous docid
    per_depth = np.cumsum(new, axis=0, dtype=np.int32)  # [U, L]
    counts_per_depth = per_depth[-1].astype(np.int64)  # [L], nodes at each depth
    offsets = 1 + np.concatenate([[0], np.cumsum(counts_per_depth)[:-1]])  # first id per depth (root = 0)
    num_nodes = int(1 + counts_per_depth.sum())
    if num_nodes >= np.iinfo(np.int32).max:
        raise ValueError(f"{num_nodes} trie nodes do not fit int32 ids")
    node_of = (per_depth + (offsets - 1).astype(np.int32)[None, :])  # [U, L] node id (valid where `real`)
    del per_depth

    parent_of = np.concatenate([np.zeros((num_docids, 1), np.int32), node_of[:, :-1]], axis=1)  # [U, L]
    new_nodes = node_of[new]  # each node id exactly once
    node_token = np.full(num_nodes, -1, np.int32)
    parent = np.full(num_nodes, -1, np.int32)
    node_token[new_nodes] = uniq[new]
    parent[new_nodes] = parent_of[new]
    del parent_of, new_nodes

    count = np.bincount(node_of[real], minlength=num_nodes).astype(np.int32)
    count[0] = num_docids
    docid_leaf = node_of[np.arange(num_docids), uniq_len - 1].astype(np.int32)  # [U]
    node_docid = np.full(num_nodes, -1, np.int32)
    node_docid[docid_leaf] = np.arange(num_docids, dtype=np.int32)
    del node_of, real, new

    fanout = np.bincount(parent[1:], minlength=num_nodes)  # [N]
    child_start = np.concatenate([[1], 1 + np.cumsum(fanout)]).astype(np.int32)  # [N + 1]

    wide = np.flatnonzero(fanout > width)  # the few high-fan-out nodes get a vocabulary bitmask
    bitmask_row = np.full(num_nodes, -1, np.int32)
    bitmask_row[wide] = np.arange(wide.size, dtype=np.int32)
    words = (vocab_size + 31) // 32
    bitmask = np.zeros((wide.size, words), np.uint32)
    if wide.size:
        row_of_child = np.repeat(np.arange(wide.size), fanout[wide])  # [children of wide nodes]
        child = _ranges(child_start[wide], child_start[wide + 1])
        tok = node_token[child].astype(np.int64)
        np.bitwise_or.at(bitmask, (row_of_child, tok // 32), (np.uint32(1) << (tok % 32).astype(np.uint32)))

    return TrieHost(node_token=node_token, child_start=child_start, count=count, node_docid=node_docid,
                    parent=parent, bitmask_row=bitmask_row, bitmask=bitmask, docid_leaf=docid_leaf,
                    doc_indptr=doc_indptr, doc_ids=order.astype(np.int64), vocab_size=int(vocab_size),
                    width=int(width), max_depth=int(uniq_len.max()), eos_id=int(eos_id))


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, stop) for each pair, vectorized."""
    sizes = stops - starts
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return base + np.arange(sizes.sum())


def expand_to_documents(trie: TrieHost, docids: np.ndarray, scores: np.ndarray | None = None
                        ) -> list[list[tuple[int, int, float]]]:
    """Per query, (document index, docid rank, score) in rank order; a docid shared by several documents yields
    all of them, consecutively, with the same rank and score. -1 padding is skipped."""
    docids = np.asarray(docids)
    scores = np.zeros(docids.shape, np.float32) if scores is None else np.asarray(scores)
    out = []
    for row, row_scores in zip(docids, scores):
        ranked = []
        for rank, (u, s) in enumerate(zip(row, row_scores)):
            if u < 0:
                continue
            ranked.extend((int(d), rank, float(s)) for d in trie.documents(int(u)))
        out.append(ranked)
    return out


def npz_content_sha256(path: str | os.PathLike) -> str:
    """Hash of the arrays in an .npz (names, dtypes, shapes, bytes): zip timestamps make file bytes vary."""
    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as z:
        for name in sorted(z.files):
            a = z[name]
            h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
