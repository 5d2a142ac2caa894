"""Which Stage 4 decisions count: one rule for the curation panel, the export and the grader.

Decisions are appended to decisions.jsonl as they are made, so a pair can have several. For each pair:

* the latest decision counts, and the earlier ones are history;
* a decision made on an answer that has changed since (Stage 3 was re-run) is stale: it is ignored, and it voids the
  decisions before it, so an old verdict never comes back to life. A decision that does not say which answer it was
  made on (`original_answer` empty: written by hand, not by the panel) is taken to be about the current answer;
* a decision for a pair id that is not among the pairs is an orphan, and is ignored.

Decisions whose reviewer is the LLM judge ("llm-judge (headless)", "judge:...") count for the dataset, but never as
a person's review.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from lecture_utils.errors import KitError
from lecture_utils.records import STATUSES, Decision, QAPair, from_dict


class DecisionError(KitError, ValueError):
    """A decision that cannot be applied (a fix with no edit, an unknown status); the message says what to do."""


def is_judge(reviewer: str | None) -> bool:
    """True if a decision was made by the LLM judge, not by a person."""
    name = (reviewer or "").strip().lower()
    return name.startswith("llm-judge") or name == "judge" or name.startswith("judge:")


@dataclass
class CountedDecisions:
    """The decision that counts per pair id (in the order the pairs were given), and what was left out."""

    latest: dict[str, Decision] = field(default_factory=dict)
    stale: int = 0  # decisions made on an answer that has changed since
    orphans: int = 0  # decisions for unknown pair ids, or records that are not decisions at all

    def by_person(self) -> dict[str, Decision]:
        """The counted decisions a person made (the judge's left out)."""
        return {pid: d for pid, d in self.latest.items() if not is_judge(d.reviewer)}

    def counts(self, people_only: bool = False) -> dict[str, int]:
        """Counted decisions per status (accept, fix, discard, and any other status found)."""
        chosen = self.by_person() if people_only else self.latest
        found = Counter(d.status for d in chosen.values())
        return {**{s: 0 for s in STATUSES}, **found}


def _answer(pair: Any) -> tuple[str, str]:
    if isinstance(pair, Mapping):
        return str(pair.get("id", "")), str(pair.get("answer", ""))
    return pair.id, pair.answer


def _decision(record: Any) -> Decision | None:
    if isinstance(record, Decision):
        return record
    try:
        return from_dict(Decision, record)
    except (TypeError, ValueError, AttributeError):  # a line that is not a decision
        return None


def decisions_that_count(pairs: Iterable[Any], decisions: Iterable[Decision | Mapping]) -> CountedDecisions:
    """Apply the rule above to `decisions` (in the order they were made) for `pairs` (QAPair or dicts with id and
    answer). Statuses are not checked here: callers that must refuse a bad status check it themselves."""
    answers = dict(_answer(p) for p in pairs)
    counted = CountedDecisions()
    latest: dict[str, Decision] = {}
    for record in decisions:
        d = _decision(record)
        if d is None or d.pair_id not in answers:
            counted.orphans += 1
        elif d.original_answer and d.original_answer != answers[d.pair_id]:
            counted.stale += 1
            latest.pop(d.pair_id, None)
        else:
            latest[d.pair_id] = d
    counted.latest = {pid: latest[pid] for pid in answers if pid in latest}
    return counted


def _reviewer(decision: Decision) -> str:
    return "judge" if is_judge(decision.reviewer) else "person"


def curated_pairs(pairs: Iterable[QAPair], decisions: Iterable[Decision | dict]) -> list[QAPair]:
    """Accepted pairs as they are and fixed pairs with their edited answer, in pair order (copies).
    Discarded and unreviewed pairs are left out."""
    pairs = list(pairs)
    latest = decisions_that_count(pairs, decisions).latest
    out = []
    for p in pairs:
        d = latest.get(p.id)
        if d is None or d.status == "discard":
            continue
        if d.status == "fix":
            if not d.edited_answer.strip():
                raise DecisionError(f"pair {p.id} is marked 'fix' but its edited answer is empty: edit it in the "
                                  "curation panel, or discard it")
            out.append(dataclasses.replace(p, answer=d.edited_answer.strip(), review=_reviewer(d)))
        elif d.status == "accept":
            out.append(dataclasses.replace(p, review=_reviewer(d)))
        else:
            raise DecisionError(f"pair {p.id} has decision status {d.status!r}: use accept, fix or discard")
    return out
