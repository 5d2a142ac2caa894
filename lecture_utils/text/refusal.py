"""The "not in the text" rule and its relatives, in one place: an answer that is the kit's marker for "the passages do
not hold this", an answer that says so in its own words, and assistant boilerplate that refuses."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Any

from lecture_utils.prompts import NOT_IN_TEXT

# "The passages do not say": a legitimate answer the dataset may or may not want to teach.
NOT_IN_TEXT_PATTERNS = [
    re.escape(NOT_IN_TEXT.rstrip(".")),
    r"\b(context|passages?|text|excerpts?) (provided |given )?(does|do) not (contain|mention|say|include|provide)",
    r"\bnot (mentioned|stated|covered|found) in the (provided |given )?(context|passages?|text)",
    r"\b(there is|there's) no (information|mention)",
]
# Refusals and assistant boilerplate: never a useful training target.
REFUSAL_PATTERNS = [
    r"\bas an ai\b",
    r"\bi('m| am) (sorry|unable|not able)\b",
    r"\bi (cannot|can't|can not|won't) (help|assist|answer|provide|do that|comply)",
    r"\b(language model|my training data|my knowledge cutoff)\b",
]
# An answer that speaks of the passages it was shown ("The passage describes ..."): the finished assistant's user
# never saw them, so it is no answer to learn. Worded so that a corridor ("met her in the passage") or a library's
# Context object ("the context provides ...", in the click docs) is not one.
CONTEXT_PATTERNS = [
    r"\b(the|these|this|those) (passages?|excerpts?) (describes?|says?|states?|mentions?|shows?|suggests?|"
    r"indicates?|provides?|explains?|tells?)\b",
    r"\b(the )?(provided|given|above|retrieved) (passages?|excerpts?|context|text|documents?)\b",
    r"\baccording to the (passages?|excerpts?|context|text provided)\b",
    r"\bin the (passages?|excerpts?|context) (provided|given|above)\b",
]
# A model asked without the passages (evaluation, closed book) declines in words of its own.
DECLINE_PATTERNS = [
    r"\b(do|does) not (say|mention|contain|state|know)\b",
    r"\bnot (mentioned|stated|in the (text|passages))\b",
    r"\bno information\b",
    r"\b(cannot|can't) (answer|determine|find)\b",
    r"\bi don'?t know\b",
]

_WORDS = re.compile(r"[a-z0-9]+")
_MARKER_WORDS = _WORDS.findall(NOT_IN_TEXT.lower())


def first_match(text: str, patterns: list[str]) -> str | None:
    """The words of `text` that the first matching pattern found (any case), or None."""
    for pattern in patterns:
        found = re.search(pattern, text, flags=re.IGNORECASE)
        if found:
            return found.group(0)
    return None


def is_marker(answer: str, marker: str = NOT_IN_TEXT) -> bool:
    """True if the whole answer is the "not in the passages" marker, or a close paraphrase of it on its own: the
    teacher gave up (Stage 3 sets the pair's not_in_text flag from this)."""
    words = _WORDS.findall(answer.lower())
    marker_words = _MARKER_WORDS if marker == NOT_IN_TEXT else _WORDS.findall(marker.lower())
    if not words:
        return False
    if words == marker_words:
        return True
    if len(words) > 2 * len(marker_words):  # a real answer that happens to mention the marker's words
        return False
    if len(set(words) & set(marker_words)) < len(set(marker_words)) / 2:  # cheap test before the costly one
        return False
    return SequenceMatcher(None, " ".join(words), " ".join(marker_words)).ratio() >= 0.8


def says_not_in_text(pair: Any, patterns: list[str] = NOT_IN_TEXT_PATTERNS) -> bool:
    """True if a pair is flagged not_in_text or its answer says, anywhere, that the passages do not hold it."""
    return bool(pair.not_in_text) or first_match(pair.answer, patterns) is not None


def declines(answer: str) -> bool:
    """The answer is empty, says the text does not hold it, refuses, or says the model does not know."""
    return (not answer.strip()) or any(first_match(answer, p) for p in
                                       (NOT_IN_TEXT_PATTERNS, REFUSAL_PATTERNS, DECLINE_PATTERNS))
