"""`zerogr` command line: index / train / search / evaluate / run.

    zerogr index --collection cranfield --out runs/cranfield/index
    zerogr train --config experiments/configs/cpu_small.py --index runs/cranfield/index --workdir runs/cranfield/train
    zerogr search --index runs/cranfield/index --retriever runs/cranfield/train/model --collection cranfield --out run.trec
    zerogr evaluate --collection cranfield --run run.trec
    zerogr run --config experiments/configs/demo_cranfield.py      # the whole pipeline + baselines

Each subcommand's own `--help` lists its options. Modules are imported lazily so `--help` stays fast.
"""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "index": ("zerogr_jax.indexing.index_builder", "main"),
    "train": ("zerogr_jax.train_loop", "train_main"),
    "search": ("zerogr_jax.search", "main"),
    "evaluate": ("zerogr_jax.evaluation.evaluate_cli", "main"),
    "run": ("zerogr_jax.pipeline", "main"),
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may touch the network at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nzerogr: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
            raise SystemExit(2)
        return
    import importlib

    from zerogr_jax import distributed

    distributed.initialize()  # no-op for one process; joins a multi-host job when launched by launch/
    module, fn = COMMANDS[argv[0]]
    getattr(importlib.import_module(module), fn)(argv[1:])


if __name__ == "__main__":
    main()
