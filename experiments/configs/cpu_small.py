"""cpu-small: a retriever whose training epoch takes minutes on a 2-core CPU (the embedded SmolLM2-135M, cut down).

    zerogr train --config experiments/configs/cpu_small.py --index runs/cranfield/index --workdir runs/cranfield/train

Three cuts, each a lever on the per-token cost:

1. `model.num_layers=8`: only the first 8 of SmolLM2's 30 decoder layers are kept (and exported: search runs the
   8-layer model too).
2. `train.trainable="top_layers:4"`: layers 4..7 and the final norm are trained; the embedding and layers 0..3 are
   frozen (no backward pass through them, no optimizer state for them).
3. `model.docid_head=True`: the LM head and its softmax cover only the tokens that occur in some docid (plus EOS),
   a few thousand rows of the 49K-row tied embedding, and only at the docid label positions.

Two more cut the work without changing the result: `train.share_prefix` (each collection's chat template + instruction
prefix, 42 of ~86 tokens per cranfield example, is computed once per step and reached through the KV cache; same
loss) and `train.length_buckets=3` (batches of similar-length rows cut to one of 3 widths; 2 extra compiles).

Measured on the 2-core CPU dev machine (shared with other jobs): `python experiments/bench_train.py` (batch 8 x 64
random tokens) gives this step 413 tokens/s against 60 for the full model's causal-LM step at load ~1.4 (6.9x;
experiments/results/bench_train.json), and 101 against 11.9 at load ~6 (bench_train_busy.json). On a
cranfield index (1,398 docs, tf-idf docids, 2 stand-in pseudo-queries + 1 document-as-query each; 4,133 training
examples, batch 16), with shared prefixes and buckets: 7-9 examples/s (640-700 tokens/s) at load ~1.5, i.e. about
8 minutes per epoch; 2-2.8 examples/s at load ~6. lr 1e-3 beat 3e-4 there (held-out loss 5.57 vs 6.59 at step 100).

Quality, measured honestly (experiments/results/cpu_small_cranfield_trial.json): those 2 epochs (516 steps, 19 min at
load ~2) reach 69% teacher-forced token accuracy on held-out queries but 0% exact docids, and cranfield nDCG@10 0.043
(reverse annealing, K=20) against BM25's 0.531 on the same queries. Every document was seen 6 times (2 queries + the
document, 2 epochs); the paper's recipe shows each one 16 queries x 5 epochs = 80 times. More exposures (epochs,
queries per document) are what this configuration needs for a useful retriever, at ~8 minutes per epoch here.

Measured since (experiments/levers.py, RESULTS.md "Levers"): one document-only epoch of this config scores cranfield
nDCG@10 0.005, the level of 10 random documents per query (0.0046), and cutting the untrained model to 8 layers
raises its docid loss from 6.6 to 27.5 nats (experiments/probe_layer_cuts.py). experiments/configs/cpu_full_depth.py
keeps all 30 layers and reaches 0.033 after the same epoch.

What it trades away: (1) 22 layers of the pretrained model's depth, i.e. most of its language understanding; the
retriever leans on lexical overlap between query and docid/document terms, which is what tf-idf keyword docids and
short pseudo-queries reward, but paraphrased or semantic queries suffer; (2) the embedding and lower layers cannot
adapt to the task, and the tied embedding (= the output head) is frozen, so docid tokens are told apart only by the
trained top layers; (3) nothing: under the trie constraint only docid tokens are ever allowed, and a softmax over
the allowed subset is the same whether or not the head was restricted in training; the model does stop being
trained as a free-form generator. A higher learning rate than the paper's 5e-5 suits the few trainable layers.
"""

from zerogr_jax.training.pairs import PairsConfig
from zerogr_jax.sharding import MeshConfig
from zerogr_jax.training.step import ExperimentConfig, ModelConfig, TrainConfig


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        model=ModelConfig(name="smollm2-135m-instruct", num_layers=8, docid_head=True),
        mesh=MeshConfig(data=-1, fsdp=1, tensor=1),
        data=PairsConfig(instruction_max_tokens=64, query_max_tokens=64, heldout_fraction=0.02, heldout_max=128),
        train=TrainConfig(
            lr=1e-3, warmup_steps=20, schedule="constant", epochs=2.0, batch_size=16, grad_accum_steps=1,
            grad_clip=1.0, weight_decay=0.0, seed=0, dtype="float32", trainable="top_layers:4",
            checkpoint_every=100, keep_checkpoints=2, eval_every=0, eval_max_examples=128, log_every=5,
            share_prefix=True, length_buckets=3),
    )
