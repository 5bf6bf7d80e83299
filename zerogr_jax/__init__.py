"""zerogr-jax: ZeroGR zero-shot generative retrieval in JAX/Flax.

The public surface (everything else is importable from its module):

    import zerogr_jax as zg
    model = zg.load_model("smollm2-135m-instruct")          # or a .gguf file / HF Llama directory
    texts = zg.chat(model, [[{"role": "user", "content": "Name three planets."}]], max_new_tokens=32)
    hits = zg.Retriever.load("runs/demo_med").search(["glucose levels in pregnancy"], k=10)[0]   # a trained workdir
"""

from zerogr_jax.models.llama import LlamaConfig
from zerogr_jax.models.loading import Model, load_model
from zerogr_jax.retriever import Hit, Retriever
from zerogr_jax.sharding import MeshConfig, make_mesh
from zerogr_jax.text_generator import JaxTextGenerator, chat, generate_tokens

__all__ = ["LlamaConfig", "Model", "load_model", "MeshConfig", "make_mesh", "JaxTextGenerator", "chat",
           "generate_tokens", "Retriever", "Hit"]
__version__ = "0.1.0"
