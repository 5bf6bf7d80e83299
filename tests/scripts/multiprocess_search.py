"""Worker of tests/test_multiprocess.py: search as one process of a `jax.distributed` job.

    multiprocess_search.py OUT.trec

A random 2-layer Llama over the SmolLM2 vocabulary (the same seed on every process: the replicated model), the
trie of a few keyword docids, and 7 queries; `search.search_across_processes` gives each process a block of the
queries and process 0 merges the parts into OUT.trec. Reverse annealing samples, so the per-query random streams
are checked too.
"""

import pathlib
import sys

from zerogr_jax import distributed

info = distributed.initialize()

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/: conftest's tiny model

from conftest import tiny_smollm2_vocab_llama  # noqa: E402
from zerogr_jax.retrieval_contract import docid_token_ids, eos_id_of  # noqa: E402
from zerogr_jax.models.loading import resolve_source  # noqa: E402
from zerogr_jax.retrieval.search import SearchConfig, search_across_processes  # noqa: E402
from zerogr_jax.tokenization import load_tokenizer  # noqa: E402
from zerogr_jax.retrieval.trie import build_trie  # noqa: E402

DOCIDS = ["boundary layer transition flat plate", "boundary layer separation shock", "heat transfer hypersonic nose",
          "heat transfer laminar cylinder", "shock wave interaction wing", "wing flutter supersonic panel",
          "panel flutter aerodynamic damping", "boundary layer suction airfoil"]
QUERIES = {"q1": "transition of boundary layers", "q2": "flutter of panels", "q3": "hypersonic heating",
           "q4": "shock waves on wings", "q5": "suction on airfoils", "q6": "laminar heat transfer", "q7": "damping"}


def main(out: str) -> None:
    tokenizer = load_tokenizer(resolve_source("smollm2-135m-instruct"))
    cfg, params = tiny_smollm2_vocab_llama(seed=3)
    eos = eos_id_of(tokenizer)
    trie = build_trie([t + [eos] for t in docid_token_ids(tokenizer, DOCIDS)], eos_id=eos, vocab_size=cfg.vocab_size)
    config = SearchConfig(num_docids=4, strategy="reverse_annealing", batch_size=2, seed=5)
    run = search_across_processes(cfg, params, tokenizer, trie, [f"d{i}" for i in range(len(DOCIDS))], QUERIES,
                                  "find the abstract", config, out, progress=False)
    print(f"worker {info.process_index}/{info.process_count}: "
          f"{'merged ' + str(len(run)) + ' queries' if run is not None else 'part written'}, OK", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
