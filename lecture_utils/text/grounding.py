"""Grounding checks: does the retrieved text support each sentence of an answer, and are the citations honest?

Support is lexical (no model needed, runs anywhere): the share of a sentence's content words found in the best single
retrieved passage, blended with the share of its word pairs (bigrams) found there. It catches invented names, numbers
and events; it cannot tell a faithful paraphrase from a distortion that reuses the passage's words. Coverage tables
show which chapters (or documents) the dataset draws on, so the next round of instructions can fill the gaps.
"""

from __future__ import annotations

import dataclasses
import html
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import pandas as pd

from lecture_utils.errors import KitError
from lecture_utils.records import Passage, QAPair
from lecture_utils.text.refusal import says_not_in_text
from lecture_utils.text.sentences import CITATION, sentence_spans
from lecture_utils.text.tokens import STOP_WORDS, normal_form, words

SUPPORT_THRESHOLD = 0.6  # a sentence with half its content words invented scores about 0.5
BIGRAM_WEIGHT = 0.25  # the rest of the score is the content-word share


class GroundingError(KitError, ValueError):
    """Bad input to a grounding check."""


@dataclass
class SentenceSupport:
    sentence: str
    score: float  # 0..1, best over the passages
    supported: bool  # score >= threshold
    passage: int | None = None  # index of the best passage in the list given, None if no words to check
    start: int = 0  # character offsets of the sentence in the answer
    end: int = 0


def _raw_words(text: str) -> list[str]:
    return words(CITATION.sub(" ", text), ascii_only=True)  # a-z0-9 words: the scores were measured on them


def _words(text: str) -> list[str]:
    return [normal_form(w) for w in _raw_words(text)]


def content_words(text: str) -> list[str]:
    """Lower-cased, lightly normalised words of text without stop words or citations."""
    return [normal_form(w) for w in _raw_words(text) if w not in STOP_WORDS and w.removesuffix("'s") not in STOP_WORDS]


def _bigrams(tokens: list[str]) -> set[tuple[str, str]]:
    return set(zip(tokens, tokens[1:]))


def support_score(sentence: str, passage_text: str) -> float:
    """How well one passage supports one sentence: content-word share blended with bigram share (0..1)."""
    return _support(content_words(sentence), _words(sentence), set(_words(passage_text)),
                    _bigrams(_words(passage_text)))


def _support(content: list[str], tokens: list[str], passage_words: set[str], passage_bigrams: set) -> float:
    if not content:
        return 1.0
    word_share = sum(w in passage_words for w in content) / len(content)
    grams = _bigrams(tokens)
    gram_share = sum(g in passage_bigrams for g in grams) / len(grams) if grams else word_share
    return (1 - BIGRAM_WEIGHT) * word_share + BIGRAM_WEIGHT * gram_share


def _text_of(passage: str | Passage) -> str:
    if isinstance(passage, Passage):
        return passage.text  # a Passage where its text was meant: forgiving, since the intent is clear
    if not isinstance(passage, str):
        raise GroundingError(f"passage texts must be strings or Passages, got {type(passage).__name__}: "
                        "pass [p.text for p in passages].")
    return passage


def sentence_support(answer: str, passages_texts: list[str], threshold: float = SUPPORT_THRESHOLD
                     ) -> list[SentenceSupport]:
    """Support of each answer sentence by its best single passage; a sentence with no content words counts as supported."""
    prepared = [(set(_words(t)), _bigrams(_words(t))) for t in map(_text_of, passages_texts)]
    out = []
    for s, e in sentence_spans(answer):
        sentence = answer[s:e]
        content, tokens = content_words(sentence), _words(sentence)
        if not content:
            out.append(SentenceSupport(sentence, 1.0, True, None, s, e))
            continue
        scores = [_support(content, tokens, seen, grams) for seen, grams in prepared]
        best = max(range(len(scores)), key=scores.__getitem__) if scores else None
        score = scores[best] if scores else 0.0
        out.append(SentenceSupport(sentence, score, score >= threshold, best, s, e))
    return out


def grounding_score(answer: str, passage_texts: list[str], threshold: float = SUPPORT_THRESHOLD) -> float:
    """Share of the answer's sentences that the passages support (0.0 for an empty answer)."""
    support = sentence_support(answer, passage_texts, threshold)
    return sum(s.supported for s in support) / len(support) if support else 0.0


def _by_id(passages: Iterable[Passage] | Mapping[str, Passage]) -> dict[str, Passage]:
    return dict(passages) if isinstance(passages, Mapping) else {p.id: p for p in passages}


