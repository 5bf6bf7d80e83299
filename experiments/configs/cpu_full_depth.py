"""cpu-full-depth: all 30 layers of the embedded SmolLM2-135M, only the top 4 trained (a CPU retriever that keeps
the pretrained model's whole depth).

    zerogr train --config experiments/configs/cpu_full_depth.py --index runs/cranfield/index --workdir runs/cranfield/train

Why not cpu-small's 8-layer cut: the pretrained model does not survive losing layers. Teacher-forced docid loss of
the untrained model on 96 cranfield document-as-query examples, docid-restricted head (`python
experiments/probe_layer_cuts.py --index runs/levers/full_doc_e1/index`, results/probe_layer_cuts.json): all 30
layers 6.61 nats and 20 % token accuracy; first 8 layers 27.5 nats, 0.1 %; first 20 layers 33.8; first 20 + last 2
14.4; first 10 + last 6 10.3 — every cut is worse than a uniform guess over the docid tokens (7.9 nats), which
training must first undo.

The 26 frozen layers cost a forward pass only (no backward, no optimizer state), and only once per example:
`train.cache_frozen_features` keeps their outputs on the host (1,398 cranfield rows: ~0.2 GB) and every epoch then
runs just the top 4 layers. Quality on cranfield, per lever: RESULTS.md ("Levers"), `experiments/levers.py`.
"""

import pathlib

from zerogr_jax import config as config_lib

_SMALL = pathlib.Path(__file__).resolve().parent / "cpu_small.py"


def get_config():
    small = config_lib.load_config_file(_SMALL)
    return config_lib.override(small, ["model.num_layers=0", "train.lr=3e-4", "train.cache_frozen_features=True"])
