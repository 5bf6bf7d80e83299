"""Text in, text out, over the compiled generation loop: the `TextGenerator` that indexing uses.

Prompts are bucketed (batch padded to `batch_size`, prompt length rounded up to `length_multiple`) so a whole
corpus runs through a handful of compiled programs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax

from zerogr_jax import generation
from zerogr_jax import sharding as shd
from zerogr_jax import tokenization
from zerogr_jax.models.loading import Model


def generate_tokens(model: Model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, seed: int = 0,
                    temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0,
                    batch_size: int | None = None, length_multiple: int = 32, hook=None,
                    num_samples: int = 1) -> list[list[int]]:
    """Generates for token-id prompts; returns each row's new tokens up to (excluding) its EOS.

    With `num_samples` > 1, returns `num_samples` consecutive rows per prompt (the prompt is prefilled once).
    `batch_size` counts prompts.
    """
    pad = tokenization.pad_id_of(model.tokenizer)
    eos = model.eos_ids
    data_size = 1 if model.mesh is None else model.mesh.shape["data"] * model.mesh.shape["fsdp"]
    batch_size = batch_size or max(len(prompts), 1)
    batch_size = math.ceil(batch_size / data_size) * data_size
    fn = _compiled(model, max_new_tokens, eos, pad, hook, num_samples)
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        real = len(chunk)
        chunk += [chunk[-1]] * (batch_size - real)  # fill the bucket; extra rows are dropped below
        tokens, mask = tokenization.left_pad(chunk, pad, multiple_of=length_multiple)
        sampling = generation.SamplingParams.make(batch_size * num_samples, temperature, top_p, top_k,
                                                  repetition_penalty)
        rng = jax.random.fold_in(jax.random.key(seed), start)
        if model.mesh is not None:
            tokens, mask = (jax.device_put(a, shd.batch_sharding(model.mesh, 2)) for a in (tokens, mask))
        result = jax.device_get(fn(model.params, tokens, mask, rng, sampling))
        for row, length in zip(result.tokens[:real * num_samples], result.lengths[:real * num_samples]):
            ids = [int(t) for t in row[:length]]
            out.append(ids[:-1] if ids and ids[-1] in eos else ids)
    return out


_COMPILED: dict = {}


def _compiled(model: Model, max_new_tokens: int, eos, pad, hook, num_samples: int):
    key = (id(model), model.cfg, max_new_tokens, eos, pad, hook, num_samples)
    if key not in _COMPILED:
        _COMPILED[key] = generation.compile_generate(
            model.cfg, max_new_tokens=max_new_tokens, eos_ids=eos, pad_id=pad, mesh=model.mesh,
            param_shardings=model.param_shardings, hook=hook, num_samples=num_samples)
    return _COMPILED[key]


def chat(model: Model, conversations: Sequence[Sequence[dict]], *, max_new_tokens: int = 64,
         assistant_prefix: str = "", temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
         repetition_penalty: float = 1.0, seed: int = 0, max_prompt_tokens: int = 1024,
         batch_size: int | None = None, num_samples: int = 1) -> list[str]:
    """`num_samples` completions per conversation, consecutive (text after `assistant_prefix`)."""
    prompts = [tokenization.encode(model.tokenizer, tokenization.chat_prompt(model.tokenizer, c, assistant_prefix),
                                   max_prompt_tokens, keep="right") for c in conversations]
    ids = generate_tokens(model, prompts, max_new_tokens=max_new_tokens, seed=seed, temperature=temperature,
                          top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, batch_size=batch_size,
                          num_samples=num_samples)
    return [model.tokenizer.decode(x, skip_special_tokens=True) for x in ids]


@dataclasses.dataclass
class JaxTextGenerator:
    """`zerogr_jax.indexing.generator_protocol.TextGenerator` over a loaded JAX model."""

    model: Model
    batch_size: int = 32
    max_prompt_tokens: int = 512

    def chat(self, conversations: Sequence[Sequence[dict]], *, assistant_prefix: str = "", max_new_tokens: int = 64,
             temperature: float = 0.0, num_samples: int = 1, seed: int = 0, top_p: float = 1.0,
             repetition_penalty: float = 1.0) -> list[list[str]]:
        texts = chat(self.model, conversations, max_new_tokens=max_new_tokens, assistant_prefix=assistant_prefix,
                     temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                     max_prompt_tokens=self.max_prompt_tokens, num_samples=num_samples,
                     batch_size=max(1, self.batch_size // num_samples))
        return [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(conversations))]


