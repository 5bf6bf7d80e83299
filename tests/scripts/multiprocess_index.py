"""Worker of tests/test_multiprocess.py: the index builder as one process of a `jax.distributed` job.

    multiprocess_index.py CORPUS.jsonl OUT_DIR

Process p builds the docid and query shards with shard % process_count == p (its share of the generation work);
after a barrier, process 0 alone merges them (global collision resolution, final files, trie, manifest), and the
others return once the merged index is in place. The generator is the deterministic fake of the indexing tests,
so no LM is loaded.
"""

import pathlib
import sys

from zerogr_jax import distributed

info = distributed.initialize()

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/: the indexing fakes

from indexing_fakes import FakeGenerator  # noqa: E402
from zerogr_jax.data.beir import iter_corpus  # noqa: E402
from zerogr_jax.indexing import index_builder as ib  # noqa: E402

CFG = ib.IndexConfig(instruction="Given a health question, retrieve abstracts that answer it", collection="synthetic",
                     docid_scheme="tfidf_keywords", num_queries=3, shard_size=5, seed=11, batch_size=2)
BYTES = ib.DocidTokenizer(lambda docids: [list(d.encode()) + [256] for d in docids], eos_id=256, vocab_size=257,
                          name="bytes")


def builder(corpus: str, out: str, process_index: int, process_count: int) -> ib.IndexBuilder:
    return ib.IndexBuilder(lambda stats: iter_corpus(corpus, stats=stats), out, CFG, generator=FakeGenerator(),
                           docid_tokenizer=BYTES, corpus_info={"name": "synthetic"}, process_index=process_index,
                           process_count=process_count, show_progress=False)


def main(corpus: str, out: str) -> None:
    b = builder(corpus, out, info.process_index, info.process_count)
    b.run_stage("docids")
    b.run_stage("queries")
    distributed.barrier("index shards written")
    distributed.run_on_main(b.merge, "index merge")
    owned = b.run_info["stages"]["docids"]["shards_owned"]
    print(f"worker {info.process_index}/{info.process_count}: {owned} shards per stage, OK", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
