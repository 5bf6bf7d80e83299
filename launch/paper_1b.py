"""Paper-scale retriever training (launch/README.md): a Llama-3.2-1B-shaped model, all parameters trained, on many
indexed collections (one `--index` per collection; balance them with `--set data.weights=...`).

    zerogr train --config launch/paper_1b.py --index IDX1 --index IDX2 ... --workdir DIR \
        --set model.name=/path/to/Llama-3.2-1B --set mesh.data=8 --set mesh.fsdp=8

Optimizer as in the paper (AdamW, lr 5e-5, constant after warm-up, 5 epochs, clip 1.0); the global batch of 256
sequences is our choice. The mesh must multiply to the device count: v5e-64 -> data 8 x fsdp 8; 2 x 8 H100 ->
data 2 x fsdp 8 (see the memory table in launch/README.md).
"""

from zerogr_jax.training.pairs import PairsConfig
from zerogr_jax.sharding import MeshConfig
from zerogr_jax.training.step import ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        model=ModelConfig(name="Llama-3.2-1B"),  # an HF Llama directory: override with --set model.name=PATH
        mesh=MeshConfig(data=-1, fsdp=8, tensor=1),
        data=PairsConfig(instruction_max_tokens=64, query_max_tokens=64, heldout_max=256),
        train=TrainConfig(lr=5e-5, warmup_steps=1000, schedule="constant", epochs=5.0, batch_size=256,
                          grad_accum_steps=1, grad_clip=1.0, dtype="bfloat16", trainable="all",
                          checkpoint_every=2000, keep_checkpoints=3, eval_every=5000, log_every=50),
    )
