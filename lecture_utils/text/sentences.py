"""Where sentences end: the kit's one rule, used for passage cuts (gather), answer-first targets (ask), evidence and
claims (ask.grounded) and support scores (text.grounding).

    sentence_spans('Mr. Darcy bowed. "Indeed!" said she.')  # [(0, 16), (17, 36)]: no cut after "Mr." or before "said"

A sentence ends at . ! or ? (repeated or not), then any closing quotation marks, brackets or the underscore that
closes italics in Project Gutenberg texts, then a space or the end. Not after a title or short form ("Mr.", "e.g."),
an initial ("J."), or a list number ("1."); not when the next word starts in lower case ("'Oh!' said Jane"); a line
break always ends one (lists, headings). Inline citations such as [ch12-p004] stay with the sentence they follow.
"""

from __future__ import annotations

import re

# Titles and short forms that end in a period without ending a sentence.
ABBREVIATIONS = {"mr", "mrs", "ms", "messrs", "dr", "st", "sr", "jr", "prof", "rev", "col", "capt", "gen", "lt", "ch",
                 "chap", "vs", "etc", "e.g", "i.e", "cf", "viz", "approx", "esq"}
BEFORE_A_NUMBER = {"no", "vol", "pp"}  # short forms only before a number: "No. 5" goes on, '"No." Elizabeth' ends
_CLOSERS = "\"'\u201d\u2019)]_"
_END = re.compile(r"[.!?]+[" + re.escape(_CLOSERS) + r"]*(?=\s+|$)")
_WORD_BEFORE = re.compile(r"([\w.\u2019']+)\.$")  # "Mr." -> "Mr"; "husband\u2019s." -> "husband\u2019s" (no initial)
# Inline citations such as [ch12-p004] or [guide-md-s02-p001; ch01-p002].
CITATION = re.compile(r"\[\s*([A-Za-z0-9][\w.\-]*-p\d+(?:\s*[,;]\s*[A-Za-z0-9][\w.\-]*-p\d+)*)\s*\]")
_CITATIONS_AFTER = re.compile(r"(?:\s*" + CITATION.pattern + r")+")


def sentence_spans(text: str, *, passage_cuts: bool = False) -> list[tuple[int, int]]:
    """(start, end) of each sentence of text, surrounding space left out.

    passage_cuts=True is the looser rule Stage 1 cuts long paragraphs by: it also ends a sentence after an initial
    and before a word in lower case. It stays so that passages, and their ids, which recordings and reviews name, do
    not move; a cut there only makes one passage end a little early."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        spans.extend((offset + s, offset + e) for s, e in _line_spans(line, passage_cuts))
        offset += len(line) + 1
    return _attach_trailing_citations(text, spans)


def split_sentences(text: str) -> list[str]:
    """The sentences of text, in order (see sentence_spans)."""
    return [text[s:e] for s, e in sentence_spans(text)]


def ends_sentence(text: str) -> bool:
    """Does text stop at the end of a sentence (not mid-way, not after "Mr.")?"""
    text = text.rstrip()
    return bool(text) and sentence_spans(text + " Next")[-1][0] >= len(text)


def _line_spans(text: str, passage_cuts: bool) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for end_mark in _END.finditer(text):
        end = end_mark.end()
        if end_mark.group(0).startswith(".") and len(end_mark.group(0).rstrip(_CLOSERS)) == 1:
            before = _WORD_BEFORE.search(text[start:end_mark.start() + 1])
            word = before.group(1).lower().lstrip("'\u2019") if before else ""  # "'Mr." opens a quotation
            if len(word) == 1 and word.isalpha():
                if not passage_cuts:
                    continue  # an initial like "J."
            elif word in ABBREVIATIONS or (word in BEFORE_A_NUMBER and text[end:].lstrip()[:1].isdigit()):
                continue  # "Mr.", "e.g.", "No. 5"
            if word.isdigit() and not text[start:end_mark.start() - len(word)].strip(" -*\u2022"):
                continue  # a list number, "1. Elizabeth ..."
        cites = _CITATIONS_AFTER.match(text, end)
        if cites:
            end = cites.end()  # "... the estate. [ch07-p001]": the citation belongs to this sentence
        rest = text[end:].lstrip()
        if rest and rest[0].islower() and not passage_cuts:
            continue  # "e.g. the ball", an ellipsis inside a sentence, '"Oh!" said she'
        if text[start:end].strip():
            spans.append(_strip_span(text, start, end))
        start = end
    if text[start:].strip():
        spans.append(_strip_span(text, start, len(text)))
    return spans


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _attach_trailing_citations(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # A piece with nothing but citations or stray punctuation belongs to the sentence before it.
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and not CITATION.sub("", text[s:e]).strip(" .;,"):
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out
