"""Where a quote is in a passage, and how much two texts say alike: the text rules Stage 2's evidence and Stage 3's
checks share."""

from __future__ import annotations

from difflib import SequenceMatcher

from lecture_utils.text.grounding import content_words
from lecture_utils.text.tokens import stem

# Quote marks and _italics_ markers are ignored when a quote is compared with its passage: small models change them.
_QUOTES = str.maketrans({c: None for c in "\u2018\u2019\u201c\u201d\"'_"})
FUZZY_MIN = 0.9  # a quote with a word or two changed still points at one place; it is replaced by the passage's words


def normalize(text: str) -> str:
    """Lower case, no quote marks, single spaces: how a quote is compared with its passage."""
    return " ".join(text.translate(_QUOTES).lower().split())


def find_span(quote: str, passage_text: str, fuzzy: float = FUZZY_MIN) -> str | None:
    """The passage's own words for `quote`: where it occurs (ignoring case, quote marks, spacing and end punctuation),
    else the window of as many words that matches it best with a similarity of at least `fuzzy`; None if neither."""
    want = normalize(quote).strip(" .,;:!?-")
    if not want:
        return None
    words = passage_text.split()
    norm = [normalize(w) for w in words]
    hay = " ".join(norm)
    pos = hay.find(want)
    if pos >= 0:
        first, last = hay.count(" ", 0, pos), hay.count(" ", 0, pos + len(want))
        return " ".join(words[first:last + 1])
    n = len(want.split())
    best, where_ = 0.0, 0
    for i in range(max(1, len(words) - n + 1)):
        ratio = SequenceMatcher(None, want, " ".join(norm[i:i + n]), autojunk=False).ratio()
        if ratio > best:
            best, where_ = ratio, i
    return " ".join(words[where_:where_ + n]) if best >= fuzzy else None


def overlap(a: str, b: str) -> float:
    """Content words two texts share, as a share of the shorter one's (1.0 when one contains the other's words)."""
    wa, wb = set(content_words(a)), set(content_words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


def says(answer: str, expected: str) -> bool:
    """True when the answer holds every content word of the expected answer, matched on their first five letters
    ("Bingley's" finds "Bingley"): the answer names the right person, amount or place."""
    have = {stem(w) for w in content_words(answer)}
    want = {stem(w) for w in content_words(expected)}
    return bool(want) and want <= have
