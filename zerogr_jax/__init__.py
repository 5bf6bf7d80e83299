"""zerogr-jax: ZeroGR zero-shot generative retrieval in JAX/Flax.

The public surface (everything else is importable from its module):

    import zerogr_jax as zg
    model = zg.load_model("smollm2-135m-instruct")          # or a .gguf file / HF Llama directory
    texts = zg.chat(model, [[{"role": "user", "content": "Name three planets."}]], max_new_tokens=32)
    hits = zg.Retriever.load("runs/demo_med").search(["glucose levels in pregnancy"], k=10)[0]   # a trained workdir
"""

import os

# Nothing this package loads may come from the network: tokenizers and weights are read from local files (the
# embedded GGUF, a model directory). Set before any submodule imports transformers; a user's own setting wins.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from zerogr_jax.models.llama import LlamaConfig  # noqa: E402
from zerogr_jax.models.loading import Model, load_model  # noqa: E402
from zerogr_jax.retrieval.retriever import Hit, Retriever  # noqa: E402
from zerogr_jax.sharding import MeshConfig, make_mesh  # noqa: E402
from zerogr_jax.text_generator import JaxTextGenerator, chat, generate_tokens  # noqa: E402

__all__ = ["LlamaConfig", "Model", "load_model", "MeshConfig", "make_mesh", "JaxTextGenerator", "chat",
           "generate_tokens", "Retriever", "Hit"]
__version__ = "0.1.0"
