"""Stage 3 checks: an answer is checked against its passages, not trusted. Each check's result is stored on the pair.

    pair = verify_pair(teacher, pair, passages_by_id)
    pair.checks   # {"span": True, "support": 0.83, "round_trip": 1.0, "faithful": "YES", ...}
    pair.passed   # True only when every check that applies passed

The checks, cheapest first:
- span: the instruction's quoted evidence occurs in its source passage (checked in Stage 2; recorded here).
- expected: the answer holds the answer words Stage 2 wrote the question to ("Mr. Bennet", "only one mile"): a
  fluent answer about the wrong person fails here, where the lexical checks below cannot see it.
- support: every answer sentence is supported by one passage (lexical, no model: grounding.sentence_support).
- cites: the same, against the passages the answer cites alone: an answer that is true to its own passage but cites
  another (a small teacher's slip) would teach wrong citations and put the pair in the wrong chapter of the split.
- round_trip: the teacher, shown only the source passage, copies the words that answer the question; they must
  overlap the span the question was written from. A question that does not lead back to its evidence is ambiguous
  or was never about that passage.
- faithful: the teacher, shown the passages, answers YES or NO (constrained by a JSON schema the llama.cpp server
  turns into a grammar): is every fact of the answer stated there? A small teacher says NO to many true answers, so
  once `expected` has passed its NO sends the pair to a person (doubts) instead of dropping it (see advisory).
A negative built on purpose ("not in the text") passes when the answer says the passages do not hold it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    import pandas as pd

from lecture_utils.ask.checks import FAITHFUL, ROUND_TRIP_MIN
from lecture_utils.prompts import FAITHFUL_PROMPT, NOT_IN_TEXT_TYPE, RAG_SYSTEM, format_context
from lecture_utils.records import Passage, QAPair, iter_jsonl
from lecture_utils.teacher.client import StructuredOutputError
from lecture_utils.teacher.task import run_many
from lecture_utils.text.grounding import SUPPORT_THRESHOLD, sentence_support
from lecture_utils.text.names import unknown_names
from lecture_utils.text.spans import find_span, overlap, says

CHECK_NAMES = ("span", "names", "expected", "support", "cites", "agrees", "round_trip", "faithful", "says_not_in_text")
AGREES_MIN = 0.3  # content words the answer shares with the answer written in Stage 2, as a share of the shorter


def _context(pair: QAPair, by_id: Mapping[str, Passage]) -> list[Passage]:
    return [by_id[r.id] for r in pair.retrieved if r.id in by_id]


def faithful(teacher: Any, pair: QAPair, passages: Sequence[Passage], *, prompt: str = FAITHFUL_PROMPT,
             system: str | None = RAG_SYSTEM) -> str:
    """The teacher's YES/NO: is every fact of the answer stated in the passages? (the FAITHFUL Task)"""
    task = dataclasses.replace(FAITHFUL, prompt=prompt, system=system)
    return str(task.one(teacher, context=format_context(list(passages)), instruction=pair.instruction,
                        answer=pair.answer).get("verdict"))


def advisory(checks: Mapping[str, Any]) -> set[str]:
    """Checks whose failure sends the pair to a person instead of stopping it. The teacher's YES/NO verdict is
    advisory once the answer holds the words its question was written to (expected): on the shipped run, 5 of the
    6 passage-first pairs it said NO to were true, so gating on it threw good pairs away, while for an open question
    (no expected answer) it is the only check of meaning and stays a gate."""
    return {"faithful"} if checks.get("expected") is True else set()


def doubts(pair: QAPair) -> list[str]:
    """Advisory checks this pair failed: worth a person's look, not a reason to drop it."""
    return [name for name in sorted(advisory(pair.checks)) if pair.checks.get(name) is not None
            and not _passes(name, pair.checks[name], SUPPORT_THRESHOLD, ROUND_TRIP_MIN)]


def _passes(name: str, value: Any, support_min: float, round_trip_min: float) -> bool:
    tests = {
        "span": lambda v: v is True,
        "expected": lambda v: v is True,
        "names": lambda v: not v,
        "support": lambda v: v >= support_min,
        "cites": lambda v: v >= support_min,
        "agrees": lambda v: v >= AGREES_MIN,
        "round_trip": lambda v: v >= round_trip_min,
        "faithful": lambda v: v == "YES",
        "says_not_in_text": lambda v: v is True,
    }
    return name not in tests or tests[name](value)


def passed(checks: Mapping[str, Any], support_min: float = SUPPORT_THRESHOLD,
           round_trip_min: float = ROUND_TRIP_MIN) -> bool:
    """True when every check that ran and gates (see advisory) passed; a check that did not apply is None or missing."""
    skip = advisory(checks)
    return all(_passes(name, value, support_min, round_trip_min) for name, value in checks.items()
               if name in CHECK_NAMES and name not in skip and value is not None)


def failed_checks(pair: QAPair, support_min: float = SUPPORT_THRESHOLD,
                  round_trip_min: float = ROUND_TRIP_MIN) -> list[str]:
    """Names of the gating checks this pair failed, for the funnel and the curation panel (see doubts for the rest)."""
    skip = advisory(pair.checks)
    return [name for name in CHECK_NAMES if pair.checks.get(name) is not None and name not in skip
            and not _passes(name, pair.checks[name], support_min, round_trip_min)]


