"""Names in text: which words of a source are names (find_names, from the text itself: no list fitted to one book),
and which names an answer uses that its context never mentions (unknown_names)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

# --- Which words are names -------------------------------------------------------------------------------------------

TOP_NAMES = 12
# A word after one of these is a name ("Mr. Darcy", "Captain Smollett"); the titles themselves are not.
TITLES = frozenset("Mr Mrs Miss Ms Mx Dr Doctor Lady Lord Sir Dame Madam Captain Colonel Major General Squire "
                   "Professor Mister Master".split())
# Capitalised words that the lowercase test below would let through: they are never written in lowercase.
_NOT_NAMES = frozenset("January February March April June July August September October November December Monday "
                       "Tuesday Wednesday Thursday Friday Saturday Sunday Chapter".split())
_CAPITAL = re.compile(r"\b[A-Z][a-z]{2,}\b")
_LOWER = re.compile(r"\b[a-z]{3,}\b")
_MARKUP = " \t\r\n([{_*#>`|-"  # brackets, emphasis, headings and list bullets before a word
_CLOSERS = " \t\r\n\u201d\u2019\"')]}_*"  # closing quotes and brackets after a sentence's last word
_OPENING_QUOTE = re.compile(r"[\u201c\u2018]$|(?:^|[^\w.,!?;:])[\"']$")  # straight quotes open after a non-word
_NEW_BLOCK = re.compile(r"\n[ \t]*[\n|*#>-]")  # a blank line, or a new table row, bullet or heading
# The titles as one regex alternation, longest first ("Mrs" before "Mr"): "Mr. Darcy", "Captain Smollett".
TITLE_WORDS = "|".join(sorted(TITLES, key=lambda t: (-len(t), t)))
TITLED_NAME = re.compile(rf"\b(?:{TITLE_WORDS})\.? [A-Z][a-z]+")
_TITLE_BEFORE = re.compile(r"\b(" + "|".join(TITLES) + r")\.?$")


def _word_starts_sentence(text: str, start: int) -> bool:
    """True if the word at `start` opens a sentence, a paragraph or a quotation (so its capital says nothing)."""
    before = text[:start].rstrip(_MARKUP)
    if not before or _NEW_BLOCK.search(text[len(before):start]) or _OPENING_QUOTE.search(before):
        return True
    before = before.rstrip(_CLOSERS)
    return not before or (before[-1] in ".!?:" and not _TITLE_BEFORE.search(before))  # "Mr. Darcy" opens nothing


def find_names(texts: Iterable[str], top: int | None = TOP_NAMES) -> list[str]:
    """The names (people, places, for documents their terms) the texts mention most, most texts first.

    A name is a word written after a title ("Mr. Darcy", "Captain Smollett"), or a capitalised word inside a
    sentence that the texts capitalise there more often than they write it in lowercase: that rules out "The", "But"
    and "When" without a list of them. Names are counted by how many texts mention them; top=None keeps all."""
    texts = [str(t) for t in texts]
    titled, inside, lower, found_in = Counter(), Counter(), Counter(), Counter()
    for text in texts:
        lower.update(_LOWER.findall(text))
        for m in _CAPITAL.finditer(text):
            word = m.group(0)
            if word in TITLES or word in _NOT_NAMES:
                continue
            if _TITLE_BEFORE.search(text[:m.start()].rstrip()):
                titled[word] += 1
            elif not _word_starts_sentence(text, m.start()):
                inside[word] += 1
    names = {w for w in titled} | {w for w, n in inside.items() if n > lower[w.lower()]}
    mentions = Counter()
    for text in texts:
        words = Counter(w for w in _CAPITAL.findall(text) if w in names)  # sentence openers count once known
        found_in.update(words.keys())
        mentions.update(words)
    ranked = sorted(names, key=lambda w: (-found_in[w], -mentions[w], w))
    return ranked if top is None else ranked[:top]

# Capitalised words that start questions and sentences without naming anyone.
_NOT_NAME_WORDS = frozenset("""what why how who whom whose when where which describe explain compare identify summarise
summarize trace discuss analyse analyze give list name according does did is was were are do can could would should
will after before during in on at by for from with the a an this that these those he she it they his her their its
there here as if then one two three first second yes no not mr mrs miss lady sir chapter""".split())
_NAME = re.compile(r"\b[A-Z][a-z]{2,}\b")


def unknown_names(text: str, context: str, ignore: Iterable[str] = ()) -> list[str]:
    """Names (capitalised words) in text that the context never mentions: a small teacher that cannot tell who
    speaks fills in a name it remembers from elsewhere in the book."""
    skip = _NOT_NAME_WORDS | {w.lower() for w in ignore}
    known = set(_NAME.findall(context))
    return list(dict.fromkeys(w for w in _NAME.findall(text) if w.lower() not in skip and w not in known))
