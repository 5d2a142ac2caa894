"""Which chapters and names a source's passages and a set of instructions touch.

find_names picks the people and places a source mentions most, from the text itself (no list fitted to one book);
character_mentions counts them in each chapter; coverage_table finds the chapter of each instruction's best BM25
passage and the names it mentions; chapter_counts and uncovered_chapters show the chapters nothing touches yet, so
the next run can be steered toward them. (Which chapters the answered pairs cite, by category, is
grounding.coverage_table.)
"""

from __future__ import annotations

import numbers
import re
from collections import Counter
from typing import Any, Iterable, Sequence

import pandas as pd

from lecture_utils.records import Instruction, Passage
from lecture_utils.text.names import _CAPITAL, TOP_NAMES, find_names

Names = Sequence[str] | dict[str, Sequence[str]] | None

def _patterns(names: Names) -> dict[str, re.Pattern]:
    if isinstance(names, dict):  # your own people with aliases: {"Ada": ["Ada", "Lovelace"]}
        return {k: re.compile("|".join(rf"\b{re.escape(a)}\b" for a in aliases)) for k, aliases in names.items()}
    return {k: re.compile(rf"\b{re.escape(k)}\b") for k in names or ()}


def characters_named(text: str, names: Names = None) -> list[str]:
    """Which names a text mentions: of `names` if given (a list, or a dict of aliases), else those find_names sees."""
    text = " ".join(text.split())  # a line break inside "Lady\nCatherine" must not hide a two-word alias
    if names is None:
        found = set(find_names([text], top=None))
        return [w for w in dict.fromkeys(_CAPITAL.findall(text)) if w in found]  # in the order the text names them
    return [name for name, pat in _patterns(names).items() if pat.search(text)]


def character_mentions(passages: Sequence[Passage], names: Names = None, top: int = TOP_NAMES) -> pd.DataFrame:
    """Mentions of each name per chapter (rows: chapter, or source for documents; columns: names).
    Without `names`, the `top` names find_names picks from the passages."""
    if names is None:
        names = find_names([p.text for p in passages], top)
    pats = _patterns(names)
    rows: dict[Any, Counter] = {}
    for p in passages:
        key = p.unit
        counts = rows.setdefault(key, Counter())
        text = " ".join(p.text.split())  # a line break inside "Lady\nCatherine" must not hide a two-word alias
        for name, pat in pats.items():
            counts[name] += len(pat.findall(text))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(pats)).fillna(0).astype(int)
    table.index.name = "chapter"
    return table


# --- Chapters --------------------------------------------------------------------------------------------------------


def coverage_table(instructions: Sequence[Instruction], index=None, names: Names = None) -> pd.DataFrame:
    """Per instruction: the chapter of its top BM25 passage (needs `index`) and the names it mentions."""
    rows = []
    for ins in instructions:
        row = {"id": ins.id, "category": ins.category, "run": ins.run, "instruction": ins.instruction,
               "chapter": None, "passage_id": None, "score": 0.0, "characters": characters_named(ins.instruction, names)}
        if index is not None:
            hits = index.search(ins.instruction, k=1)
            if hits and hits[0][1] > 0:
                passage, score = hits[0]
                row.update(chapter=passage.unit,
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


def character_counts(instructions: Iterable[Instruction | str], names: Names = None,
                     top: int = TOP_NAMES) -> pd.Series:
    """How many instructions mention each name (every name listed, zeros included). Without `names`, the `top`
    names find_names picks from the instructions themselves."""
    texts = [item.instruction if isinstance(item, Instruction) else str(item) for item in instructions]
    if names is None:
        names = find_names(texts, top)
    pats = _patterns(names)
    counts = Counter(name for text in texts for name, pat in pats.items() if pat.search(" ".join(text.split())))
    return pd.Series({name: counts.get(name, 0) for name in pats}, dtype=int).rename("instructions")


def uncovered_chapters(counts: pd.Series) -> list:
    """Chapters no instruction touches: steer the next run toward them."""
    return [ch for ch, c in counts.items() if c == 0]
