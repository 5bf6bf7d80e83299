"""paper-1b: the paper's retriever recipe at Llama-3.2-1B scale (for an accelerator host; not run on the CPU machine).

    zerogr train --config experiments/configs/paper_1b.py --index INDEX [--index ...] --workdir DIR \
        --set model.name=/path/to/Llama-3.2-1B-Instruct

ZeroGR (arXiv 2510.10419) trains the retriever with AdamW, lr 5e-5, constant after warm-up, 5 epochs, gradient
clipping 1.0, on the pseudo-queries of every indexed corpus (optionally mixed with other tasks: repeat --index and
set data.weights). Here: bf16 compute with f32 master weights, the full model trained, the full-vocabulary head, and
parameters sharded FSDP-style over all devices of the host (`mesh.fsdp=-1`). The weights are not shipped: point
`model.name` at a local HF Llama directory (safetensors) of the same shape as `LLAMA_3_2_1B` below.
"""

from zerogr_jax.training.pairs import PairsConfig
from zerogr_jax.models.llama import LlamaConfig
from zerogr_jax.sharding import MeshConfig
from zerogr_jax.training.step import ExperimentConfig, ModelConfig, TrainConfig

# The shape of meta-llama/Llama-3.2-1B(-Instruct), from its config.json; used to check the config without weights.
LLAMA_3_2_1B = LlamaConfig(
    vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_layers=16, num_heads=32, num_kv_heads=8,
    head_dim=64, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, max_position_embeddings=131072,
    bos_token_id=128000, eos_token_ids=(128001, 128008, 128009), rope_scaling=(32.0, 1.0, 4.0, 8192),
    dtype="bfloat16")


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        model=ModelConfig(name="models/Llama-3.2-1B-Instruct", num_layers=0, docid_head=False),
        mesh=MeshConfig(data=1, fsdp=-1, tensor=1),
        data=PairsConfig(instruction_max_tokens=64, query_max_tokens=64, heldout_fraction=0.01, heldout_max=512),
        train=TrainConfig(
            lr=5e-5, warmup_steps=500, schedule="constant", epochs=5.0, batch_size=128, grad_accum_steps=1,
            grad_clip=1.0, weight_decay=0.0, seed=0, dtype="bfloat16", trainable="all",
            checkpoint_every=1000, keep_checkpoints=3, eval_every=2000, eval_max_examples=1024, log_every=50),
    )