def gate(pairs: Sequence[QAPair], support_min: float = SUPPORT_THRESHOLD,
         round_trip_min: float = ROUND_TRIP_MIN) -> tuple[list[QAPair], list[QAPair], "pd.DataFrame"]:
    """(passed, failed, funnel): the funnel has one row per check with the pairs it stopped (a pair is counted at the
    first check it fails, in CHECK_NAMES order), as filters.run_filters's funnel has."""
    import pandas as pd

    first_failure = {}
    for p in pairs:
        failed = failed_checks(p, support_min, round_trip_min)
        if failed:
            first_failure[p.id] = failed[0]
        elif p.passed is None and not p.checks:
            first_failure[p.id] = "not checked"
    rows, remaining = [], len(pairs)
    for name in CHECK_NAMES + ("not checked",):
        removed = sum(1 for v in first_failure.values() if v == name)
        remaining -= removed
        rows.append({"step": f"check: {name}", "removed": removed, "remaining": remaining})
    kept = [p for p in pairs if p.id not in first_failure]
    return kept, [p for p in pairs if p.id in first_failure], pd.DataFrame(rows)


def verify_pair(teacher: Any, pair: QAPair, passages: Iterable[Passage] | Mapping[str, Passage], *,
                llm_checks: bool = True, faithful_prompt: str = FAITHFUL_PROMPT,
                system: str | None = RAG_SYSTEM) -> QAPair:
    """A copy of the pair with .checks, .passed and .grounding filled in; the question's own checks (span, round
    trip, from Stage 2) are kept. llm_checks=False runs only the checks that need no teacher."""
    by_id = passages if isinstance(passages, Mapping) else {p.id: p for p in passages}
    context = _context(pair, by_id)
    checks: dict[str, Any] = dict(pair.checks)
    if pair.category == NOT_IN_TEXT_TYPE:  # a negative on purpose: the only right answer is "not in the text"
        checks = {"says_not_in_text": pair.not_in_text}
        return dataclasses.replace(pair, checks=checks, passed=passed(checks), grounding=None)
    source = by_id.get(pair.passage_id)
    if pair.span and "span" not in checks:
        checks["span"] = source is not None and find_span(pair.span, source.text) is not None
    if pair.not_in_text:
        # A question written from a passage was answerable, so giving up fails it. An open question (a seed, a
        # Self-Instruct instruction) may rest on a premise the passages do not support: "not in the text" is then a
        # fair answer, kept as a refusal (out of the exports unless refusals are asked for).
        checks["says_not_in_text"] = False if pair.span else None
        return dataclasses.replace(pair, checks=checks, passed=passed(checks), grounding=None)
    checks["names"] = unknown_names(pair.answer, " ".join(p.text for p in context) + " " + pair.instruction)
    if pair.checks.get("answer"):  # Stage 2 picked the answer words: the answer must say them
        checks["expected"] = says(pair.answer, pair.checks["answer"])
    if pair.reference:  # a task from Stage 2 carries its own answer: asked afresh, the teacher must say the same
        checks["agrees"] = round(overlap(pair.answer, pair.reference), 3)
    support = sentence_support(pair.answer, [p.text for p in context])
    checks["support"] = round(min((s.score for s in support), default=0.0), 3)
    cited = [by_id[c].text for c in pair.cited if c in by_id]
    checks["cites"] = round(min((s.score for s in sentence_support(pair.answer, cited)), default=0.0), 3) if cited \
        else 0.0
    grounding = sum(s.supported for s in support) / len(support) if support else 0.0
    if llm_checks:
        try:
            checks["faithful"] = faithful(teacher, pair, context, prompt=faithful_prompt, system=system)
        except StructuredOutputError:
            checks["faithful"] = "no verdict"
    ok = passed({k: v for k, v in checks.items() if k in CHECK_NAMES})
    return dataclasses.replace(pair, checks=checks, passed=ok, grounding=round(grounding, 3))


def verify_pairs(teacher: Any, pairs: Sequence[QAPair], passages: Iterable[Passage] | Mapping[str, Passage],
                 out: str | Path, *, concurrency: int = 1, progress: Callable | None = None,
                 **kwargs: Any) -> list[QAPair]:
    """verify_pair over many pairs, each written to `out` the moment it is checked, on the kit's runner (run_many:
    resumable, concurrent on the teacher's engine). Returns the checked pairs in the input order."""
    by_id = passages if isinstance(passages, Mapping) else {p.id: p for p in passages}
    out = Path(out)
    run_many(list(pairs), lambda p: p.id, lambda p: ([verify_pair(teacher, p, by_id, **kwargs)], []), out,
             out.with_suffix(".failed.jsonl"), concurrency=concurrency, progress=progress,
             done_key=lambda r: r.get("id"), drop_on=())  # a check that cannot run stops the run: none skips the gate
    done = {p.id: p for p in iter_jsonl(out, QAPair)} if out.exists() else {}
    return [done[p.id] for p in pairs if p.id in done]
