"""Stage 3: BM25 retrieval, grounded answers with citations, and the checks against the passages."""
