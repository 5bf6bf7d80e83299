"""How many of a trie's docid tokens are drawn: each docid's length (EOS included) and the tokens through its last
branching node (`docid_scoring.informative_lengths`; past it every node has one child, so the rest has
probability 1 under the constraint and is written without model steps: `decoding.finish_determined`).

    python experiments/docid_lengths.py --scifact-titles --name docid_lengths_scifact_titles
    python experiments/docid_lengths.py --trie runs/demo_med/index/trie.npz --name docid_lengths_demo_med

`--scifact-titles` is bench_decode.py's trie (decode_setup.scifact_inputs, the embedded tokenizer). Writes
experiments/results/<name>.json (`result_files.record`): mean, median and max of both, and the mean model steps per
docid each way (a docid's first token comes from the prompt's logits, and its EOS is never fed: length - 1 steps with
every token fed, informative length - 1 with determined docids ended).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

from experiments import result_files
from zerogr_jax.retrieval import docid_scoring
from zerogr_jax.retrieval.trie import TrieHost, build_trie


def scifact_title_trie(data_dir) -> TrieHost:
    from experiments.decode_setup import scifact_inputs
    from zerogr_jax.models.loading import load_model

    model = load_model("smollm2-135m-instruct", dtype="float32")
    inputs = scifact_inputs(model.tokenizer, data_dir, 16, 24)
    return build_trie(inputs.docid_tokens, eos_id=inputs.eos_id, vocab_size=model.cfg.vocab_size, width=16)


def summary(trie: TrieHost) -> dict:
    paths = docid_scoring.docid_paths(trie)
    full = (paths[0] >= 0).sum(1)
    drawn = docid_scoring.informative_lengths(trie, paths)
    stats = lambda x: dict(mean=round(float(x.mean()), 3), median=float(np.median(x)), max=int(x.max()))  # noqa
    return dict(docids=int(len(full)), length=stats(full), informative_length=stats(drawn),
                model_steps_per_docid=dict(every_token_fed=round(float((full - 1).mean()), 3),
                                           determined_ended=round(float((drawn - 1).mean()), 3)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--scifact-titles", action="store_true")
    src.add_argument("--trie", type=pathlib.Path, help="a trie.npz (an index's)")
    ap.add_argument("--data-dir", type=pathlib.Path, default=None)
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    if args.scifact_titles:
        from experiments.decode_setup import DEFAULT_DATA
        trie = scifact_title_trie(args.data_dir or DEFAULT_DATA)
    else:
        trie = TrieHost.load(args.trie)
    source = "scifact titles" if args.scifact_titles else str(args.trie)
    lengths = summary(trie)
    result_files.write(args.name, result_files.record(f"docid lengths and informative lengths, {source}", lengths,
                                                      started=started, extra={"source": source}))
    print(lengths)


if __name__ == "__main__":
    main()
