"""Pseudo-queries per document, B in {1, 4, 8, 16} (paper section 6): indexing time vs retrieval quality.

    python experiments/ablate_queries_per_doc.py --collection cranfield                # index, train, search each B
    python experiments/ablate_queries_per_doc.py --index-only --set index.max_docs=64  # indexing cost only

A thin front of experiments/sweep.py over `index.num_queries` (B LM-sampled pseudo-queries per document, on top of
the document-as-query row); writes experiments/results/ablate_queries_per_doc[...].json and .png.
"""

from experiments import sweep

if __name__ == "__main__":
    ap = sweep.arguments("index.num_queries", "1,4,8,16", "ablate_queries_per_doc")
    sweep.run_sweep(sweep.parse(ap), what="pseudo-queries per document (B)")