def pair_grounding(pair: QAPair, passages: Iterable[Passage] | Mapping[str, Passage],
                   threshold: float = SUPPORT_THRESHOLD) -> float | None:
    """Grounding of a pair against its retrieved passages; None for a "not in the text" answer, which claims nothing."""
    if says_not_in_text(pair):
        return None
    by_id = _by_id(passages)
    texts = [by_id[r.id].text for r in pair.retrieved if r.id in by_id]
    return grounding_score(pair.answer, texts, threshold)


def add_grounding(pairs: list[QAPair], passages: Iterable[Passage] | Mapping[str, Passage],
                  threshold: float = SUPPORT_THRESHOLD) -> list[QAPair]:
    """Copies of the pairs with .grounding filled in (None for "not in the text" answers), for the curation panel."""
    by_id = _by_id(passages)
    return [dataclasses.replace(p, grounding=pair_grounding(p, by_id, threshold)) for p in pairs]


def inline_citations(answer: str) -> list[str]:
    """Passage ids cited in the answer text itself, e.g. "[ch12-p004]", in order of appearance."""
    ids = []
    for group in CITATION.findall(answer):
        ids.extend(i.strip() for i in re.split(r"[,;]", group))
    return list(dict.fromkeys(ids))


def check_citations(pair: QAPair) -> list[str]:
    """Problems with a pair's citations (empty list = fine): ids not retrieved, or no citation for a real answer."""
    retrieved = {r.id for r in pair.retrieved}
    cited = list(dict.fromkeys(list(pair.cited) + inline_citations(pair.answer)))
    problems = [f"cites {cid}, which is not one of the retrieved passages" for cid in cited if cid not in retrieved]
    if says_not_in_text(pair):
        if cited:
            problems.append(f"says the passages do not contain the answer, yet cites {', '.join(cited)}")
    elif not cited:
        problems.append("cites no passage, though it answers from the text")
    return problems


def mark_unsupported(answer: str, passages_texts: list[str], threshold: float = SUPPORT_THRESHOLD,
                     fmt: str = "html") -> str:
    """The answer with unsupported sentences marked: fmt "html" (<mark> with the score as tooltip) or "markdown"."""
    if fmt not in ("html", "markdown"):
        raise GroundingError(f"fmt must be 'html' or 'markdown', got {fmt!r}.")
    out, pos = [], 0
    escape = html.escape if fmt == "html" else (lambda s: s)
    for s in sentence_support(answer, passages_texts, threshold):
        out.append(escape(answer[pos:s.start]))
        text = escape(answer[s.start:s.end])
        if s.supported:
            out.append(text)
        elif fmt == "html":
            out.append(f'<mark title="support {s.score:.2f}: not found in the retrieved passages">{text}</mark>')
        else:
            out.append(f"**[unsupported {s.score:.2f}]** _{text}_")
        pos = s.end
    out.append(escape(answer[pos:]))
    return "".join(out)


# --- Coverage ---------------------------------------------------------------------------------------------------


def _units_in_order(passages: dict[str, Passage]) -> list:
    units = list(dict.fromkeys(p.unit for p in passages.values()))
    if all(isinstance(u, int) for u in units):
        return sorted(units)
    return units


def coverage_table(pairs: list[QAPair], passages: Iterable[Passage] | Mapping[str, Passage]) -> pd.DataFrame:
    """Pairs citing each chapter (or document), by category: rows every chapter/document, columns the categories.

    A pair counts once per chapter it cites; citations of unknown ids are ignored (check_citations reports them).
    """
    by_id = _by_id(passages)
    units = _units_in_order(by_id)
    rows = []
    for pair in pairs:
        for unit in dict.fromkeys(by_id[c].unit for c in pair.cited if c in by_id):
            rows.append((unit, pair.category))
    categories = sorted({p.category for p in pairs})
    table = pd.DataFrame(0, index=pd.Index(units, dtype=object), columns=categories, dtype=int)
    for unit, category in rows:
        table.loc[unit, category] += 1
    table.index.name = "chapter" if all(isinstance(u, int) for u in units) else "source"
    table.columns.name = "category"
    return table


def uncited_chapters(pairs: list[QAPair], passages: Iterable[Passage] | Mapping[str, Passage]) -> list:
    """Chapters (or documents) that no pair cites, in reading order: where to aim the next instructions."""
    table = coverage_table(pairs, passages)
    return [unit for unit, total in table.sum(axis=1).items() if total == 0]
