"""How the kit splits text into words: one tokenizer, and one stop-word list (longer for search), for every module
that counts words.

words(text) lower-cases (casefold), reads curly apostrophes as straight ones and "_" (Gutenberg's italics) as a space,
and returns the runs of letters and digits; an apostrophe inside a word stays in it: "Darcy’s" -> "darcy's".

Three options keep differences that callers rely on:
  fold_accents      "café" -> "cafe": a question typed without accents still finds the passage (search).
  drop_apostrophes  the possessive 's goes and other apostrophes close up: "Darcy's" -> "darcy", "don't" -> "dont",
                    so a name matches with or without its 's (search; SEARCH_STOP_WORDS knows "dont").
  ascii_only        a word is a run of a-z and 0-9, so any other letter splits it: "tête" -> "t", "te". Grounding's
                    support scores and thresholds were measured this way; the option keeps them where they are.
and stop_words leaves words out. search_words(text) is words() as BM25 reads a text.

ROUGE-L is the exception: dedup.rouge_tokens splits text exactly as rouge-score does (a-z0-9 runs, no apostrophes),
so the near-duplicate decisions stay those of the Alpaca / Self-Instruct reference.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

# The most frequent English function words: in almost any English sentence, rare in other languages.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other
our ours ourselves out over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves
""".split())

# Search leaves out a few more words that say little about which passage is meant, and the contractions as
# drop_apostrophes writes them ("don't" -> "dont").
SEARCH_STOP_WORDS = STOP_WORDS | frozenset("""
also either else ever every however let may might much must neither one otherwise ought per quite rather shall
therefore though thus upon us whatever whether whose within without yet
dont didnt doesnt isnt wasnt arent werent hasnt havent hadnt cant couldnt wouldnt shouldnt wont mustnt shant
im ive youre youve youd youll hes shes theyre theyve theyd theyll weve wed well thats whats theres heres lets
""".split())

_COMBINING = re.compile(r"[\u0300-\u036f]")  # the accents NFKD splits off letters
_WORD = re.compile(r"\w+(?:'+\w+)*")  # runs of letters and digits, joined by apostrophes: "o'clock", "sha'n't"
_ASCII_WORD = re.compile(r"[a-z0-9]+(?:'+[a-z0-9]+)*")


def words(text: str, *, fold_accents: bool = False, drop_apostrophes: bool = False, ascii_only: bool = False,
          stop_words: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The lower-cased words of text, in order (the options are described at the top of this module)."""
    text = text.casefold().replace("\u2019", "'").replace("\u2018", "'").replace("_", " ")
    if fold_accents and not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    found = (_ASCII_WORD if ascii_only else _WORD).findall(text)
    if drop_apostrophes and "'" in text:
        found = [(w[:-2] if w.endswith("'s") else w).replace("'", "") for w in found]
    return [w for w in found if w not in stop_words] if stop_words else found


def search_words(text: str) -> list[str]:
    """Words as BM25 reads them: no accents, no possessive 's, no stop words: "Mr. Darcy's café" -> mr, darcy, cafe."""
    return words(text, fold_accents=True, drop_apostrophes=True, stop_words=SEARCH_STOP_WORDS)


# Two ways to let "waited" meet "waiting", each in one place. A presence test ("does the answer say Bingley?") compares
# stems, the first five letters; an overlap score (how much of a sentence a passage supports) compares normal forms,
# with the commonest suffixes stripped, so a long word keeps more than five letters.
STEM = 5  # words compare on their first five letters, so "returned" meets "return" and "waited" meets "waiting"


def stem(word: str) -> str:
    """A word's first STEM letters: "Bingley's" and "Bingley" share one."""
    return word[:STEM]


def normal_form(word: str) -> str:
    """Crude suffix stripping: "walks", "walked" and "walking" meet (used on both sides, so odd forms still match)."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word




def missing_stems(words_: Iterable[str], reference: Iterable[str]) -> list[str]:
    """The words whose first STEM letters start no word of reference: what a text says that its reference does not."""
    have = {stem(w) for w in reference}
    return [w for w in words_ if stem(w) not in have]


COPY_RUN = 12  # an answer holding this many words of the source in a row, outside quotation marks, copies it
_QUOTED = re.compile(r"\u201c[^\u201d]*\u201d|\"[^\"]*\"|(?<!\w)'[^']{3,}'(?!\w)|\u2018[^\u2019]*\u2019(?!\w)")


def unquoted(text: str) -> str:
    """text without the parts it puts in quotation marks (a quotation marked as one is not copying)."""
    return _QUOTED.sub(" | ", text)


def word_runs(text: str, n: int = COPY_RUN) -> set[tuple[str, ...]]:
    """Every run of n words in text (lower-cased, accents folded), for copy checks against a whole source."""
    w = words(text, fold_accents=True, drop_apostrophes=True)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def copied_run(answer: str, source_runs: set[tuple[str, ...]], n: int = COPY_RUN) -> str:
    """The first run of n words outside quotation marks that the answer shares with the source ("" if none)."""
    for part in unquoted(answer).split(" | "):
        for run in _ordered_runs(part, n):
            if run in source_runs:
                return " ".join(run)
    return ""


def _ordered_runs(text: str, n: int) -> list[tuple[str, ...]]:
    w = words(text, fold_accents=True, drop_apostrophes=True)
    return [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]


_DIALOGUE = re.compile(r"\u201c[^\u201d]*\u201d|\"[^\"]*\"")


def dialogue_share(text: str) -> float:
    """Share of the text's characters inside quotation marks: who-said-what is where a small teacher goes wrong."""
    inside = sum(len(m) for m in _DIALOGUE.findall(text))
    return inside / max(1, len(text))


# Numbers written in words or digits read the same: what an answer "says" is compared as numbers.
_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                     "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_NUMBER = "|".join(list(_UNITS) + list(_TENS) + ["hundred", "thousand"])
_RUN = re.compile(rf"\b(?:{_NUMBER})(?:[\s-]+(?:and[\s-]+)?(?:{_NUMBER}))*\b")


def _value(words: list[str]) -> int:
    total = current = 0
    for w in words:
        if w == "hundred":
            current = (current or 1) * 100
        elif w == "thousand":
            total, current = total + (current or 1) * 1000, 0
        else:
            current += _UNITS.get(w, 0) + _TENS.get(w, 0)
    return total + current


def _units(word: str) -> int:
    return int(word) if word.isdigit() else _UNITS[word]


def with_digits(text: str) -> str:
    """Numbers written the same way: "Two thousand", "2,000" and "2000" all read "2000"; the novel's
    "five-and-twenty" reads "25"."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower())
    text = re.sub(rf"\b({'|'.join(_UNITS)}|\d)-and-({'|'.join(_TENS)})\b",
                  lambda m: str(_units(m.group(1)) + _TENS[m.group(2)]), text)
    return _RUN.sub(lambda m: str(_value([w for w in re.split(r"[\s-]+", m.group(0)) if w != "and"])), text)
