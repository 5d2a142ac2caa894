"""Near-duplicate removal: the Alpaca / Self-Instruct ROUGE-L rule, made fast without changing its decisions.

The rule: walk the texts in order and keep one iff its ROUGE-L F-measure with EVERY text kept so far is <= threshold.
Done naively that is one LCS per (candidate, kept) pair. But an LCS can never be longer than the number of words two
texts share, so 2*shared/(m+n) is an exact upper bound on ROUGE-L (it includes the length bound 2*min(m,n)/(m+n)).
Shared-word counts for thousands of pairs come from one sparse matrix product; only the few pairs whose bound exceeds
the threshold get a full (bit-parallel) LCS. Same decisions as the naive rule, hundreds of times faster.
method="minhash" (MinHash/LSH) proposes candidates in near-linear time for very large sets, at a small loss of recall.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from lecture_utils.errors import KitError
from lecture_utils.text.paraphrase import SEMANTIC_THRESHOLD, keep_distinct

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# Bounds use a threshold a hair lower than the real one, so float rounding in the final score can never be pruned away.
_EPS = 1e-9


class DedupError(KitError, ValueError):
    """Bad input to near_duplicates."""


@dataclass
class Drop:
    index: int  # position of the dropped text in the input
    closest: int  # position of the kept text it was most similar to
    score: float  # their ROUGE-L F-measure


@dataclass
class DedupResult:
    kept: list[int]
    dropped: list[Drop]
    threshold: float
    method: str
    pairs_total: int = 0  # (candidate, kept) pairs the naive rule would score
    pairs_scored: int = 0  # pairs that actually got a full LCS
    stats: dict = field(default_factory=dict)

    def table(self, texts: list[str]):
        """Dropped texts next to the kept text that beat them, most similar first (a pandas DataFrame)."""
        import pandas as pd

        rows = [
            {"dropped": texts[d.index], "closest_kept": texts[d.closest], "score": round(d.score, 3),
             "index": d.index, "closest": d.closest}
            for d in self.dropped
        ]
        df = pd.DataFrame(rows, columns=["dropped", "closest_kept", "score", "index", "closest"])
        return df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def rouge_tokens(text: str) -> list[str]:
    """Word tokens exactly as rouge-score's default tokenizer makes them (lower-case, a-z0-9 runs, no stemming).

    Not tokens.words on purpose: these must stay rouge-score's, so near-duplicate decisions match the reference."""
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def _fmeasure(lcs: int, m: int, n: int) -> float:
    # Same float operations as rouge-score (precision, recall, then 2PR/(P+R)), so scores match it bit for bit.
    if lcs == 0:
        return 0.0
    precision, recall = lcs / n, lcs / m
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence, bit-parallel: one pass over b, a's positions packed in an int."""
    return _lcs_with_masks(_masks(a), len(a), b)


