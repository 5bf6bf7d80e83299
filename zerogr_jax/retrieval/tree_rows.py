"""Docid paths packed into fixed-width rows as prefix trees: each trie node the paths of a row pass through is fed
once, and each slot attends to its own ancestors only (tree attention), so a row holds the union of several docids.

Why: scoring one docid per row (`docid_scoring._score_rows`) feeds a prefix that k docids share k times, and pads
every row to its length bucket. Docids sorted by path share their first tokens with their neighbours, so a row of
neighbours feeds each shared node once and wastes only its tail; the last token of a docid is always EOS (the trie
guarantees it), and its log-probability is read off the distribution at its parent's slot (a row's `reads`), so
leaves need no slot of their own unless the slot's hidden state is wanted (the rerank head reads it after EOS:
`feed_leaves`). A path need not end at a leaf: a docid's first tokens alone carry its constrained score
(`docid_scoring.informative_nodes`), and the last node of any path is read the same way. Slot i's
position is the prompt's next position plus its depth, and it sees the prompt and the slots of its ancestors: the
same inputs as in its own row, so the scores are those of `_score_rows` up to float rounding.

Shapes: N paths of at most L nodes (`docid_scoring.docid_paths`), R rows of W slots and M reads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zerogr_jax.retrieval.trie import TrieHost


@dataclasses.dataclass(frozen=True)
class TreeRows:
    """Paths packed as prefix trees (`pack`); empty slots have token -1 and see only themselves."""

    tokens: np.ndarray  # [R, W] int32, each slot's token; -1 = an empty slot
    depth: np.ndarray  # [R, W] int32, the slot's depth (0 = a docid's first token): its offset after the prompt
    node: np.ndarray  # [R, W] int32, the slot's trie node (the root for an empty slot)
    parent_slot: np.ndarray  # [R, W] int32, the parent's slot in the same row; -1 = the root (the prompt)
    visible: np.ndarray  # [R, W, W] bool, slot i attends to slot j: j is i or one of its ancestors
    row: np.ndarray  # [N] int32, each path's row
    slots: np.ndarray  # [N, L] int32, the slots of each path's fed nodes, root side first; -1 after
    read_slot: np.ndarray  # [R, M] int32, the slot after which a path's last token is read; -1 = after the prompt
    read_token: np.ndarray  # [R, M] int32, that token; -1 = no read
    read: np.ndarray  # [N] int32, each path's read in its row; -1 where its last node is fed

    @property
    def num_slots(self) -> int:
        return int((self.tokens >= 0).sum())


def pack(trie: TrieHost, nodes: np.ndarray, width: int, *, feed_leaves: bool = False,
         reads: int | None = None) -> TreeRows:
    """Root paths `nodes` [N, L] (trie nodes, root side first, -1 after the path; whole docids, or their first
    nodes) into rows of `width` slots and at most `reads` reads (default 4 x width: a row of short paths reads
    several last tokens per slot). The paths go in lexicographic order of their nodes, so those that share a prefix
    are neighbours; a row takes paths while their new nodes and reads fit, so no path is split. A path's last node
    gets a slot of its own with `feed_leaves`; else its token is read at its parent's slot (or after the prompt)."""
    nodes = np.asarray(nodes)
    n, depth_max = nodes.shape
    reads = 4 * width if reads is None else reads
    lengths = (nodes >= 0).sum(1)
    if n and lengths.min() < 1:
        raise ValueError("every path needs at least one node")
    need = int(lengths.max(initial=1)) - (not feed_leaves)
    if width < max(need, 1):
        raise ValueError(f"rows of {width} slots cannot hold a path of {need} fed nodes")
    order = np.lexsort(tuple(nodes[:, j] for j in range(depth_max - 1, -1, -1)))
    row_of = np.zeros(n, np.int32)
    slots = np.full((n, depth_max), -1, np.int32)
    read = np.full(n, -1, np.int32)
    rows: list[list[int]] = []  # per row, the node of each slot
    row_reads: list[dict[tuple[int, int], int]] = []  # per row, (slot, token) -> its read
    where: dict[int, int] = {}  # node -> slot, in the row being filled
    for i in order:
        path = nodes[i, :lengths[i]]
        fed = path if feed_leaves else path[:-1]
        new = [int(x) for x in fed if int(x) not in where]
        if not rows or len(rows[-1]) + len(new) > width or len(row_reads[-1]) + (not feed_leaves) > reads:
            rows.append([])
            row_reads.append({})
            where = {}
            new = [int(x) for x in fed]
        for x in new:
            where[x] = len(rows[-1])
            rows[-1].append(x)
        row_of[i] = len(rows) - 1
        slots[i, :len(fed)] = [where[int(x)] for x in fed]
        if not feed_leaves:
            key = (where[int(path[-2])] if len(path) > 1 else -1, int(trie.node_token[path[-1]]))
            read[i] = row_reads[-1].setdefault(key, len(row_reads[-1]))
    r = max(len(rows), 1)
    node = np.zeros((r, width), np.int32)
    filled = np.zeros((r, width), bool)
    parent_slot = np.full((r, width), -1, np.int32)
    read_slot = np.full((r, reads if not feed_leaves else 1), -1, np.int32)
    read_token = np.full_like(read_slot, -1)
    for j, members in enumerate(rows):
        node[j, :len(members)] = members
        filled[j, :len(members)] = True
        # a slot's parent is in its row (every path brings its whole prefix), found by looking the parent node up
        index = {x: s for s, x in enumerate(members)}
        parent_slot[j, :len(members)] = [index.get(int(trie.parent[x]), -1) for x in members]
        for (slot, token), m in row_reads[j].items():
            read_slot[j, m], read_token[j, m] = slot, token
    visible = np.zeros((r, width, width), bool)
    rr, ss = np.meshgrid(np.arange(r), np.arange(width), indexing="ij")
    up = np.where(filled, ss, -1)  # walk each slot up its ancestors, marking each one
    for _ in range(depth_max + 1):
        ok = up >= 0
        visible[rr[ok], ss[ok], up[ok]] = True
        up = np.where(ok, parent_slot[rr, np.maximum(up, 0)], -1)
    visible[:, np.arange(width), np.arange(width)] = True  # an empty slot sees itself (never an empty softmax)
    depth = (visible.sum(-1) - 1).astype(np.int32)  # the number of ancestors in the row (0 for an empty slot)
    tokens = np.where(filled, trie.node_token[node], -1).astype(np.int32)
    return TreeRows(tokens=tokens, depth=depth, node=node, parent_slot=parent_slot, visible=visible, row=row_of,
                    slots=slots, read_slot=read_slot, read_token=read_token, read=read)


def path_sums(rows: TreeRows, token_logp: np.ndarray, read_logp: np.ndarray) -> np.ndarray:
    """[N] float32: each path's log-probability from the log-probability of each slot's token at its parent
    (`token_logp` [R, W]) over the path's fed nodes, plus that of its last token where it is read (`read_logp`
    [R, M], values of the rows' reads)."""
    real = rows.slots >= 0
    got = np.where(real, token_logp[rows.row[:, None], np.maximum(rows.slots, 0)], 0.0).sum(1)
    last = np.where(rows.read >= 0, read_logp[rows.row, np.maximum(rows.read, 0)], 0.0)
    return (got + last).astype(np.float32)
