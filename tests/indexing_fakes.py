"""Deterministic stand-ins for the LM used by the indexing tests, and a tiny synthetic corpus.

`FakeGenerator.chat` follows `zerogr_jax.indexing.generator_protocol.TextGenerator`: every completion is a pure
function of (the conversation's last user turn, seed, sample index), so a wrong seed derivation or a changed batch
composition shows up as different output, exactly as with the real sampler.
"""

from __future__ import annotations

import hashlib
import random

from zerogr_jax.data.beir import Document

VOCAB = ("protein cell receptor kinase pathway tumor growth signal membrane enzyme gene expression mouse model "
         "vaccine trial dose patient cohort infection virus antibody neuron synapse cortex memory sleep diet "
         "insulin glucose obesity liver heart artery pressure lung asthma allergy bone fracture muscle").split()


def _rng(*parts) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).digest())


def _document_words(user_turn: str) -> list[str]:
    body = user_turn.split("Document:\n", 1)[-1]
    return [w.strip(".,;:()").lower() for w in body.split() if w.strip(".,;:()").isalpha()]


class FakeGenerator:
    """Keyword completions mix document words with rule violations; query completions mix on-topic queries with
    meta-questions, off-topic drift, blanks and repeats."""

    def __init__(self):
        self.calls: list[dict] = []

    def chat(self, conversations, *, assistant_prefix, max_new_tokens, temperature, num_samples, seed, top_p=1.0,
             repetition_penalty=1.0, stop=()):
        self.calls.append(dict(n=len(conversations), assistant_prefix=assistant_prefix,
                               max_new_tokens=max_new_tokens, temperature=temperature, num_samples=num_samples,
                               seed=seed, top_p=top_p, repetition_penalty=repetition_penalty, stop=tuple(stop),
                               conversations=conversations))
        out = []
        for conv in conversations:
            user = conv[-1]["content"]
            words = _document_words(user) or ["nothing"]
            if assistant_prefix == "Keywords:":
                r = _rng(seed, user)
                picked = [r.choice(words) for _ in range(5)]
                out.append([" " + ", ".join(["The", picked[0], "is", picked[0], "zzyzx", *picked[1:]])])
            else:
                samples = []
                for j in range(num_samples):
                    r = _rng(seed, user, j)
                    kind = r.random()
                    if kind < 0.55:
                        q = " ".join(r.choice(words) for _ in range(r.randint(2, 5)))
                    elif kind < 0.65:
                        q = "What is the purpose of this passage?"
                    elif kind < 0.8:
                        q = "quantum chromodynamics lattice gauge"
                    elif kind < 0.88:
                        q = ""
                    else:
                        q = " ".join(words[:3])  # likely a duplicate across samples
                    samples.append(f" {q}\nExplanation: ignored second line" if q else "")
                out.append(samples)
        return out


def synthetic_documents(n: int = 23, seed: int = 0) -> list[Document]:
    """Random short abstracts, plus an identical pair and a near-duplicate pair (collision material)."""
    r = random.Random(seed)
    docs = []
    for i in range(n):
        title = " ".join(r.choice(VOCAB) for _ in range(r.randint(0, 4))).capitalize()
        text = " ".join(r.choice(VOCAB + ["the", "of", "is", "a"]) for _ in range(r.randint(8, 40))) + "."
        docs.append(Document(f"d{i}", title, text))
    if n >= 6:
        docs[4] = Document("d4", docs[1].title, docs[1].text)  # identical to d1
        docs[5] = Document("d5", docs[2].title, docs[2].text + " sleep")  # near-duplicate of d2
    return docs
