"""cpu-top12: the best retriever measured on this 2-core CPU — all 30 layers of the embedded SmolLM2-135M, the top
12 trained at lr 1e-3 for 3 epochs, the frozen 18 layers run once per example (`train.cache_frozen_features`).

    zerogr run --config experiments/configs/zero_shot_cpu.py --set collection=med --set workdir=runs/med \
        --set train_config=experiments/configs/cpu_top12.py --set train_overrides=

(`train_overrides=` clears the zero-shot recipe's `train.epochs=1`, which would otherwise apply on top of this file;
the pipeline prints each value its overrides replace.)

It is `cpu_full_depth.py` with three overrides, the ones the levers runs passed on the command line
(`train.epochs=3,train.lr=1e-3,train.trainable=top_layers:12`; tests/test_config.py keeps the two equal). On
cranfield's document rows (RESULTS.md, "Levers"): nDCG@10 0.124 against 0.070 for the top 4 at the same steps, 0.119
for the top 16. Cost on cranfield (1,398 rows, 261 steps x 16): ~44 min of training, ~7 min of search at K = 10.
"""

import pathlib

from zerogr_jax import config as config_lib

_FULL_DEPTH = pathlib.Path(__file__).resolve().parent / "cpu_full_depth.py"
OVERRIDES = ("train.epochs=3", "train.lr=1e-3", "train.trainable=top_layers:12")


def get_config():
    return config_lib.override(config_lib.load_config_file(_FULL_DEPTH), list(OVERRIDES))
