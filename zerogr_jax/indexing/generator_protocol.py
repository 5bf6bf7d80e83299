"""The text-generation interface indexing is written against (docs/CONTRACTS.md).

`zerogr_jax.text_generator.JaxTextGenerator` implements it over the compiled JAX sampling loop; tests use fakes.
Indexing relies on one property beyond the signature: a call is a pure function of its arguments (same
conversations, settings and `seed` -> same completions), which is what makes a resumed index byte-identical to an
uninterrupted one.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class TextGenerator(Protocol):
    def chat(self, conversations: list[list[dict]], *, assistant_prefix: str, max_new_tokens: int,
             temperature: float, num_samples: int, seed: int, top_p: float = 1.0,
             repetition_penalty: float = 1.0, stop: Sequence[str] = ()) -> list[list[str]]:
        """For each conversation (a list of {"role", "content"} messages ending in a user turn), `num_samples`
        completions of an assistant turn that starts with `assistant_prefix`: the text after the prefix, EOS
        stripped, ended before the first `stop` string that follows some text. temperature 0 = greedy."""
        ...
