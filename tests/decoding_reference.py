"""Plain-Python reference of trie-constrained iterative decoding (the procedure of ZeroGR's public code).

One query at a time, one docid at a time, one token at a time: a nested-dict trie, copied per query, from which
each produced docid is deleted (empty branches pruned); the model is called on the whole sequence so far, without
any cache. It follows the PRNG stream documented in `decoding.py`, so the compiled decoder must reproduce its
docids exactly. Slow by design: a test oracle, kept under tests/.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.reference_trie import dict_trie, remove_path

LogitsFn = Callable[[list[int]], np.ndarray]  # whole token sequence (prompt + docid prefix) -> next logits [V]


@jax.jit
def _draw(key_b, i, j, masked, t):
    """One categorical draw on the documented stream (jit only to avoid op-by-op dispatch; same numbers)."""
    return jax.random.categorical(jax.random.fold_in(jax.random.fold_in(key_b, i), j), masked / t)


_log_softmax = jax.jit(jax.nn.log_softmax)


def reference_iterative_topk(logits_fn: LogitsFn, prompts: Sequence[Sequence[int]],
                             docids: Sequence[Sequence[int]], num_docids: int, rng: jax.Array,
                             temperatures: Sequence[float], vocab_size: int, eos_id: int,
                             ) -> tuple[list[list[tuple[int, ...]]], list[list[float]]]:
    """Per query, up to K docids (token tuples, EOS included) in iteration order, and their constrained
    log-probabilities at temperature 1. Query b uses key fold_in(rng, b); token j of iteration i draws with
    fold_in(fold_in(key_b, i), j)."""
    temperatures = np.asarray(temperatures, np.float32)
    out_docids, out_logprobs = [], []
    for b, prompt in enumerate(prompts):
        key_b = jax.random.fold_in(rng, b)
        trie = dict_trie(docids)
        found, logprobs = [], []
        for i in range(num_docids):
            if not trie:
                break
            node, prefix, logprob = trie, [], 0.0
            while True:
                j = len(prefix)
                logits = np.asarray(logits_fn(list(prompt) + prefix), np.float32)
                allowed = np.asarray(sorted(node), np.int64)
                masked = np.full((vocab_size,), -np.inf, np.float32)
                masked[allowed] = logits[allowed]
                masked = jnp.asarray(masked)
                t = temperatures[i]
                token = int(np.argmax(masked)) if t == 0 else int(_draw(key_b, i, j, masked, t))
                logprob += float(_log_softmax(masked)[token])
                prefix.append(token)
                node = node[token]
                if token == eos_id:
                    break
            found.append(tuple(prefix))
            logprobs.append(logprob)
            remove_path(trie, prefix)
        out_docids.append(found)
        out_logprobs.append(logprobs)
    return out_docids, out_logprobs


def exact_docid_logprobs(logits_fn: LogitsFn, prompt: Sequence[int], docids: Sequence[Sequence[int]],
                         vocab_size: int) -> dict[tuple[int, ...], float]:
    """Constrained log-probability (no removal) of every docid, by walking the dict trie: the ranking beam search
    must reproduce when it has at least as many beams as there are docids."""
    trie = dict_trie(docids)
    out = {}

    def walk(node, prefix, logprob):
        if not node:
            out[tuple(prefix)] = logprob
            return
        logits = np.asarray(logits_fn(list(prompt) + prefix), np.float32)
        allowed = np.asarray(sorted(node))
        masked = np.full(vocab_size, -np.inf, np.float32)
        masked[allowed] = logits[allowed]
        logp = np.asarray(_log_softmax(jnp.asarray(masked)))
        for t in allowed:
            walk(node[int(t)], prefix + [int(t)], logprob + float(logp[t]))

    walk(trie, [], 0.0)
    return out
