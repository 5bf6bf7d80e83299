"""Quality report of an index directory written by `zerogr index` (zerogr_jax.indexing.index_builder).

    # analyse an existing index
    python experiments/index_quality.py --index runs/index/scifact
    # build a TF-IDF-docid index first (no language model needed), then analyse it
    python experiments/index_quality.py --index runs/index/scifact-tfidf --build --collection scifact \
        --scheme tfidf_keywords --num-queries 0
    # add LM throughput (docs/s for docids and for B = 4 and 16 pseudo-queries) on the first 32 documents
    python experiments/index_quality.py --index runs/index/scifact --throughput --throughput-docs 32

Reports
  docids   collision rate before / after resolution, docids extended / shared, share of docid words present in the
           document (raw LM output and final docid), docid length distribution (words), rule changes;
  queries  kept per document, drops per reason, and the rate at which a pseudo-query retrieves its own document in
           BM25's top 10 (bm25s over the same corpus; the document-as-query rows are scored alike for reference);
  speed    docs/s of the index build (from the manifest) and, with --throughput, docs/s of LM docids and of
           B = 4 / 16 pseudo-queries, compile time excluded and reported apart.
Writes the report as JSON (default INDEX/quality.json, atomically) and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import platform
import random
import re
import statistics
import sys
import time

from zerogr_jax.atomic_files import atomic_write_json
from zerogr_jax.data.beir import iter_corpus
from zerogr_jax.indexing.docid_rules import candidate_words
from zerogr_jax.indexing.terms import DocumentTerms


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def read_jsonl(path: pathlib.Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def docid_report(rows: list[dict], docs: dict, manifest: dict) -> dict:
    """Collisions, presence of docid words in the document, lengths, rule changes."""
    present = total = raw_present = raw_total = 0
    per_doc_share = []
    lengths = collections.Counter()
    for r in rows:
        d = docs[r["doc_id"]]
        terms = DocumentTerms.from_document(d.title, d.text)
        words = r["docid"].split()
        hits = sum(terms.contains(w) for w in words)
        present, total = present + hits, total + len(words)
        per_doc_share.append(hits / len(words) if words else 0.0)
        raw = candidate_words(r["docid_raw"])
        raw_present += sum(terms.contains(w) for w in raw)
        raw_total += len(raw)
        lengths[len(words)] += 1
    n = len(rows)
    c = manifest["counts"]
    final = collections.Counter(r["docid"] for r in rows)
    return {
        "documents": n,
        "collision_rate_before": c["docids_before_resolution"]["collision_rate"],
        "collision_rate_after": 1 - len(final) / n,
        "docs_in_collisions_before": c["docids_before_resolution"]["docs_in_collisions"],
        "docs_sharing_a_docid_after": sum(v for v in final.values() if v > 1),
        "docids_extended": c["docids_extended"],
        "word_share_in_document": present / total if total else 0.0,
        "word_share_in_document_per_doc_mean": statistics.fmean(per_doc_share) if per_doc_share else 0.0,
        "raw_word_share_in_document": raw_present / raw_total if raw_total else None,
        "length_words": {"mean": statistics.fmean(lengths.elements()), "min": min(lengths), "max": max(lengths),
                         "histogram": {str(k): lengths[k] for k in sorted(lengths)}},
        "rules": c["rules"],
        # shared leaves are for identical texts (title + text, whitespace normalised); any other sharing is a bug
        "shared_groups": sum(len(g) > 1 for g in _groups(rows).values()),
        "shared_groups_texts_differ": sum(len({_text(docs[i]) for i in g}) > 1 for g in _groups(rows).values()),
        "titles_differing_only_by_a_number": number_title_report(rows, docs),
    }


def _groups(rows: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = collections.defaultdict(list)
    for r in rows:
        out[r["docid"]].append(r["doc_id"])
    return out


def _text(doc) -> str:
    return " ".join(f"{doc.title}\n{doc.text}".split())


def number_title_report(rows: list[dict], docs: dict) -> dict:
    """Documents whose titles are equal once their digits are removed but differ with them ("Part 1" / "Part 2"):
    how many, and the share of them that still share a docid with another such document after resolution."""
    by_skeleton: dict[str, set[str]] = collections.defaultdict(set)
    for doc_id, d in docs.items():
        if d.title.strip() and any(ch.isdigit() for ch in d.title):
            by_skeleton[" ".join(re.sub(r"[0-9]+", "#", d.title).split()).lower()].add(doc_id)
    members = set()
    for ids in by_skeleton.values():
        if len({docs[i].title for i in ids}) > 1:
            members |= ids
    docid_of = {r["doc_id"]: r["docid"] for r in rows}
    counts = collections.Counter(docid_of[i] for i in members)
    colliding = sum(1 for i in members if counts[docid_of[i]] > 1)
    return {"documents": len(members), "sharing_a_docid_after": colliding,
            "collision_rate_after": colliding / len(members) if members else 0.0}


def query_report(queries: list[dict], docs: dict, manifest: dict, max_queries: int | None, seed: int) -> dict:
    """BM25 top-10 self-retrieval rate of pseudo-queries (and of document-as-query rows)."""
    from zerogr_jax.evaluation.bm25 import bm25_search, build_bm25_index

    c = manifest["counts"]["queries"]
    out = {"generated": c["generated"], "kept": c["kept"], "dropped": c["dropped"],
           "kept_per_document": c["kept"] / len(docs), "docs_without_pseudo_query": c["docs_without_pseudo_query"]}
    index = build_bm25_index(docs.values())
    for kind in ("pseudo", "doc_as_query"):
        rows = [q for q in queries if q["kind"] == kind]
        if max_queries is not None and len(rows) > max_queries:
            rows = random.Random(seed).sample(rows, max_queries)
        if not rows:
            out[f"{kind}_self_top10"] = None
            continue
        start = time.perf_counter()
        run = bm25_search(index, {str(i): q["query"] for i, q in enumerate(rows)}, k=10)
        hits = sum(q["doc_id"] in run[str(i)] for i, q in enumerate(rows))
        out[f"{kind}_self_top10"] = hits / len(rows)
        out[f"{kind}_scored"] = len(rows)
        out[f"{kind}_bm25_seconds"] = round(time.perf_counter() - start, 2)
    return out


def throughput_report(manifest: dict, docs: list, model_name: str, num_docs: int, batch_size: int,
                      bs: tuple[int, ...]) -> dict:
    """docs/s of keyword-LM docids and of B pseudo-queries, each after one untimed compile pass on the same
    shapes."""
    import jax

    from zerogr_jax.indexing.docids import KeywordLMScheme
    from zerogr_jax.indexing.queries import QueryPrompt, generate_pseudo_queries
    from zerogr_jax.indexing.terms import TermStats
    from zerogr_jax.models.loading import load_model
    from zerogr_jax.text_generator import JaxTextGenerator

    model = load_model(model_name)
    gen = JaxTextGenerator(model, batch_size=batch_size)
    sample = docs[:num_docs]
    stats = TermStats.from_documents(docs)
    out = {"model": model_name, "devices": [str(d) for d in jax.devices()], "documents": len(sample),
           "batch_size": batch_size}

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        return first, time.perf_counter() - t0

    scheme = KeywordLMScheme(gen, stats, batch_size=batch_size)
    first, steady = timed(lambda: scheme.assign_records(sample))
    out["docids"] = {"docs_per_s": len(sample) / steady, "seconds": steady, "first_pass_seconds": first}
    prompt = QueryPrompt(manifest["instruction"])
    for b in bs:
        first, steady = timed(lambda: generate_pseudo_queries(gen, sample, prompt, num_queries=b,
                                                              batch_size=max(1, batch_size // b)))
        out[f"queries_B{b}"] = {"docs_per_s": len(sample) / steady, "seconds": steady, "first_pass_seconds": first}
    return out


def markdown(report: dict) -> str:
    d, q = report["docids"], report.get("queries")
    name = report.get("collection") or report["index"]
    lines = [f"### Index quality: {name} ({report['docid_scheme']}, {d['documents']} documents)", "",
             "| measure | value |", "| --- | --- |",
             f"| docid collision rate before / after resolution | {d['collision_rate_before']:.4f} / "
             f"{d['collision_rate_after']:.4f} |",
             f"| shared groups / of them with differing texts | {d['shared_groups']} / "
             f"{d['shared_groups_texts_differ']} |",
             f"| titles differing only by a number: documents / sharing a docid after resolution | "
             f"{d['titles_differing_only_by_a_number']['documents']} / "
             f"{d['titles_differing_only_by_a_number']['sharing_a_docid_after']} |",
             f"| docids extended / documents sharing a docid | {d['docids_extended']} / "
             f"{d['docs_sharing_a_docid_after']} |",
             f"| docid words present in the document (final) | {d['word_share_in_document']:.3f} |"]
    if d["raw_word_share_in_document"] is not None:
        lines.append(f"| docid words present in the document (raw) | {d['raw_word_share_in_document']:.3f} |")
    lines.append(f"| docid length in words: mean (min-max) | {d['length_words']['mean']:.2f} "
                 f"({d['length_words']['min']}-{d['length_words']['max']}) |")
    if q:
        if q["generated"]:
            dropped = ", ".join(f"{k} {v}" for k, v in q["dropped"].items() if v) or "none"
            lines += [f"| pseudo-queries kept / generated | {q['kept']} / {q['generated']} (dropped: {dropped}) |",
                      f"| pseudo-query retrieves its document in BM25 top 10 | {q['pseudo_self_top10']:.3f} |"]
        if q.get("doc_as_query_self_top10") is not None:
            lines.append(f"| document-as-query retrieves its document in BM25 top 10 | "
                         f"{q['doc_as_query_self_top10']:.3f} |")
    for stage, info in report.get("build_speed", {}).items():
        if info.get("docs_per_s"):
            lines.append(f"| index build, {stage} stage | {info['docs_per_s']:.1f} docs/s |")
    t = report.get("throughput")
    if t:
        lines.append(f"| LM docids ({t['model']}, batch {t['batch_size']}) | {t['docids']['docs_per_s']:.2f} docs/s |")
        for k, v in t.items():
            if k.startswith("queries_B"):
                lines.append(f"| LM pseudo-queries {k[8:]} | {v['docs_per_s']:.2f} docs/s |")
    lines += ["", f"Command: `{report['command']}`; machine: {report['machine']['platform']}, "
                  f"{report['machine']['cpus']} CPUs."]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--index", required=True, help="index directory (written by zerogr index)")
    p.add_argument("--build", action="store_true", help="build the index first (resumes if partly built)")
    p.add_argument("--collection", help="with --build: registered collection")
    p.add_argument("--corpus", help="corpus directory (default: the manifest's corpus path)")
    p.add_argument("--scheme", default="tfidf_keywords", help="with --build: docid scheme")
    p.add_argument("--num-queries", type=int, default=0, help="with --build: B (needs the LM when > 0)")
    p.add_argument("--max-docs", type=int, default=None, help="with --build")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--max-queries", type=int, default=None, help="score at most this many queries per kind")
    p.add_argument("--throughput", action="store_true", help="time the LM (needs the model)")
    p.add_argument("--throughput-docs", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bs", default="4,16", help="B values for the throughput measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="report JSON (default INDEX/quality.json)")
    args = p.parse_args(argv)
    index = pathlib.Path(args.index)

    if args.build:
        from zerogr_jax.indexing.index_builder import main as index_cli

        build_argv = ["--out", str(index), "--docid-scheme", args.scheme, "--num-queries", str(args.num_queries),
                      "--model", args.model, "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
        build_argv += ["--collection", args.collection] if args.collection else []
        build_argv += ["--corpus", args.corpus] if args.corpus else []
        build_argv += ["--max-docs", str(args.max_docs)] if args.max_docs else []
        if args.scheme != "keyword_lm" and args.num_queries == 0:
            build_argv.append("--no-trie")  # no tokenizer needed for the quality numbers
        index_cli(build_argv)

    manifest = json.loads((index / "manifest.json").read_text("utf-8"))
    corpus = pathlib.Path(args.corpus or manifest["corpus"]["path"])
    max_docs = manifest["config"]["max_docs"]
    docs_list = []
    for d in iter_corpus(corpus, on_invalid=manifest["corpus"].get("on_invalid", "error")):
        if max_docs is not None and len(docs_list) >= max_docs:
            break
        docs_list.append(d)
    docs = {d.doc_id: d for d in docs_list}
    rows = read_jsonl(index / "docids.jsonl")
    if len(rows) != len(docs):
        raise SystemExit(f"{index}/docids.jsonl has {len(rows)} rows for {len(docs)} corpus documents")

    report = {"index": str(index), "collection": manifest.get("collection"),
              "docid_scheme": manifest["docid_scheme"]["name"], "model": manifest.get("model"),
              "command": " ".join([os.path.basename(sys.executable), *sys.argv]) if argv is None else
              "index_quality.py " + " ".join(argv),
              "machine": machine()}
    report["docids"] = docid_report(rows, docs, manifest)
    report["queries"] = query_report(read_jsonl(index / "queries.jsonl"), docs, manifest, args.max_queries,
                                     args.seed)
    report["build_speed"] = manifest.get("run", {}).get("stages", {})
    if args.throughput:
        report["throughput"] = throughput_report(manifest, docs_list, args.model, args.throughput_docs,
                                                 args.batch_size, tuple(int(b) for b in args.bs.split(",")))
    atomic_write_json(args.out or index / "quality.json", report)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
