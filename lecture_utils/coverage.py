"""Which chapters and characters a book's passages and a set of instructions touch.

character_mentions counts who is named in each chapter of the book; coverage_table finds the chapter of each
instruction's best BM25 passage and the characters it names; chapter_counts and uncovered_chapters show the chapters
nothing touches yet, so the next run can be steered toward them. (Which chapters the answered pairs cite, by category,
is grounding.coverage_table.)
"""

from __future__ import annotations

import numbers
import re
from collections import Counter
from typing import Any, Iterable, Sequence

import pandas as pd

from .records import Instruction, Passage

# --- Characters ------------------------------------------------------------------------------------------------------
# "Miss Bennet" is left out on purpose: it is Jane in most chapters but Elizabeth at Rosings and in Lady Catherine's
# mouth, so counting it for either would mislead. "Mrs Wickham" is Lydia and "Mrs Collins" Charlotte after marriage.

_MR, _MRS, _MISS = r"Mr\.?\s+", r"Mrs\.?\s+", r"Miss\s+"
CHARACTERS: dict[str, str] = {
    "Elizabeth": r"\bElizabeth\b|\bLizzy\b|\bEliza\b",
    "Darcy": rf"(?<!Miss )(?<!Mrs )(?<!Mrs\. )(?<!Lady Anne )(?<!Georgiana )\bDarcy\b",
    "Jane": r"\bJane\b(?!\s+Austen)",
    "Bingley": r"(?<!Miss )(?<!Mrs )(?<!Mrs\. )(?<!Caroline )(?<!Louisa )\bBingley\b",
    "Wickham": r"(?<!Mrs )(?<!Mrs\. )\bWickham\b",
    "Collins": r"(?<!Mrs )(?<!Mrs\. )\bCollins\b",
    "Lydia": rf"\bLydia\b|\b{_MRS}Wickham\b",
    "Mr Bennet": rf"\b{_MR}Bennet\b",
    "Mrs Bennet": rf"\b{_MRS}Bennet\b",
    "Charlotte": rf"\bCharlotte\b|\b{_MISS}Lucas\b|\b{_MRS}Collins\b",
    "Lady Catherine": r"\bLady\s+Catherine\b|\bCatherine\s+de\s+Bourgh\b",
    "Georgiana": rf"\bGeorgiana\b|\b{_MISS}Darcy\b",
    "Caroline Bingley": rf"\bCaroline\b|\b{_MISS}Bingley\b",
    "Kitty": r"\bKitty\b|(?<!Lady )\bCatherine\b(?!\s+de\s+Bourgh)",
    "Mary": r"\bMary\b(?!\s+King)",
    "the Gardiners": r"\bGardiners?\b",
}


def _patterns(names: Sequence[str] | dict[str, Sequence[str]] | None) -> dict[str, re.Pattern]:
    if names is None:
        return {k: re.compile(v) for k, v in CHARACTERS.items()}
    if isinstance(names, dict):  # your own people: {"Ada": ["Ada", "Lovelace"]}
        return {k: re.compile("|".join(rf"\b{re.escape(a)}\b" for a in aliases)) for k, aliases in names.items()}
    return {k: re.compile(CHARACTERS.get(k, rf"\b{re.escape(k)}\b")) for k in names}


def characters_named(text: str, names: Sequence[str] | dict[str, Sequence[str]] | None = None) -> list[str]:
    """Which of the main characters a text names (by name or alias)."""
    text = " ".join(text.split())  # a line break inside "Lady\nCatherine" must not hide the title
    return [name for name, pat in _patterns(names).items() if pat.search(text)]


def character_mentions(passages: Sequence[Passage], names: Sequence[str] | dict[str, Sequence[str]] | None = None
                       ) -> pd.DataFrame:
    """Mentions of each character per chapter (rows: chapter, or source for documents; columns: characters)."""
    pats = _patterns(names)
    rows: dict[Any, Counter] = {}
    for p in passages:
        key = p.chapter if p.chapter is not None else p.source
        counts = rows.setdefault(key, Counter())
        text = " ".join(p.text.split())  # a line break inside "Lady\nCatherine" must not hide the title
        for name, pat in pats.items():
            counts[name] += len(pat.findall(text))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(pats)).fillna(0).astype(int)
    table.index.name = "chapter"
    return table


# --- Chapters --------------------------------------------------------------------------------------------------------


def coverage_table(instructions: Sequence[Instruction], index=None,
                   names: Sequence[str] | dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per instruction: the chapter of its top BM25 passage (needs `index`) and the characters it names."""
    rows = []
    for ins in instructions:
        row = {"id": ins.id, "category": ins.category, "run": ins.run, "instruction": ins.instruction,
               "chapter": None, "passage_id": None, "score": 0.0, "characters": characters_named(ins.instruction, names)}
        if index is not None:
            hits = index.search(ins.instruction, k=1)
            if hits and hits[0][1] > 0:
                passage, score = hits[0]
                row.update(chapter=passage.chapter if passage.chapter is not None else passage.source,
                           passage_id=passage.id, score=round(float(score), 3))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["id", "category", "run", "instruction", "chapter", "passage_id", "score",
                                        "characters"])
    if all(isinstance(c, numbers.Integral) for c in table["chapter"].dropna()):
        table["chapter"] = table["chapter"].astype("Int64")  # chapter numbers stay integers; no match is <NA>
    return table


def chapter_counts(chapters: Iterable[Any], n_chapters: int | None = None) -> pd.Series:
    """How many instructions touch each chapter; chapters 1..n_chapters all present, untouched ones as 0."""
    counts = Counter(_chapter_key(c) for c in chapters if not pd.isna(c))
    if counts and all(isinstance(c, int) for c in counts):
        last = max(n_chapters or 0, max(counts))
        series = pd.Series({ch: counts.get(ch, 0) for ch in range(1, last + 1)}, dtype=int)
    else:
        series = pd.Series(dict(counts), dtype=int)
    series.index.name = "chapter"
    return series.rename("instructions")


def _chapter_key(c: Any) -> Any:
    # chapters come back as floats (or numpy ints) from a DataFrame column that held a None
    if isinstance(c, numbers.Integral) or (isinstance(c, numbers.Real) and float(c).is_integer()):
        return int(c)
    return c


def character_counts(instructions: Iterable[Instruction | str],
                     names: Sequence[str] | dict[str, Sequence[str]] | None = None) -> pd.Series:
    """How many instructions name each character (every character listed, zeros included)."""
    pats = _patterns(names)
    counts = Counter()
    for item in instructions:
        text = item.instruction if isinstance(item, Instruction) else str(item)
        counts.update(name for name, pat in pats.items() if pat.search(text))
    return pd.Series({name: counts.get(name, 0) for name in pats}, dtype=int).rename("instructions")


def uncovered_chapters(counts: pd.Series) -> list:
    """Chapters no instruction touches: steer the next run toward them."""
    return [ch for ch, c in counts.items() if c == 0]
