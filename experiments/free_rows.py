"""A saved exact pool re-ordered with each docid's whole log-likelihood: the evidence its forced tail carries.

    python experiments/free_rows.py --workdir /work/runs/med_head_s4r1 --collection med \
        --candidates experiments/results/runs/pool300_med_head_s4r1.candidates.npz --name free300_med_head_s4r1

The constrained score (`docid_scoring`) is decided by a docid's first 2-3 tokens: past its last branching node every
node has one child, whose masked log-probability is 0, so the rest of a keyword docid ("... myocardial infarction
trial") never counts. Its log-likelihood over the head's whole vocabulary (`score_tree(free=True)`, what a
transformers beam with a prefix constraint sums) scores every token: how likely the model finds the whole keyword
string after this query. Per query, the pool's best `--depth` by the corrected generative score get it (one pass over
those docids, whole), corrected like the generative score by the same quantity after the empty query (`free_prior`):
free(d) = log p_free(d | q) - w log p_free(d | empty).

Rows, each the pool's best `--depth` re-ordered, top K, pure generative (the retriever's own scores only):
`zsum` z(head) + z(generative), the recipe's row (recomputed here, checked against `--baseline-run` when given);
`zfree` z(head) + z(free) (free in place of the generative score); `z3` z(head) + z(generative) + z(free);
`free` by free alone. Each is paired against `zsum`. Per-query scores are kept under <workdir>/rows/<name>/ so a stopped
run resumes. Writes experiments/results/<name>.json and runs under experiments/results/runs/.
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np

from experiments import compare_runs, finished_run, result_files
from zerogr_jax import atomic_files, tokenization
from zerogr_jax.evaluation import runfile
from zerogr_jax.evaluation.metrics import trec_order
from zerogr_jax.retrieval import search
from zerogr_jax.retrieval.docid_scoring import docid_paths, encode_prompt, score_tree
from zerogr_jax.retrieval.search import Candidates, SearchConfig
from zerogr_jax.retrieval_contract import PromptBuilder

ROWS = ("zsum", "zfree", "z3", "free")


def row_scores(name: str, head: np.ndarray, generative: np.ndarray, free: np.ndarray, valid: np.ndarray
               ) -> np.ndarray:
    """[Q, N] the ordering score of row `name` over each query's N pooled docids."""
    z = lambda x: search._standardise(x, valid)  # noqa: E731
    return {"zsum": lambda: z(head) + z(generative), "zfree": lambda: z(head) + z(free),
            "z3": lambda: z(head) + z(generative) + z(free), "free": lambda: free}[name]()


