"""The rerank head's rows (`train.rank_score=head`, `search.rerank_depth`): one trained retriever, one exact pool per
query, ranked two ways — by the generative score (the pure generative row the main job reports) and by the rerank
head (the reference's rescoring) — each head depth paired against the generative ranking of the same pool.

    python experiments/rerank_rows.py --workdir /work/runs/med_head --collection med --depths 10,30 \
        --prior-weight 0.5 --name rerank_med_head

The pool: the exact top max(depths) docids by log p(d | q) - w log p(d | empty query) (`search.strategy=exact`,
branch and bound over each docid's informative first tokens); the pooled docids' head scores come from one more
pass over them, whole (`docid_scoring.top_docids` with head_token). Row `gen` is the pool's top K (the exact top K: what `zerogr run`
reports without the head), row `head<N>` the pool's best N re-ordered by the head, top K. Both are the retriever's
own scores, no BM25: pure generative retrieval. Runs go to experiments/results/runs/<name>_{gen,head<N>}.trec, the
paired tests to experiments/results/<name>.json.

`--depths ...,all`: a pool of every docid, each scored in full once. A long pool resumes: the queries are searched in
blocks of `--block` and each block's pool is kept under <workdir>/rows/<name>/, so a rerun of the same command
searches only the blocks not yet done.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

from experiments import compare_runs, finished_run, result_files
from zerogr_jax import atomic_files
from zerogr_jax.evaluation import runfile
from zerogr_jax.retrieval.search import Candidates, SearchConfig, decode_candidates, rank_documents


def parse_depths(text: str, num_docids: int) -> list[int]:
    """"30,100,all" -> [30, 100, U]: head depths, `all` = every docid of the trie (deeper depths are cut to it)."""
    return sorted({num_docids if d.strip() == "all" else min(int(d), num_docids) for d in text.split(",")})


def depth_label(depth: int, num_docids: int) -> str:
    return "all" if depth >= num_docids else str(depth)


def decode_in_blocks(fr: finished_run.FinishedRun, config: SearchConfig, block_dir: pathlib.Path, block: int
                     ) -> tuple[Candidates, float, int]:
    """The pool of every judged query, searched `block` queries at a time; a block already under `block_dir` (from
    an earlier, stopped run of the same command) is loaded, not searched. Returns (pool, seconds of search over all
    blocks, blocks loaded). The docid prior is scored once and kept with the blocks."""
    qids = list(fr.queries)
    block_dir.mkdir(parents=True, exist_ok=True)
    settings = block_dir / "config.json"
    want = {"config": dataclasses.asdict(config), "queries": qids, "block": block}
    if settings.exists() and json.loads(settings.read_text("utf-8")) != want:
        raise SystemExit(f"{block_dir}: blocks of another search (config, queries or block size differ); "
                         f"remove the directory or use another --name")
    atomic_files.atomic_write_json(settings, want)
    parts, seconds, loaded, prior = [], 0.0, 0, None
    for start in range(0, len(qids), block):
        path = block_dir / f"queries-{start:05d}.npz"
        if path.exists():
            part = Candidates.load(path)
            seconds += json.loads(path.with_suffix(".json").read_text("utf-8"))["seconds"]
            loaded += 1
        else:
            t0 = time.perf_counter()
            part = decode_candidates(fr.retriever.cfg, fr.retriever.params, fr.retriever.tokenizer, fr.trie,
                                     {q: fr.queries[q] for q in qids[start:start + block]}, fr.index.instruction,
                                     config, key_offset=start, prior=prior)
            took = time.perf_counter() - t0
            # the seconds first: a block counts as done once its .npz is there, and then its seconds must be too
            atomic_files.atomic_write_json(path.with_suffix(".json"), {"seconds": round(took, 1)})
            part.save(path)
            seconds += took
        prior = part.prior
        parts.append(part)
    return Candidates.concat(parts), seconds, loaded


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--depths", default="10,30", help="head re-ranking depths N (the pool is the largest)")
    ap.add_argument("--k", type=int, default=10, help="docids kept per query")
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--name", required=True)
    ap.add_argument("--save-candidates", action="store_true",
                    help="also write the pool with its scores to experiments/results/runs/<name>.candidates.npz")
    ap.add_argument("--block", type=int, default=16, help="queries per resumable block")
    args = ap.parse_args(argv)
    started = time.time()
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection)
    u = fr.trie.num_docids
    depths = parse_depths(args.depths, u)
    config = SearchConfig(num_docids=args.k, strategy="exact", prior_weight=args.prior_weight,
                          rerank_depth=max(depths))
    candidates, search_s, resumed = decode_in_blocks(fr, config, pathlib.Path(args.workdir) / "rows" / args.name,
                                                     args.block)
    out_dir = result_files.RESULTS / "runs"
    if args.save_candidates:
        candidates.save(out_dir / f"{args.name}.candidates.npz")
    paths = {}
    for depth in [0, *depths]:
        label = "gen" if not depth else f"head{depth_label(depth, u)}"
        run = rank_documents(fr.trie, fr.doc_ids, candidates, dataclasses.replace(config, rerank_depth=depth))
        paths[label] = out_dir / f"{args.name}_{label}.trec"
        runfile.write_run(paths[label], run, tag=f"zerogr-exact-prior{args.prior_weight:g}-{label}")
    out = compare_runs.compare(args.collection, str(paths["gen"]), [str(p) for k, p in paths.items() if k != "gen"])
    result_files.write(args.name, result_files.record(
        f"rerank head on {args.collection}: the exact pool re-ordered by the head, against its generative order",
        out["results"], started=started,
        extra={"workdir": str(args.workdir), "queries": out["queries"], "baseline": str(paths["gen"]),
               "search_and_head_s": round(search_s, 1), "blocks_resumed": resumed, "docids": u, "depths": depths,
               "k": args.k, "prior_weight": args.prior_weight}))


if __name__ == "__main__":
    main()