def _masks(a: list) -> dict:
    """For each token of a, an int whose bit i is set where a[i] is that token."""
    masks: dict = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def _lcs_with_masks(masks: dict, m: int, b: list) -> int:
    # Hyyro's bit-vector LCS: zero bits of v mark the positions of a that are used in an LCS so far.
    full = (1 << m) - 1
    v = full
    get = masks.get
    for tok in b:
        u = v & get(tok, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure between two texts on lower-cased word tokens (same value as rouge-score's rougeL)."""
    ta, tb = rouge_tokens(a), rouge_tokens(b)
    if not ta or not tb:
        return 0.0
    return _fmeasure(lcs_length(ta, tb), len(ta), len(tb))


def pairwise_similarities(texts: list[str], max_pairs: int = 5000, seed: int = 0) -> list[float]:
    """ROUGE-L of every pair of texts, or of max_pairs random pairs when there are more (embedding cosine of pairs:
    semantic_similarities)."""
    n = len(texts)
    total = n * (n - 1) // 2
    if total <= max_pairs:
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    else:
        rng, seen = random.Random(seed), set()
        while len(seen) < max_pairs:
            a, b = rng.sample(range(n), 2)
            seen.add((min(a, b), max(a, b)))
        pairs = sorted(seen)
    return [rouge_l(texts[a], texts[b]) for a, b in pairs]


def near_duplicates(texts: list[str], threshold: float = 0.7, method: str = "rouge", **options) -> DedupResult:
    """Keep each text iff its similarity to every text kept before it is <= threshold; input order decides who wins.

    method: "rouge" (exact ROUGE-L with pruning, the default), "exhaustive" (the same rule scoring every pair; slow,
    for checking), "minhash" (MinHash/LSH candidates, then exact ROUGE-L; options: num_perm, bands, ngram, seed) or
    "embedding" (cosine of WordLlama embeddings: catches paraphrases that share few words).
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise DedupError("near_duplicates needs a list of strings: pass e.g. [i.instruction for i in instructions].")
    if not 0.0 <= threshold <= 1.0:
        raise DedupError(f"threshold must be between 0 and 1, got {threshold}: 0.7 is the Alpaca setting.")
    texts = list(texts)
    unknown = set(options) - ({"num_perm", "bands", "ngram", "seed"} if method == "minhash" else set())
    if unknown:
        raise DedupError(f"unknown option(s) {', '.join(sorted(unknown))} for method={method!r}; "
                         "only 'minhash' takes num_perm, bands, ngram and seed.")
    if method == "rouge":
        return _dedup_rouge(texts, threshold)
    if method == "exhaustive":
        return _dedup_exhaustive(texts, threshold)
    if method == "minhash":
        return _dedup_minhash(texts, threshold, **options)
    if method == "embedding":
        return semantic_duplicates(texts, threshold)
    raise DedupError(f"unknown method {method!r}: use 'rouge', 'exhaustive', 'minhash' or 'embedding'.")


def _token_ids(texts: list[str]) -> list[list[int]]:
    vocab: dict[str, int] = {}
    return [[vocab.setdefault(t, len(vocab)) for t in rouge_tokens(text)] for text in texts]


def _dedup_exhaustive(texts: list[str], threshold: float) -> DedupResult:
    """The rule as written: every candidate against every kept text, one LCS each."""
    docs = _token_ids(texts)
    kept: list[int] = []
    dropped: list[Drop] = []
    for i, x in enumerate(docs):
        best, closest = -1.0, -1
        if x:
            masks = _masks(x)
            for j in kept:
                y = docs[j]
                if y:
                    score = _fmeasure(_lcs_with_masks(masks, len(x), y), len(x), len(y))
                    if score > best:
                        best, closest = score, j
        if best > threshold:
            dropped.append(Drop(i, closest, best))
        else:
            kept.append(i)
    total = _naive_pairs(docs, kept)
    return DedupResult(kept, dropped, threshold, "exhaustive", total, total)


def _naive_pairs(docs: list[list[int]], kept: list[int]) -> int:
    # The naive rule compares candidate i with every text kept before i.
    total, n_kept, k = 0, 0, 0
    for i in range(len(docs)):
        total += n_kept
        if k < len(kept) and kept[k] == i:
            n_kept += 1
            k += 1
    return total


def _element_matrix(docs: list[list[int]]):
    """Sparse 0/1 matrix, one row per text, one column per (token, nth occurrence): row products count shared tokens."""
    from scipy.sparse import csr_matrix

    elem_id: dict[tuple[int, int], int] = {}
    cols: list[int] = []
    indptr = [0]
    for x in docs:
        cols.extend(elem_id.setdefault(e, len(elem_id)) for e in zip(x, _occurrences(x)))
        indptr.append(len(cols))
    data = np.ones(len(cols), dtype=np.float32)
    return csr_matrix((data, np.array(cols, dtype=np.int64), np.array(indptr)), shape=(len(docs), max(1, len(elem_id))))


def _dedup_rouge(texts: list[str], threshold: float, dense_cols: int = 64, block_cells: int = 4_000_000,
                 max_block: int = 1024) -> DedupResult:
    """Exact rule, pruned: LCS <= shared tokens, so 2*shared/(m+n) bounds ROUGE-L; only pairs above t get an LCS.

    Shared-token counts for a block of candidates against all kept texts come from one matrix product: the most
    frequent tokens as a dense BLAS product, the rest as a sparse one (an inverted index in matrix form).
    """
    docs = _token_ids(texts)
    lengths = np.array([len(x) for x in docs], dtype=np.float64)
    X = _element_matrix(docs)
    common = np.argsort(-np.asarray(X.sum(axis=0)).ravel(), kind="stable")[:dense_cols]
    rare = np.setdiff1d(np.arange(X.shape[1]), common)
    dense, sparse = X[:, common].toarray(), X[:, rare].tocsr()
    t = threshold - _EPS

    def overlap_bound(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        shared = dense[rows] @ dense[cols].T + (sparse[rows] @ sparse[cols].T).toarray()
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * shared / (lengths[rows, None] + lengths[None, cols])

    kept: list[int] = []
    dropped: list[Drop] = []
    scored = bounded = 0
    start = 0
    while start < len(docs):
        # Blocks shrink as the kept pool grows, so the bound matrix stays ~block_cells entries.
        size = int(min(max_block, max(64, block_cells // max(1, len(kept)))))
        block = np.arange(start, min(start + size, len(docs)))
        cands: list[list[tuple[float, int]]] = [[] for _ in block]
        if kept:
            pool = np.array(kept)
            bound = overlap_bound(block, pool)
            bounded += bound.size
            rows, cols = np.nonzero(bound > t)
            for r, c in zip(rows.tolist(), cols.tolist()):
                cands[r].append((float(bound[r, c]), int(pool[c])))
        inner = overlap_bound(block, block)  # the block against itself, for texts kept earlier in this block
        new_kept = np.empty(len(block), dtype=np.int64)  # block rows kept so far
        n_new = 0
        for r, i in enumerate(block.tolist()):
            if n_new:
                prev = new_kept[:n_new]
                bounded += n_new
                hits = prev[inner[r, prev] > t]
                cands[r].extend((float(inner[r, c]), start + int(c)) for c in hits)
            best, closest, n_scored = _best_match(docs[i], docs, cands[r])
            scored += n_scored
            if best > threshold:
                dropped.append(Drop(i, closest, best))
            else:
                kept.append(i)
                new_kept[n_new] = r
                n_new += 1
        start += len(block)
    stats = {"pairs_bounded": bounded, "kept": len(kept), "dropped": len(dropped)}
    return DedupResult(kept, dropped, threshold, "rouge", _naive_pairs(docs, kept), scored, stats)


def _best_match(x: list[int], docs: list[list[int]], cands: list[tuple[float, int]]) -> tuple[float, int, int]:
    """Highest ROUGE-L among candidate (bound, index) pairs, best bounds first; ties go to the earlier text."""
    if not cands or not x:
        return -1.0, -1, 0
    cands.sort(key=lambda c: (-c[0], c[1]))
    masks = _masks(x)
    best, closest, n = -1.0, -1, 0
    for bound, j in cands:
        if bound + 1e-9 < best:
            break  # bounds only fall from here: nobody left can beat the best
        y = docs[j]
        score = _fmeasure(_lcs_with_masks(masks, len(x), y), len(x), len(y))
        n += 1
        if score > best or (score == best and j < closest):
            best, closest = score, j
    return best, closest, n


# --- MinHash / LSH: approximate candidates for very large sets ---------------------------------------------------


def _shingle_hashes(tokens: list[str], ngram: int) -> np.ndarray:
    grams = {" ".join(tokens[k:k + ngram]) for k in range(max(1, len(tokens) - ngram + 1))} if tokens else set()
    # blake2b, not hash(): Python's str hash changes between runs, and results must be reproducible.
    return np.array([int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams],
                    dtype=np.uint64)


def minhash_signatures(texts: list[str], num_perm: int = 128, ngram: int = 1, seed: int = 1) -> np.ndarray:
    """MinHash signature (num_perm values) of each text's set of word n-grams, as a (len(texts), num_perm) array."""
    rng = np.random.default_rng(seed)
    # Multiply-shift hashing: (a*h + b) mod 2**64, top 32 bits; uint64 arrays wrap around, which is the "mod".
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.full((len(texts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    hashes = [_shingle_hashes(rouge_tokens(t), ngram) for t in texts]
    lengths = np.array([len(h) for h in hashes], dtype=np.int64)
    docs = np.flatnonzero(lengths)
    per_chunk = max(1, 4_000_000 // num_perm)  # shingles per chunk, to bound memory
    lo = 0
    while lo < len(docs):
        hi = lo + 1
        total = lengths[docs[lo]]
        while hi < len(docs) and total + lengths[docs[hi]] <= per_chunk:
            total += lengths[docs[hi]]
            hi += 1
        chunk = docs[lo:hi]
        h = np.concatenate([hashes[i] for i in chunk])
        perm = ((h[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).astype(np.uint32)
        offsets = np.concatenate([[0], np.cumsum(lengths[chunk])[:-1]])
        sig[chunk] = np.minimum.reduceat(perm, offsets, axis=0)
        lo = hi
    return sig


def _occurrences(x: list[int]) -> list[int]:
    seen: dict[int, int] = defaultdict(int)
    out = []
    for tok in x:
        seen[tok] += 1
        out.append(seen[tok])
    return out


def _dedup_minhash(texts: list[str], threshold: float, num_perm: int = 128, bands: int = 32,
                   ngram: int = 1, seed: int = 1) -> DedupResult:
    """LSH buckets propose candidates, exact ROUGE-L decides: fast on huge sets, but misses pairs LSH never proposes."""
    if bands < 1 or num_perm % bands:
        raise DedupError(f"num_perm ({num_perm}) must be a multiple of bands ({bands}); e.g. num_perm=128, bands=32.")
    rows = num_perm // bands
    # ROUGE-L above t needs more than t*(m+n)/2 shared words: a word Jaccard near t/(2-t); 0.1 below it allows for noise.
    min_jaccard = threshold / (2 - threshold) - 0.1
    sig = minhash_signatures(texts, num_perm, ngram, seed)
    docs = _token_ids(texts)
    # (token, nth occurrence) sets: their intersection counts shared tokens, which bounds the LCS as in the exact method
    elements = [set(zip(x, _occurrences(x))) for x in docs]
    # One 64-bit key per band: a collision only adds a candidate, which the exact check then rejects.
    mix = np.random.default_rng(seed + 1).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    band_keys = (sig.reshape(len(texts), bands, rows).astype(np.uint64) * mix).sum(axis=2).tolist()
    t = threshold - _EPS
    buckets: list[dict[int, list[int]]] = [defaultdict(list) for _ in range(bands)]
    kept: list[int] = []
    dropped: list[Drop] = []
    scored = 0
    for i, x in enumerate(docs):
        keys = band_keys[i]
        cands = []
        near = list({j for k, key in enumerate(keys) for j in buckets[k].get(key, ())})
        if near:
            # The share of equal signature values estimates Jaccard; skip pairs far below what the threshold needs.
            estimate = (sig[near] == sig[i]).mean(axis=1)
            for j in np.array(near)[estimate >= min_jaccard].tolist():
                bound = 2 * len(elements[i] & elements[j]) / (len(x) + len(docs[j]))
                if bound > t:
                    cands.append((bound, j))
        best, closest, n_scored = _best_match(x, docs, cands)
        scored += n_scored
        if best > threshold:
            dropped.append(Drop(i, closest, best))
        else:
            kept.append(i)
            if x:
                for k, key in enumerate(keys):
                    buckets[k][key].append(i)
    stats = {"bands": bands, "rows": rows, "num_perm": num_perm, "ngram": ngram}
    return DedupResult(kept, dropped, threshold, "minhash", _naive_pairs(docs, kept), scored, stats)


def semantic_duplicates(texts: list[str], threshold: float = SEMANTIC_THRESHOLD) -> DedupResult:
    """The same keep rule as near_duplicates, on embedding cosine (paraphrase.py): keep a text iff its similarity to
    every kept one is at most threshold."""
    kept, dropped = keep_distinct(texts, threshold)
    return DedupResult(kept, [Drop(*d) for d in dropped], threshold, "embedding")
