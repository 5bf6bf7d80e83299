"""Markdown tables of the experiment JSON files (what RESULTS.md shows), so no figure is copied by hand.

    python experiments/results_tables.py zero_shot_cpu ablate_decoding_cranfield multi_task_cranfield ...

Knows the layouts written by zero_shot.py, ablate_decoding.py, multi_task.py, levers.py, probe_layer_cuts.py and
sweep.py (ablate_docids.py, ablate_queries_per_doc.py); MiniLM figures for the zero-shot table come from
results/baselines.json.
"""

from __future__ import annotations

import json
import pathlib
import sys

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SHOWN = ("nDCG@10", "Recall@100", "Acc@1", "MRR@10")


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header, rows) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)])


def zero_shot(body: dict) -> str:
    minilm = _load("baselines")["results"] if (RESULTS / "baselines.json").exists() else {}
    rows = []
    for name, r in body["results"].items():
        z, b = r["metrics"]["zerogr-jax"], r["metrics"]["BM25"]
        m = minilm.get(name, {}).get("minilm", {}).get("metrics", {})
        tr = r.get("train", {})
        floor = RESULTS / f"levers_{name}.json"  # experiments/levers.py's random-ranking row, when recorded
        rnd = json.loads(floor.read_text())["results"].get("random", {}).get("metrics") if floor.exists() else None
        rows.append([name, r["queries"], f"{z['nDCG@10']:.3f}", f"{rnd['nDCG@10']:.3f}" if rnd else "-",
                     f"{b['nDCG@10']:.3f}", f"{m['nDCG@10']:.3f}" if m else "-", f"{z['nDCG@10'] - b['nDCG@10']:+.3f}",
                     f"{z['Acc@1']:.3f}", f"{z['MRR@10']:.3f}",
                     (f"{tr['steps']} x 16 of {tr['train_examples']} examples" if tr
                      else ", ".join(r["config"]["train_overrides"])),
                     " / ".join(f"{k} {v:.0f}" for k, v in r["timings_s"].items())])
    return _table(["collection", "queries", "zerogr-jax nDCG@10", "random", "BM25", "MiniLM", "zerogr - BM25",
                   "zerogr Acc@1",
                   "zerogr MRR@10", "train steps x batch", "stage seconds"], rows)


def metric_rows(body: dict, label: str) -> str:
    rows = []
    for name, r in body["results"].items():
        extra = r.get("search_s", r.get("timings_s", ""))
        rows.append([name, *(f"{r['metrics'][m]:.3f}" for m in SHOWN), extra])
    return _table([label, *SHOWN, "seconds"], rows)


def sweep(body: dict) -> str:
    rows = []
    for value, r in body["results"].items():
        ix = r["index"]
        q = ix["queries"]
        cells = [value, ix["documents"], f"{ix['collision_rate_before']:.4f}", f"{ix['collision_rate_after']:.4f}",
                 ix["docids_extended"], ix["docids_shared_groups"], q.get("kept", 0), ix["index_s"], ix["docs_per_s"]]
        if "metrics" in r:
            cells += [f"{r['metrics'][m]:.3f}" for m in SHOWN]
        rows.append(cells)
    header = ["value", "docs", "collision rate before", "after", "docids extended", "shared leaves",
              "pseudo-queries kept", "index s", "docs/s"]
    if any("metrics" in r for r in body["results"].values()):
        header += list(SHOWN)
    return _table(header, rows)


def levers(body: dict) -> str:
    rows = []
    for name, r in body["results"].items():
        t = r.get("timings_s", {})  # none for the random-ranking row
        trained = f"{r['steps']} x {r['batch_size']} of {r['train_examples']}" if r.get("steps") else "none"
        acc = r.get("heldout_token_accuracy")
        rows.append([name, r["what"], *(f"{r['metrics'][m]:.3f}" for m in SHOWN), trained,
                     f"{r['last_train_loss']:.2f}" if r.get("last_train_loss") is not None else "-",
                     f"{acc:.2f}" if acc is not None else "-",
                     *(f"{t[k]:.0f}" if k in t else "-" for k in ("train", "search"))])
    return _table(["variant", "what", *SHOWN, "steps x batch of examples", "last train loss",
                   "held-out token acc", "train s", "search s"], rows)


def layer_cuts(body: dict) -> str:
    r = body["results"]
    rows = [[name, len(c["layers"]), f"{c['loss']:.2f}", f"{100 * c['token_accuracy']:.1f} %"]
            for name, c in r["cuts"].items()]
    rows.append(["uniform guess over the docid head", "-", f"{r['uniform_loss']:.2f}",
                 f"{100 / r['docid_vocabulary']:.2f} %"])
    return _table(["layers kept", "count", "docid loss (nats)", "token accuracy"], rows)


def render(name: str) -> str:
    body = _load(name)
    if name.startswith("zero_shot"):
        table = zero_shot(body)
    elif name.startswith("ablate_decoding"):
        table = metric_rows(body, "strategy")
    elif name.startswith("multi_task"):
        table = metric_rows(body, "retriever")
    elif name.startswith("levers"):
        table = levers(body)
    elif name.startswith("probe_layer_cuts"):
        table = layer_cuts(body)
    else:
        table = sweep(body)
    return f"`{body['command']}` — {body['date']}, load {body['load_average_at_end'][0]:.1f}, " \
           f"{body['wall_s'] / 60:.0f} min\n\n{table}\n"


if __name__ == "__main__":
    for n in sys.argv[1:]:
        print(f"### {n}\n\n{render(n)}")
