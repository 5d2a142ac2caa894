"""The checks Stage 2 makes and Stage 3 makes again: the span a question was written to is in its passage; the
teacher, asked the question again with only that passage, finds words that overlap the span (ROUND_TRIP); and the
teacher's YES/NO on whether every fact of an answer is stated in the passages (FAITHFUL)."""

from __future__ import annotations

import dataclasses
from typing import Any

from lecture_utils.prompts import FAITHFUL_PROMPT, RAG_SYSTEM, ROUND_TRIP_PROMPT, format_context
from lecture_utils.records import Instruction, Passage, QAPair
from lecture_utils.teacher.client import StructuredOutputError
from lecture_utils.teacher.task import VERDICT_SCHEMA, Task
from lecture_utils.text.names import unknown_names
from lecture_utils.text.spans import find_span, overlap

ROUND_TRIP_MIN = 0.5  # share of the shorter side's content words that the re-found words and the span share
QUOTE_SCHEMA = {"type": "object", "properties": {"quote": {"type": "string"}}, "required": ["quote"]}
# The question asked again, shown only its own passage: the teacher copies the words that answer it.
FAITHFUL = Task("faithful", FAITHFUL_PROMPT, VERDICT_SCHEMA, system=RAG_SYSTEM, max_tokens=12, temperature=0.0)
ROUND_TRIP = Task("round trip", ROUND_TRIP_PROMPT, QUOTE_SCHEMA, system=RAG_SYSTEM, max_tokens=80, temperature=0.0)


def round_trip(teacher: Any, instruction: Instruction | QAPair, source: Passage, *, prompt: str = ROUND_TRIP_PROMPT,
               system: str | None = RAG_SYSTEM) -> tuple[float, str]:
    """(overlap with the span, the words the teacher found) when asked the question again, shown only the source."""
    task = dataclasses.replace(ROUND_TRIP, prompt=prompt, system=system)
    data = task.one(teacher, context=format_context([source]), instruction=instruction.instruction)
    found = " ".join(str(data.get("quote") or "").split())
    if not found or found.upper().strip(". ") == "NONE":
        return 0.0, found
    return round(overlap(found, instruction.span), 3), found


def check_question(teacher: Any, instruction: Instruction, source: Passage, **kwargs: Any) -> Instruction:
    """The question-level checks (Stage 2): its span is in the source, and asking it again leads back to the span."""
    checks = {"span": find_span(instruction.span, source.text) is not None,
              "names": unknown_names(instruction.instruction, source.text)}
    try:
        checks["round_trip"], checks["round_trip_found"] = round_trip(teacher, instruction, source, **kwargs)
    except StructuredOutputError:
        checks["round_trip"], checks["round_trip_found"] = 0.0, "(no valid reply)"
    return dataclasses.replace(instruction, checks=checks)
