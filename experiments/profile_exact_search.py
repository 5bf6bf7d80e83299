"""Where exact search's time goes: the docid prior, each query, and the XLA compiles inside each.

    python experiments/profile_exact_search.py --workdir runs/demo_med --collection med --queries 12

Runs `docid_scoring.score_all_docids` (the prior) and then `docid_scoring.top_docids` query by query with the main
job's search settings (exact, w = 0.5, K = 10), as `search.decode_candidates` does, and records per step its wall time, the backend
compile seconds inside it (`jax.monitoring` events) and the number of docids scored in full; every compiled program
is counted by name. Per step and phase (the prompt pass, the bound rows, the docids scored in full) it also records
the calls, the token slots they ran (padding included) and their seconds. `--layout rows` scores docids one row
each instead of as prefix trees (`docid_scoring.score_tree`). Writes experiments/results/<--name>.json.
"""

from __future__ import annotations

import collections
import logging
import time

import jax

from experiments import finished_run, result_files
from zerogr_jax import tokenization
from zerogr_jax.retrieval import docid_scoring, search
from zerogr_jax.retrieval.docid_scoring import docid_paths, score_all_docids, top_docids
from zerogr_jax.retrieval_contract import PromptBuilder

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def main(argv=None) -> None:
    ap = finished_run.argument_parser(__doc__)
    ap.add_argument("--queries", type=int, default=12)
    ap.add_argument("--name", default="profile_exact_search")
    ap.add_argument("--layout", default="tree", choices=docid_scoring.LAYOUTS)
    args = ap.parse_args(argv)
    phases = collections.defaultdict(lambda: {"calls": 0, "slots": 0, "s": 0.0})

    def phase(name, fn, slots):  # the compiled call, synchronised, with the token slots it runs
        def run(*a, **kw):
            t = time.perf_counter()
            out = jax.block_until_ready(fn(*a, **kw))
            row = phases[name]
            row["calls"] += 1
            row["slots"] += slots(*a, **kw)
            row["s"] += time.perf_counter() - t
            return out
        return run

    # the slots are the size of the tokens argument: its position in each program's arguments
    for name, attr, tokens_arg in (("prompt", "_prompt_pass", 2), ("bounds", "_next_logprobs", 6),
                                   ("bounds", "_tree_next_logprobs", 5), ("full", "_score_rows", 6),
                                   ("full", "_score_tree_rows", 6), ("full", "_score_head_rows", 6)):
        setattr(docid_scoring, attr, phase(name, getattr(docid_scoring, attr),
                                           lambda *a, _i=tokens_arg, **kw: int(a[_i].size)))
    started = time.time()
    compile_s = collections.Counter()
    jax.monitoring.register_event_duration_secs_listener(lambda event, secs, **_: compile_s.update({event: secs}))
    programs = collections.Counter()
    jax.config.update("jax_log_compiles", True)  # counted by a logging handler, not printed

    class Count(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Finished XLA compilation of "):
                programs[msg.split()[4]] += 1

    logging.getLogger("jax").addHandler(Count())
    logging.getLogger("jax").propagate = False

    fr = finished_run.load(args.workdir, args.collection, args.queries)
    model, config = fr.retriever, search.SearchConfig(strategy="exact", prior_weight=0.5, num_docids=10)
    scored_trie, step, params = search.step_model(model.cfg, model.params, fr.trie, config.restrict_head)
    device_trie = scored_trie.to_device()
    builder = PromptBuilder(model.tokenizer)
    pad = tokenization.pad_id_of(model.tokenizer)
    steps = []

    def timed(what, fn):
        c0, t = compile_s[COMPILE_EVENT], time.perf_counter()
        phases.clear()
        out = fn()
        steps.append({"what": what, "wall_s": round(time.perf_counter() - t, 2),
                      "compile_s": round(compile_s[COMPILE_EVENT] - c0, 2),
                      "phases": {k: {**v, "s": round(v["s"], 2)} for k, v in phases.items()}})
        return out

    prior = timed("prior", lambda: score_all_docids(step, params, builder.ids(fr.index.instruction, [""])[0],
                                                    scored_trie, device_trie, pad_id=pad, layout=args.layout))
    paths = docid_paths(scored_trie)
    for qid, prompt in zip(fr.queries, builder.ids(fr.index.instruction, list(fr.queries.values()))):
        got = timed(qid, lambda: top_docids(step, params, prompt, scored_trie, device_trie, config.num_docids,
                                            prior=prior, prior_weight=config.prior_weight, pad_id=pad, paths=paths,
                                            layout=args.layout))
        steps[-1]["scored_in_full"] = got.scored
        print(steps[-1], flush=True)
    total = {"wall_s": round(sum(s["wall_s"] for s in steps), 1),
             "compile_s": round(sum(s["compile_s"] for s in steps), 1), "programs": dict(programs)}
    result_files.write(args.name, result_files.record(
        f"exact search (prior 0.5, K = 10) profiled on {args.collection}, {len(fr.queries)} queries", steps,
        started=started, extra={"workdir": args.workdir, "layout": args.layout, "total": total}))
    print(total)


if __name__ == "__main__":
    main()
