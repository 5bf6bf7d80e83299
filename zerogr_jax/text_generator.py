"""Text in, text out, over the compiled generation loop: the `TextGenerator` that indexing uses.

Prompts are bucketed (batch padded to `batch_size`, prompt length rounded up to `length_multiple`) so a whole
corpus runs through a handful of compiled programs. The token prefix that every prompt of a call shares (a few-shot
chat prompt's system turn, worked examples and instruction: ~300 of the pseudo-query prompt's ~480 tokens) is run
once per call instead of once per row, cut to a multiple of `length_multiple` for the same reason.
Stop strings (vLLM's `stop`): a row ends at the first token whose text holds one, and its text is cut there.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from typing import Sequence

import jax
import numpy as np

from zerogr_jax import generation
from zerogr_jax import sharding as shd
from zerogr_jax import tokenization
from zerogr_jax.models.loading import Model


def generate_tokens(model: Model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, seed: int = 0,
                    temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0,
                    batch_size: int | None = None, length_multiple: int = 32, hook=None,
                    num_samples: int = 1, stop_ids: Sequence[int] = (), share_prefix: bool = True) -> list[list[int]]:
    """Generates for token-id prompts; returns each row's new tokens up to (excluding) its EOS.

    With `num_samples` > 1, returns `num_samples` consecutive rows per prompt (the prompt is prefilled once).
    `batch_size` counts prompts. A token of `stop_ids` ends a row (unless it is the row's first) and is kept.
    `share_prefix`: run the prompts' common prefix once per call (`generation.prefill_shared`).
    """
    pad = tokenization.pad_id_of(model.tokenizer)
    eos = model.eos_ids
    data_size = 1 if model.mesh is None else model.mesh.shape["data"] * model.mesh.shape["fsdp"]
    batch_size = batch_size or max(len(prompts), 1)
    batch_size = math.ceil(batch_size / data_size) * data_size
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        real = len(chunk)
        chunk += [chunk[-1]] * (batch_size - real)  # fill the bucket; extra rows are dropped below
        p0 = shared_prefix_length(chunk, length_multiple) if share_prefix else 0
        tokens, mask = tokenization.left_pad([c[p0:] for c in chunk], pad, multiple_of=length_multiple)
        sampling = generation.SamplingParams.make(batch_size * num_samples, temperature, top_p, top_k,
                                                  repetition_penalty)
        rng = jax.random.fold_in(jax.random.key(seed), start)
        if model.mesh is not None:
            tokens, mask = (jax.device_put(a, shd.batch_sharding(model.mesh, 2)) for a in (tokens, mask))
        fn = _compiled(model, max_new_tokens, eos, pad, hook, num_samples, tuple(stop_ids), p0 > 0)
        args = (model.params, tokens, mask, rng, sampling) + ((np.asarray(chunk[0][:p0], np.int32),) if p0 else ())
        result = jax.device_get(fn(*args))
        for row, length in zip(result.tokens[:real * num_samples], result.lengths[:real * num_samples]):
            ids = [int(t) for t in row[:length]]
            out.append(ids[:-1] if ids and ids[-1] in eos else ids)
    return out


def shared_prefix_length(prompts: Sequence[Sequence[int]], multiple: int) -> int:
    """Length of the prompts' common token prefix, cut down to a multiple of `multiple` (few compiled shapes) and
    short of every prompt's end (each row keeps >= 1 token of its own, whose logits start the generation)."""
    if not prompts:
        return 0
    shortest = min(len(p) for p in prompts)
    first, n = prompts[0], 0
    while n < shortest - 1 and all(p[n] == first[n] for p in prompts):
        n += 1
    return n // multiple * multiple


def stop_token_ids(tokenizer, stop: Sequence[str]) -> tuple[int, ...]:
    """Every vocabulary id whose text contains one of the `stop` strings (BPE merges put "\n" inside "\n\n",
    " \n", ...)."""
    if not stop:
        return ()
    def build():
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        return tuple(i for i, t in enumerate(texts) if any(s in t for s in stop))

    return cached_per_object(_STOP_IDS, tokenizer, (tuple(stop),), build)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to its first stop string that follows some other text (a leading line break does not end it)."""
    lead = len(text) - len(text.lstrip())
    cuts = [i for i in (text.find(s, lead) for s in stop) if i >= 0]
    return text[:min(cuts)] if cuts else text


_COMPILED: dict = {}
_STOP_IDS: dict = {}


def cached_per_object(cache: dict, owner, key: tuple, build):
    """`cache[(id(owner), *key)]`, built on first use and dropped when `owner` is freed (a later object at the same
    address must not find the entry)."""
    full = (id(owner), *key)
    if full not in cache:
        cache[full] = build()
        try:
            weakref.finalize(owner, cache.pop, full, None)
        except TypeError:  # an owner without weak references (__slots__) keeps its entry for the process
            pass
    return cache[full]


def _compiled(model: Model, max_new_tokens: int, eos, pad, hook, num_samples: int, stop_ids: tuple[int, ...],
              with_prefix: bool):
    key = (model.cfg, max_new_tokens, eos, pad, hook, num_samples, stop_ids, with_prefix)
    return cached_per_object(_COMPILED, model, key, lambda: generation.compile_generate(
        model.cfg, max_new_tokens=max_new_tokens, eos_ids=eos, pad_id=pad, mesh=model.mesh,
        param_shardings=model.param_shardings, hook=hook, num_samples=num_samples, stop_ids=stop_ids,
        with_prefix=with_prefix))


def chat(model: Model, conversations: Sequence[Sequence[dict]], *, max_new_tokens: int = 64,
         assistant_prefix: str = "", temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
         repetition_penalty: float = 1.0, seed: int = 0, max_prompt_tokens: int = 1024,
         batch_size: int | None = None, num_samples: int = 1, stop: Sequence[str] = ()) -> list[str]:
    """`num_samples` completions per conversation, consecutive (text after `assistant_prefix`), each ended at the
    first of the `stop` strings that follows some text (the stop string not included)."""
    prompts = [tokenization.encode(model.tokenizer, tokenization.chat_prompt(model.tokenizer, c, assistant_prefix),
                                   max_prompt_tokens, keep="right") for c in conversations]
    ids = generate_tokens(model, prompts, max_new_tokens=max_new_tokens, seed=seed, temperature=temperature,
                          top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, batch_size=batch_size,
                          num_samples=num_samples, stop_ids=stop_token_ids(model.tokenizer, stop))
    return [cut_at_stop(model.tokenizer.decode(x, skip_special_tokens=True), stop) for x in ids]


@dataclasses.dataclass
class JaxTextGenerator:
    """`zerogr_jax.indexing.generator_protocol.TextGenerator` over a loaded JAX model."""

    model: Model
    batch_size: int = 32
    # 512 cut the system turn off 57 % of scifact's pseudo-query prompts (an over-long prompt keeps its end)
    max_prompt_tokens: int = 1024

    def chat(self, conversations: Sequence[Sequence[dict]], *, assistant_prefix: str = "", max_new_tokens: int = 64,
             temperature: float = 0.0, num_samples: int = 1, seed: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0, stop: Sequence[str] = ()) -> list[list[str]]:
        texts = chat(self.model, conversations, max_new_tokens=max_new_tokens, assistant_prefix=assistant_prefix,
                     temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                     max_prompt_tokens=self.max_prompt_tokens, num_samples=num_samples,
                     batch_size=max(1, self.batch_size // num_samples), stop=stop)
        return [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(conversations))]


