"""`zerogr` command line: index / train / search / evaluate / run.

    zerogr index --collection cranfield --out runs/cranfield/index
    zerogr train --config experiments/configs/cpu_small.py --index runs/cranfield/index --workdir runs/cranfield/train
    zerogr search --index runs/cranfield/index --retriever runs/cranfield/train/model --collection cranfield --out run.trec
    zerogr evaluate --collection cranfield --run run.trec
    zerogr run --config experiments/configs/demo_cranfield.py      # the whole pipeline + baselines

Each subcommand's own `--help` lists its options. Bad input (a malformed corpus line, a bad qrels header, a busy
workdir) ends in one line, `zerogr <command>: error: <file>:<line>: <what>`, and exit status 2; add `--debug` for
the traceback. Modules are imported lazily so `--help` stays fast.
"""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "index": ("zerogr_jax.indexing.index_builder", "main"),
    "train": ("zerogr_jax.training.loop", "train_main"),
    "search": ("zerogr_jax.retrieval.search", "main"),
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

    debug = "--debug" in argv[1:]
    args = [a for a in argv[1:] if a != "--debug"]
    distributed.initialize()  # no-op for one process; joins a multi-host job when launched by launch/
    module, fn = COMMANDS[argv[0]]
    try:
        getattr(importlib.import_module(module), fn)(args)
    except Exception as e:
        if debug or not isinstance(e, _known_error_types()):
            raise
        # bad input we recognise: one line naming the file and line (the message starts with them), no traceback
        print(f"zerogr {argv[0]}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


# Errors about the user's input or setup whose message says all (file:line: what, or what to do): printed as one line
# with exit status 2; `--debug` shows the traceback. Looked up among the loaded modules: a command that never
# imported a module cannot have raised its error.
KNOWN_ERRORS = (("zerogr_jax.data.beir", "BeirFormatError"), ("zerogr_jax.evaluation.runfile", "RunFormatError"),
                ("zerogr_jax.retrieval_contract", "IndexFormatError"), ("zerogr_jax.config", "ConfigError"),
                ("zerogr_jax.workdir_lock", "WorkdirBusyError"),
                ("zerogr_jax.indexing.index_builder", "IncompleteIndexError"))


def _known_error_types() -> tuple[type, ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in KNOWN_ERRORS if m in sys.modules)


if __name__ == "__main__":
    main()
