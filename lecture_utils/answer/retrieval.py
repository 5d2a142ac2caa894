"""BM25 retrieval over passages (Stage 3): find the passages a question is about.

`BM25Index` wraps rank-bm25, the readable reference the notebooks teach with. `FastBM25Index` computes the very
same Okapi BM25 scores (k1=1.5, b=0.75, idf floor epsilon * mean idf) from a sparse term x passage matrix, so a
query touches only the passages that contain its words; the factory uses it for thousands of queries.
Both read texts with tokens.search_words.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from rank_bm25 import BM25Okapi
from scipy import sparse

from lecture_utils.errors import KitError
from lecture_utils.records import Passage
from lecture_utils.text.tokens import search_words


class RetrievalError(KitError, ValueError):
    """A search that cannot run (no passages, an empty query); the message says how to fix it."""


def _query_tokens(query: str) -> list[str]:
    if not isinstance(query, str) or not query.strip():
        raise RetrievalError("Empty query: pass the question or instruction to search for.")
    tokens = search_words(query)
    if not tokens:
        raise RetrievalError(f"Query {query!r} has only stop words or punctuation: add a content word (a name, "
                             "a place, a topic).")
    return tokens


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise RetrievalError(f"k={k!r}: ask for at least one passage (k >= 1).")


def _tokenized(passages: Sequence[Passage]) -> list[list[str]]:
    if not passages:
        raise RetrievalError("No passages to index: load a corpus first (corpus.load_corpus) and pass its passages.")
    tokens = [search_words(p.text) for p in passages]
    if not any(tokens):
        raise RetrievalError("The passages contain no searchable words (only stop words or punctuation): "
                             "check the corpus you loaded.")
    return tokens


def _top_k(doc_ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (doc, score), highest first; equal scores in reading order, so results are stable."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # k-th largest; keep everything tied with it
        keep = scores >= kth
        doc_ids, scores = doc_ids[keep], scores[keep]
    order = np.lexsort((doc_ids, -scores))[:k]
    return list(zip(doc_ids[order].tolist(), scores[order].tolist()))


class BM25Index:
    """The reference: rank-bm25's BM25Okapi over tokenized passages."""

    def __init__(self, passages: Sequence[Passage], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        self.passages = list(passages)
        self.by_id = {p.id: p for p in self.passages}
        self.bm25 = BM25Okapi(_tokenized(self.passages), k1=k1, b=b, epsilon=epsilon)

    def __len__(self) -> int:
        return len(self.passages)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for the query, in passage order."""
        return self.bm25.get_scores(_query_tokens(query))

    def search(self, query: str, k: int = 5) -> list[tuple[Passage, float]]:
        """The k passages that match the query best (only those sharing a word with it), highest score first."""
        _check_k(k)
        tokens = _query_tokens(query)
        scores = self.bm25.get_scores(tokens)
        words = set(tokens)
        # in a tiny corpus a very common word can score below zero; "shares a word" is the test, not "score > 0"
        matched = np.array([i for i, freqs in enumerate(self.bm25.doc_freqs) if not words.isdisjoint(freqs)], int)
        return [(self.passages[i], s) for i, s in _top_k(matched, scores[matched], k)]

    def search_batch(self, queries: Iterable[str], k: int = 5) -> list[list[tuple[Passage, float]]]:
        return [self.search(q, k) for q in queries]


class FastBM25Index:
    """The same scores as BM25Index from a sparse matrix: a query only touches passages that contain its words."""

    def __init__(self, passages: Sequence[Passage], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        self.passages = list(passages)
        self.by_id = {p.id: p for p in self.passages}
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.vocab: dict[str, int] = {}  # term -> row, in order of first appearance (as rank-bm25's idf dict)
        term_ids: list[int] = []
        doc_len: list[int] = []
        for tokens in _tokenized(self.passages):
            term_ids += [self.vocab.setdefault(t, len(self.vocab)) for t in tokens]
            doc_len.append(len(tokens))
        n, v = len(self.passages), len(self.vocab)
        lengths = np.array(doc_len)
        # one entry per token; summing the duplicates of a (term, passage) cell gives the term's frequency there
        tf = sparse.csr_matrix((np.ones(len(term_ids)), (np.array(term_ids), np.repeat(np.arange(n), lengths))),
                               shape=(v, n))
        tf.sum_duplicates()
        self.avgdl = sum(doc_len) / n
        # idf exactly as rank-bm25 computes it (same order of summation), so the two indexes rank identically
        df = np.diff(tf.indptr)
        idf = [math.log(n - f + 0.5) - math.log(f + 0.5) for f in df.tolist()]
        self.average_idf = sum(idf) / len(idf)
        floor = epsilon * self.average_idf
        self.idf = np.array([floor if x < 0 else x for x in idf])
        dl = lengths[tf.indices]
        weights = np.repeat(self.idf, df) * (tf.data * (k1 + 1) / (tf.data + k1 * (1 - b + b * dl / self.avgdl)))
        self.matrix = sparse.csr_matrix((weights, tf.indices, tf.indptr), shape=(v, n))
        bounds = self.matrix.indptr.tolist()
        # each term's (passages, weights) as views into the matrix: no per-query slicing arithmetic
        self._postings = [(self.matrix.indices[lo:hi], self.matrix.data[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]

    def __len__(self) -> int:
        return len(self.passages)

    def _score(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(scores of all passages, mask of the passages that contain a query word)."""
        scores = np.zeros(len(self.passages))
        matched = np.zeros(len(self.passages), bool)
        for term in tokens:
            row = self.vocab.get(term)
            if row is not None:  # added in query order, as rank-bm25 does, so the sums are bit-identical
                docs, weights = self._postings[row]
                scores[docs] += weights
                matched[docs] = True
        return scores, matched

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for the query, in passage order."""
        return self._score(_query_tokens(query))[0]

    def search(self, query: str, k: int = 5) -> list[tuple[Passage, float]]:
        """The k passages that match the query best (only those sharing a word with it), highest score first."""
        _check_k(k)
        scores, matched = self._score(_query_tokens(query))
        candidates = np.flatnonzero(matched)
        return [(self.passages[i], s) for i, s in _top_k(candidates, scores[candidates], k)]

    def search_batch(self, queries: Iterable[str], k: int = 5) -> list[list[tuple[Passage, float]]]:
        """Many queries at once: one sparse (queries x terms) @ (terms x passages) product per chunk of queries.
        Same ranking as search(), except that a passage whose score sums to exactly 0 is left out."""
        _check_k(k)
        queries = list(queries)
        rows, cols = [], []
        for i, q in enumerate(queries):
            try:
                tokens = _query_tokens(q)
            except RetrievalError as e:
                raise RetrievalError(f"Query #{i}: {e}") from None
            for term in tokens:
                if term in self.vocab:
                    rows.append(i)
                    cols.append(self.vocab[term])
        counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(queries), len(self.vocab)))
        chunk = max(16, min(4096, 4_000_000 // len(self.passages)))  # bounds the size of the product in memory
        results = []
        for c in range(0, len(queries), chunk):
            product = (counts[c:c + chunk] @ self.matrix).tocsr()
            for r in range(product.shape[0]):
                lo, hi = product.indptr[r], product.indptr[r + 1]
                hits = _top_k(product.indices[lo:hi], product.data[lo:hi], k)
                results.append([(self.passages[i], s) for i, s in hits])
        return results
