"""Retrieval: the docid trie (`trie`), trie-constrained decoding in one compiled loop (`decoding`), exact docid
scoring (`docid_scoring`, `candidate_scoring`), the search stage (`search`) and the public free-text retriever
(`retriever`). Reads what indexing writes through `zerogr_jax.retrieval_contract`; never imports training."""
