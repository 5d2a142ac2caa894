"""The lecture's three qualities of a dataset, as numbers: is it diverse (task types, "who" lookups), grounded
(sources cited) and well made (answers in the teacher's own words, not copied text)? bench/bench_dataset.py, the
dataset card and notebook 5 report the same figures from here.

    figures(pairs, passages, sampled=240, seconds=5600.0)   # {"pairs": 127, "types": {...}, "who_share": 0.9, ...}
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Sequence

from lecture_utils.records import Passage, QAPair
from lecture_utils.text.tokens import COPY_RUN, copied_run, word_runs

_WHO = re.compile(r"^\W*(who|whom|whose)\b", re.I)


def is_who(instruction: str) -> bool:
    """A "Who did X?" lookup: the instruction opens with who, whom or whose."""
    return bool(_WHO.match(instruction))


def copying(pairs: Sequence[QAPair], passages: Iterable[Passage], n: int = COPY_RUN) -> list[str]:
    """For each pair, the first run of n words of the source its answer holds outside quotation marks ("" if none)."""
    runs: set[tuple[str, ...]] = set()
    for p in passages:
        runs |= word_runs(p.text, n)
    return [copied_run(p.answer, runs, n) for p in pairs]


def figures(pairs: Sequence[QAPair], passages: Sequence[Passage], *, sampled: int | None = None,
            seconds: float | None = None) -> dict[str, Any]:
    """The figures for one dataset: pairs, kept per sampled passage, each task type's share, the share of "who"
    lookups, the share of answers that copy COPY_RUN words of the source, units (chapters or documents) cited,
    and teacher seconds per kept pair (when `seconds` is known)."""
    by_id = {p.id: p for p in passages}
    n = len(pairs)
    types = Counter(p.category for p in pairs)
    copied = copying(pairs, passages)
    units = {by_id[c].unit
             for p in pairs for c in p.cited if c in by_id}
    all_units = {p.unit for p in passages}
    return {
        "pairs": n,
        "kept_per_sampled_passage": round(n / sampled, 3) if sampled else None,
        "types": {k: round(v / n, 3) for k, v in types.most_common()} if n else {},
        "types_at_least_8pct": sum(v / n >= 0.08 for v in types.values()) if n else 0,
        "largest_type_share": round(max(types.values()) / n, 3) if n else 0.0,
        "who_share": round(sum(is_who(p.instruction) for p in pairs) / n, 3) if n else 0.0,
        "copied_share": round(sum(bool(c) for c in copied) / n, 3) if n else 0.0,
        "units_cited": len(units),
        "units": len(all_units),
        "teacher_seconds_per_pair": round(seconds / n, 1) if seconds is not None and n else None,
    }


LABELS = {
    "pairs": "pairs",
    "kept_per_sampled_passage": "pairs kept per sampled passage",
    "types_at_least_8pct": "task types with at least 8% of the pairs",
    "largest_type_share": "share of the largest task type",
    "who_share": 'share of "who" lookups',
    "copied_share": "share of answers copying 12+ words of the source",
    "units_cited": "chapters or documents cited",
    "units": "chapters or documents in the source",
    "teacher_seconds_per_pair": "teacher seconds per pair",
}


def rows(f: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) for each figure that is known, types left out: how a card or a table shows them."""
    return [(LABELS.get(k, k.replace("_", " ")), v) for k, v in f.items() if k != "types" and v is not None]


def figures_table(named: dict[str, dict[str, Any]]):
    """One column per dataset, one row per figure (types folded into one line), for a notebook or a report."""
    import pandas as pd

    table = {}
    for name, f in named.items():
        flat = dict(rows(f))
        flat["task types"] = ", ".join(f"{k} {v:.0%}" for k, v in f["types"].items())
        table[name] = flat
    return pd.DataFrame(table)
