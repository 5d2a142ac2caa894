"""Paraphrases: an offline embedding check beside ROUGE-L. "What does Jim find in the captain's chest?" and "Which
objects does Jim discover inside the chest?" share few words but mean the same; WordLlama's embeddings (16 MB of
weights inside its PyPI wheel, no network) put them close together.

Pass an `embedder` (load_embedder()) to reuse one across calls; without one, each call loads its own (~0.15 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SEMANTIC_THRESHOLD = 0.75  # WordLlama cosine: paraphrases measured 0.76-0.82, "How old is Lydia/Kitty?" 0.43


def load_embedder() -> Any:
    """The WordLlama model from the files its wheel ships (a plain load() would look for its tokenizer online)."""
    import wordllama

    return wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def embed(texts: list[str], embedder: Any = None) -> np.ndarray:
    """Unit-length embeddings, one row per text."""
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    model = embedder or load_embedder()
    return np.asarray(model.embed(list(texts), norm=True), dtype=np.float32)


def semantic_similarities(texts: list[str], max_pairs: int = 5000, seed: int = 0, embedder: Any = None) -> list[float]:
    """Cosine similarity of every pair of texts (a random sample of max_pairs when there are more)."""
    n = len(texts)
    if n < 2:
        return []
    vectors = embed(texts, embedder)
    sims = vectors @ vectors.T
    i, j = np.triu_indices(n, k=1)
    if len(i) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(i), size=max_pairs, replace=False)
        i, j = i[pick], j[pick]
    return sims[i, j].astype(float).tolist()


def keep_distinct(texts: list[str], threshold: float = SEMANTIC_THRESHOLD,
                  embedder: Any = None) -> tuple[list[int], list[tuple[int, int, float]]]:
    """(kept, dropped): keep a text iff its cosine to every kept one is at most threshold, walking in order; each
    dropped text comes with the kept one closest to it and their cosine."""
    vectors = embed(texts, embedder)
    kept: list[int] = []
    dropped: list[tuple[int, int, float]] = []
    for k in range(len(texts)):
        if kept:
            sims = vectors[kept] @ vectors[k]
            best = int(np.argmax(sims))
            if sims[best] > threshold:
                dropped.append((k, kept[best], float(sims[best])))
                continue
        kept.append(k)
    return kept, dropped
