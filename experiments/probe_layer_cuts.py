"""How much of the untrained embedded model survives cutting layers out: teacher-forced docid loss per layer subset.

    python experiments/probe_layer_cuts.py --index runs/levers/full_doc_e1/index

For each subset of SmolLM2-135M's 30 decoder layers (kept in order, the rest dropped; the final norm and the tied
head stay), the docid-token cross-entropy and token accuracy of `--examples` training examples of the index
(instruction + query -> docid), with the head restricted to the docid tokens as in training (`model.docid_head`),
before any training. A uniform guess over that head scores ln(|docid vocabulary|). Writes
experiments/results/probe_layer_cuts.json.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments import result_files
from zerogr_jax.training import step as tr
from zerogr_jax.training import input_pipeline as pipe
from zerogr_jax.training.pairs import PairsConfig, build_examples, docid_vocabulary, load_index
from zerogr_jax.models.loading import load_model

CUTS = "all=0-29;first8=0-7;first20=0-19;first7+last1=0-6,29;first6+last2=0-5,28-29;first4+last4=0-3,26-29;" \
       "first10+last6=0-9,24-29;first20+last2=0-19,28-29"


def parse_layers(spec: str) -> list[int]:
    """"0-5,28-29" -> [0, 1, 2, 3, 4, 5, 28, 29]."""
    layers = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        layers += list(range(int(lo), int(hi or lo) + 1))
    return layers


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True, help="an index directory (docids.jsonl, queries.jsonl)")
    ap.add_argument("--cuts", default=CUTS, help="name=layer ranges;...")
    ap.add_argument("--examples", type=int, default=96, help="training examples, evenly spaced over the index")
    args = ap.parse_args(argv)
    started = time.time()
    model = load_model("smollm2-135m-instruct", dtype="float32")
    index = load_index(args.index)
    data = build_examples([index], model.tokenizer, PairsConfig())
    vocab = docid_vocabulary([index], model.tokenizer)
    consts = tr.step_constants({}, vocab, model.cfg.vocab_size)
    rows = np.linspace(0, len(data.train) - 1, min(args.examples, len(data.train))).astype(int)
    examples = data.train.take(rows)
    results = {"docid_vocabulary": int(len(vocab)), "uniform_loss": float(np.log(len(vocab))),
               "examples": int(len(rows)), "cuts": {}}
    for item in args.cuts.split(";"):
        name, _, spec = item.partition("=")
        keep = np.asarray(parse_layers(spec))
        params = {**model.params, "layers": jax.tree.map(lambda a: a[keep], model.params["layers"])}
        cfg = model.cfg.replace(num_layers=len(keep))
        step = tr.make_eval_step(cfg)
        total: dict[str, float] = {}
        for batch in pipe.sequential_batches(examples, 16, process_index=0, process_count=1):
            for k, v in jax.device_get(step(params, batch, consts)).items():
                total[k] = total.get(k, 0.0) + float(v)
        tokens = total["label_tokens"]
        results["cuts"][name] = {"layers": keep.tolist(), "loss": total["loss_sum"] / tokens,
                                 "token_accuracy": total["correct_tokens"] / tokens}
        print(name, results["cuts"][name], flush=True)
    result_files.write("probe_layer_cuts", result_files.record(
        f"untrained docid loss per layer subset, index {args.index}", results, started=started))


if __name__ == "__main__":
    main()
