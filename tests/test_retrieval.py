"""BM25 retrieval: the rank-bm25 reference and the sparse fast path find the same passages."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from lecture_utils.answer.retrieval import BM25Index, FastBM25Index, RetrievalError
from lecture_utils.gather.corpus import book_passages, load_book
from lecture_utils.gather.files import CorpusWarning
from lecture_utils.records import Passage
from lecture_utils.text.tokens import search_words

SHARED_BOOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pg1342.txt"
needs_book = pytest.mark.skipif(not SHARED_BOOK.exists(), reason=f"shared book copy not found at {SHARED_BOOK}")
INDEXES = [BM25Index, FastBM25Index]

TINY = [
    "The baker opens the bakery at five and bakes rye bread and croissants.",
    "A lighthouse keeper climbs the tower every evening to light the lamp for the ships.",
    "The night train to the coast leaves the station at ten; the train has a dining car.",
    "Our bakery sells sourdough bread, and the baker's ovens are fired with wood.",
    "Ships avoid the rocks because the keeper keeps the lamp burning all night.",
    "The garden has roses, tulips and an old apple tree near the wall.",
]


def passages(texts: list[str]) -> list[Passage]:
    out, pos = [], 0
    for i, text in enumerate(texts, 1):
        out.append(Passage(f"doc-s00-p{i:03d}", "tiny.txt", text, pos, pos + len(text)))
        pos += len(text) + 2
    return out


def ids(hits) -> list[str]:
    return [p.id for p, _ in hits]


# ---------------------------------------------------------------- a tiny corpus written for the test


@pytest.mark.parametrize("cls", INDEXES)
def test_relevant_passages_come_first(cls):
    index = cls(passages(TINY))
    assert ids(index.search("When does the bakery open?", k=1)) == ["doc-s00-p001"]
    assert set(ids(index.search("bread from the baker", k=2))) == {"doc-s00-p001", "doc-s00-p004"}
    assert ids(index.search("lighthouse keeper", k=1)) == ["doc-s00-p002"]
    assert ids(index.search("Which TRAIN goes to the coast?", k=1)) == ["doc-s00-p003"]
    hits = index.search("lamp keeper ships", k=5)
    assert ids(hits)[:2] in (["doc-s00-p002", "doc-s00-p005"], ["doc-s00-p005", "doc-s00-p002"])
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


@pytest.mark.parametrize("cls", INDEXES)
def test_only_passages_sharing_a_word_are_returned(cls):
    index = cls(passages(TINY))
    hits = index.search("roses", k=5)
    assert ids(hits) == ["doc-s00-p006"] and hits[0][1] > 0
    assert index.search("submarine", k=5) == []


@pytest.mark.parametrize("cls", INDEXES)
def test_a_word_in_most_passages_still_finds_them(cls):
    # rank-bm25 floors a negative idf at epsilon * mean idf, which is itself negative in such a tiny corpus
    index = cls(passages(["red kite hill", "red kite hill", "red kite hill", "grey heron"]))
    hits = index.search("red", k=5)
    assert ids(hits) == ["doc-s00-p001", "doc-s00-p002", "doc-s00-p003"] and hits[0][1] < 0


@pytest.mark.parametrize("cls", INDEXES)
def test_equal_scores_keep_reading_order(cls):
    texts = ["red kite over the hill", "blue lake", "red kite over the hill", "red kite over the hill"]
    index = cls(passages(texts))
    hits = index.search("kite", k=2)
    assert ids(hits) == ["doc-s00-p001", "doc-s00-p003"] and hits[0][1] == hits[1][1]
    assert ids(index.search("kite", k=5)) == ["doc-s00-p001", "doc-s00-p003", "doc-s00-p004"]


@pytest.mark.parametrize("cls", INDEXES)
@pytest.mark.parametrize("query", ["", "   ", "the of and?", "!!!"])
def test_empty_queries_are_clear_errors(cls, query):
    index = cls(passages(TINY))
    with pytest.raises(RetrievalError, match="(Empty query|only stop words)") as err:
        index.search(query)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cls", INDEXES)
def test_no_passages_or_no_words_are_clear_errors(cls):
    with pytest.raises(RetrievalError, match="No passages to index"):
        cls([])
    with pytest.raises(RetrievalError, match="no searchable words"):
        cls(passages(["The.", "--", "of and the"]))
    with pytest.raises(RetrievalError, match="k >= 1"):
        cls(passages(TINY)).search("bread", k=0)


def test_fast_scores_equal_the_reference_including_the_idf_floor():
    # "lamp" is in most passages, so its plain idf is negative and both must use epsilon * mean idf instead
    texts = TINY + ["lamp oil", "a lamp in the window", "lamp lamp lamp", "the lamp shop sells bread"]
    ref, fast = BM25Index(passages(texts)), FastBM25Index(passages(texts))
    for q in ["lamp", "lamp bread lamp", "keeper of the lamp", "tulips", "bakery train garden"]:
        assert np.array_equal(fast.scores(q), ref.scores(q)), q
        assert fast.search(q, k=3) == ref.search(q, k=3)
    assert fast.idf[fast.vocab["lamp"]] == pytest.approx(0.25 * ref.bm25.average_idf)


def test_batch_search_matches_single_searches():
    index = FastBM25Index(passages(TINY))
    queries = ["bakery bread", "keeper lamp ships", "submarine", "train station coast"]
    batch = index.search_batch(queries, k=3)
    assert len(batch) == 4
    for q, hits in zip(queries, batch):
        single = index.search(q, k=3)
        assert ids(hits) == ids(single)
        assert [s for _, s in hits] == pytest.approx([s for _, s in single])
    with pytest.raises(RetrievalError, match="Query #1"):
        index.search_batch(["bread", "the"])


# ---------------------------------------------------------------- the book


@pytest.fixture(scope="module")
def book_indexes():
    if not SHARED_BOOK.exists():
        pytest.skip(f"shared book copy not found at {SHARED_BOOK}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        ps = book_passages(load_book(SHARED_BOOK))
    return ps, BM25Index(ps), FastBM25Index(ps)


@needs_book
@pytest.mark.parametrize("cls_index", [1, 2])
def test_book_query_about_the_entail_finds_the_entail(book_indexes, cls_index):
    index = book_indexes[cls_index]
    hits = index.search("Describe the entail on Longbourn", k=4)
    assert len(hits) == 4 and "entail" in hits[0][0].text.lower()
    hits = index.search("the entail of the Longbourn estate", k=4)
    assert sum("entail" in p.text.lower() for p, _ in hits) >= 3
    pemberley = index.search("Pemberley", k=3)
    assert all("Pemberley" in p.text for p, _ in pemberley)


def book_queries(ps: list[Passage], n: int, seed: int = 7) -> list[str]:
    """Queries made of a few words of random passages (deterministic), like questions about them."""
    rng = random.Random(seed)
    queries = []
    for _ in range(n):
        words = [w for w in rng.choice(ps).text.split() if search_words(w)]
        queries.append(" ".join(rng.sample(words, min(len(words), rng.randint(2, 6)))))
    return queries


@needs_book
def test_fast_and_reference_agree_on_the_book(book_indexes):
    ps, ref, fast = book_indexes
    queries = book_queries(ps, 150) + ["Who is Mr. Collins?", "Lydia and Wickham elope", "Netherfield ball"]
    same = sum(ids(ref.search(q, k=5)) == ids(fast.search(q, k=5)) for q in queries)
    assert same == len(queries)
    batch = fast.search_batch(queries, k=5)
    assert sum(ids(b) == ids(ref.search(q, k=5)) for q, b in zip(queries, batch)) >= 0.95 * len(queries)
    q = queries[0]
    assert np.array_equal(ref.scores(q), fast.scores(q))
