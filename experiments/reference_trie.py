"""The nested-dict trie of ZeroGR's public decoding procedure: built per query, each produced docid deleted from it
(empty branches pruned). Used by the torch reference decoder (`reference_decode_torch.py`, the benchmark's other
side) and by the plain-Python oracle of the compiled decoder (`tests/decoding_reference.py`)."""

from __future__ import annotations

from typing import Sequence


def dict_trie(docids: Sequence[Sequence[int]]) -> dict:
    root: dict = {}
    for seq in docids:
        node = root
        for t in seq:
            node = node.setdefault(int(t), {})
    return root


def remove_path(trie: dict, seq: Sequence[int]) -> None:
    """Deletes a complete docid and prunes the branches it leaves empty."""
    stack, node = [], trie
    for t in seq:
        stack.append((node, t))
        node = node[t]
    for parent, t in reversed(stack):
        if parent[t]:
            break
        del parent[t]