def documents_run(fr: finished_run.FinishedRun, docids: np.ndarray, qids: list[str], k: int) -> dict:
    """{qid: {doc: 1 / (rank + 1)}} of docids [Q, N] already in order (the first k docids, expanded)."""
    run = {}
    for qid, ranked in zip(qids, search.expand_to_documents(fr.trie, docids[:, :k])):
        run[qid] = {}
        for doc_index, rank, _ in ranked:
            run[qid].setdefault(fr.doc_ids[doc_index], 1.0 / (rank + 1))
    return run


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--candidates", required=True, help="the pool with head scores (rerank_rows --save-candidates)")
    ap.add_argument("--depth", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--prior-weight", type=float, default=0.5)
    ap.add_argument("--baseline-run", default="", help="the committed zsum row of this pool, checked equal")
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    started = time.time()
    fr = finished_run.load(pathlib.Path(args.workdir), args.collection)
    pool = Candidates.load(args.candidates)
    if pool.rerank is None or pool.prior is None:
        raise SystemExit(f"{args.candidates}: needs the head's scores and the docid prior")
    w, depth = args.prior_weight, min(args.depth, pool.docids.shape[1])
    config = SearchConfig(strategy="exact", prior_weight=w)
    top = search.pool_order(pool, config)[:, :depth]  # the best `depth` by the corrected score, in order
    docids = np.take_along_axis(pool.docids, top, axis=1)
    valid = docids >= 0
    generative = np.take_along_axis(pool.logprobs, top, axis=1) - w * pool.prior[np.maximum(docids, 0)]
    head = np.take_along_axis(pool.rerank, top, axis=1)
    if np.isnan(head[valid]).any():
        raise SystemExit(f"{args.candidates}: the head scored fewer than {depth} docids per query")

    scored_trie, model, params = search.step_model(fr.retriever.cfg, fr.retriever.params, fr.trie,
                                                   config.restrict_head)
    device_trie, whole = scored_trie.to_device(), docid_paths(scored_trie)[0]
    builder, pad = PromptBuilder(fr.retriever.tokenizer), tokenization.pad_id_of(fr.retriever.tokenizer)

    def free_of(prompt: list[int], ids: np.ndarray) -> np.ndarray:
        got = score_tree(model, params, encode_prompt(model, params, prompt, pad), scored_trie, device_trie,
                         whole[ids], free=True)
        return got[:, 1]

    cache = pathlib.Path(args.workdir) / "rows" / args.name
    cache.mkdir(parents=True, exist_ok=True)
    prior_path, free_path = cache / "free_prior.npy", cache / "free.npz"
    t0 = time.perf_counter()
    if prior_path.exists():
        free_prior = np.load(prior_path, allow_pickle=False)
    else:
        free_prior = free_of(builder.ids(fr.index.instruction, [""])[0], np.arange(scored_trie.num_docids))
        with atomic_files.atomic_open(prior_path, "wb") as f:
            np.save(f, free_prior)
    prior_s = time.perf_counter() - t0
    done: dict[str, np.ndarray] = {}
    if free_path.exists():
        with np.load(free_path, allow_pickle=False) as z:
            done = {q: z[q] for q in z.files}
    prompts = builder.ids(fr.index.instruction, [fr.queries[q] for q in pool.qids])
    t0 = time.perf_counter()
    for n, (qid, prompt) in enumerate(zip(pool.qids, prompts)):
        if qid not in done:
            done[qid] = free_of(prompt, docids[n][valid[n]])
            if len(done) % 10 == 0 or n == len(prompts) - 1:
                with atomic_files.atomic_open(free_path, "wb") as f:
                    np.savez(f, **done)
    queries_s = time.perf_counter() - t0
    free = np.full(docids.shape, -np.inf)
    for n, qid in enumerate(pool.qids):
        free[n, valid[n]] = done[qid]
    free = free - w * free_prior[np.maximum(docids, 0)]

    out_dir = result_files.RESULTS / "runs"
    paths = {}
    for name in ROWS:
        order = np.argsort(-np.where(valid, row_scores(name, head, generative, free, valid), -np.inf), axis=1,
                           kind="stable")
        paths[name] = pathlib.Path(os.path.relpath(out_dir / f"{args.name}_{name}.trec"))  # recorded as run
        runfile.write_run(paths[name], documents_run(fr, np.take_along_axis(docids, order, axis=1), pool.qids,
                                                     args.k), tag=f"zerogr-exact-prior{w:g}-{name}{depth}")
    if args.baseline_run:
        want, got = runfile.read_run(args.baseline_run), runfile.read_run(paths["zsum"])
        same = want.keys() == got.keys() and all(
            [d for d, _ in trec_order(want[q])] == [d for d, _ in trec_order(got[q])] for q in want)
        if not same:
            raise SystemExit(f"the recomputed zsum row differs from {args.baseline_run}")
    out = compare_runs.compare(args.collection, str(paths["zsum"]), [str(paths[r]) for r in ROWS[1:]])
    result_files.write(args.name, result_files.record(
        f"exact pool on {args.collection} re-ordered with the docids' whole log-likelihood (free), against zsum",
        out["results"], started=started,
        extra={"workdir": str(args.workdir), "candidates": str(args.candidates), "depth": depth, "k": args.k,
               "prior_weight": w, "queries": out["queries"], "free_prior_s": round(prior_s, 1),
               "queries_s": round(queries_s, 1), "baseline_run": args.baseline_run}))
    rows = {"zsum": next(iter(out["results"].values()))["nDCG@10"]["mean_a"]}
    rows.update({pathlib.Path(p).stem.rsplit("_", 1)[1]: r["nDCG@10"]["mean_b"] for p, r in out["results"].items()})
    print(json.dumps({k: round(v, 4) for k, v in rows.items()}, indent=1))


if __name__ == "__main__":
    main()
