"""Docid design ablation (paper section 6): keyword docids (LM-written or TF-IDF) vs title vs random string vs atomic
id, with each scheme's collision rate before and after resolution.

    python experiments/ablate_docids.py --collection cranfield                      # index, train, search each
    python experiments/ablate_docids.py --collection cranfield --index-only --values keyword_lm --set index.max_docs=256

A thin front of experiments/sweep.py over `index.docid_scheme` (same options); writes
experiments/results/ablate_docids[...].json and .png.
"""

from experiments import sweep

if __name__ == "__main__":
    ap = sweep.arguments("index.docid_scheme", "tfidf_keywords,title,random_string,atomic", "ablate_docids")
    sweep.run_sweep(sweep.parse(ap), what="docid design")
