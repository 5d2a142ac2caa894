"""An LLM judge that scores each pair on the curation checklist, and the numbers that say when to trust it.

The judge sees the retrieved passages (a judge that cannot see the source cannot judge accuracy). Its scores only
pre-fill the curation panel; the human decides. Cohen's kappa between judge and human decisions shows how far the
judge can be trusted: near 1 it agrees beyond chance, near 0 it is no better than guessing from the label mix.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pandas as pd

from lecture_utils.errors import KitError
from lecture_utils.prompts import format_context
from lecture_utils.records import CHECKLIST, STATUSES, Passage, QAPair
from lecture_utils.teacher.task import Task

JUDGE_SYSTEM = ("You are a careful, strict reviewer of training data for a question-answering assistant. You judge "
                "answers only against the source passages you are shown, never against your own memory.")

JUDGE_PROMPT = """Review one instruction-answer pair that will be used to train an assistant. The answer was written
from the source passages below; judge it against those passages only.

Score each criterion from 1 (very poor) to 5 (excellent):
- accuracy: every claim is backed by the passages; nothing is invented, distorted or contradicted.
  An answer saying the passages do not contain the answer is accurate only if that is true.
- helpfulness: the pair teaches something useful about the source; a good example for the assistant to learn from.
- clarity: clear, well-formed language in a tone fit for the assistant.
- conciseness: no waffle, repetition or filler; it could not be much shorter without losing meaning.
- completeness: it addresses everything the instruction asks for.

Start with a short rationale (one to three sentences) naming the main strength or problem, then give the scores.

Instruction: {instruction}

Answer: {answer}

Source passages:
{context}

Reply with JSON only, in this shape:
{{"rationale": "...", "accuracy": 1-5, "helpfulness": 1-5, "clarity": 1-5, "conciseness": 1-5, "completeness": 1-5}}"""

NO_PASSAGES = "(no passages were retrieved for this instruction)"


class JudgeError(KitError, ValueError):
    """Bad input to the judge or to the agreement measures."""


def judge_schema() -> dict:
    """JSON schema of the judge's reply; the rationale comes first so the model explains before it scores."""
    score = {"type": "integer", "minimum": 1, "maximum": 5}
    return {
        "type": "object",
        "properties": {"rationale": {"type": "string", "minLength": 1}, **{c: dict(score) for c in CHECKLIST}},
        "required": ["rationale", *CHECKLIST],
        "additionalProperties": False,
    }


# The LLM judge: five 1-5 scores after a rationale, asked once per pair (seed 0, so a re-run asks the same).
JUDGE = Task("judge", JUDGE_PROMPT, judge_schema(), system=JUDGE_SYSTEM, max_tokens=400, attempts=None, seed=0)


@dataclass
class JudgeScore:
    pair_id: str
    scores: dict[str, int]  # criterion -> 1..5; empty if the judge failed
    rationale: str
    suggested_status: str  # "accept" | "fix" | "discard", or "" if the judge failed
    judge: str = ""  # model that judged
    error: str = field(default="", repr=False)


def suggested_status(scores: Mapping[str, int]) -> str:
    """The rule: discard if accuracy <= 2 or any score is 1; accept if every score >= 4; otherwise fix.

    Inaccurate answers cannot be saved by polish, so they go; ">= 4" matches the panel, which ticks a checklist
    item for a score of 4 or 5.
    """
    missing = [c for c in CHECKLIST if c not in scores]
    if missing:
        raise JudgeError(f"scores lack {', '.join(missing)}: a judge reply must score all of {', '.join(CHECKLIST)}.")
    values = [int(scores[c]) for c in CHECKLIST]
    if int(scores["accuracy"]) <= 2 or min(values) <= 1:
        return "discard"
    if min(values) >= 4:
        return "accept"
    return "fix"


def _passages_for(pair: QAPair, passages: Iterable[Passage] | Mapping[str, Passage]) -> list[Passage]:
    by_id = dict(passages) if isinstance(passages, Mapping) else {p.id: p for p in passages}
    wanted = [r.id for r in pair.retrieved]
    found = [by_id[i] for i in wanted if i in by_id]
    if wanted and not found:
        raise JudgeError(f"none of the passages retrieved for pair {pair.id} ({', '.join(wanted[:3])}...) was given: "
                         "pass the passages loaded from passages.jsonl of the same run.")
    return found


def judge_messages(pair: QAPair, passages: Iterable[Passage] | Mapping[str, Passage],
                   prompt: str = JUDGE_PROMPT) -> str:
    """The judge prompt for one pair, with its retrieved passages filled in."""
    shown = _passages_for(pair, passages)
    context = format_context(shown) if shown else NO_PASSAGES
    return prompt.format(instruction=pair.instruction, answer=pair.answer, context=context)


def judge_pair(teacher: Any, pair: QAPair, passages: Iterable[Passage] | Mapping[str, Passage], *,
               prompt: str = JUDGE_PROMPT, system: str | None = JUDGE_SYSTEM, temperature: float = 0.0,
               max_tokens: int = 400, seed: int | None = 0) -> JudgeScore:
    """Ask the teacher to score one pair on the five criteria; `passages` may hold the whole corpus."""
    task = dataclasses.replace(JUDGE, system=system, temperature=temperature, max_tokens=max_tokens, seed=seed)
    reply = task.send(teacher, judge_messages(pair, passages, prompt))
    scores = {c: int(reply.data[c]) for c in CHECKLIST}
    return JudgeScore(pair.id, scores, reply.data["rationale"].strip(), suggested_status(scores), reply.model)


def judge_pairs(teacher: Any, pairs: list[QAPair], passages: Iterable[Passage] | Mapping[str, Passage],
                **options: Any) -> list[JudgeScore]:
    """judge_pair for each pair; a pair the judge fails on gets empty scores and the error, and the rest go on."""
    by_id = dict(passages) if isinstance(passages, Mapping) else {p.id: p for p in passages}
    out = []
    for pair in pairs:
        try:
            out.append(judge_pair(teacher, pair, by_id, **options))
        except (RuntimeError, ValueError) as e:  # TeacherError is a RuntimeError, JudgeError a ValueError
            out.append(JudgeScore(pair.id, {}, "", "", error=str(e)))
    return out


# --- agreement between judge and human ---------------------------------------------------------------------------


def _status_map(values: Any) -> dict[str, str] | list[str]:
    """{pair_id: status} from a dict, JudgeScores or Decisions (the last one per pair wins); a list of labels as is."""
    if isinstance(values, Mapping):
        return {str(k): str(v) for k, v in values.items()}
    values = list(values)
    if all(isinstance(v, str) for v in values):
        return values
    out: dict[str, str] = {}
    for v in values:
        status = getattr(v, "suggested_status", getattr(v, "status", None))
        if not hasattr(v, "pair_id") or status is None:
            raise JudgeError(f"cannot read a status from {type(v).__name__}: pass labels, a dict pair_id -> status, "
                             "JudgeScores or Decisions.")
        if status:  # a failed judgement has no status to compare
            out[v.pair_id] = status
    return out


def _aligned(a: Any, b: Any) -> tuple[list[str], list[str]]:
    a, b = _status_map(a), _status_map(b)
    if isinstance(a, dict) != isinstance(b, dict):
        raise JudgeError("give both sides as plain label lists, or both with pair ids (dicts, JudgeScores, Decisions).")
    if isinstance(a, dict):
        common = [k for k in a if k in b]
        a, b = [a[k] for k in common], [b[k] for k in common]
    if len(a) != len(b):
        raise JudgeError(f"the two label lists differ in length ({len(a)} vs {len(b)}): they must describe the same "
                         "pairs in the same order.")
    if not a:
        raise JudgeError("no pair has both a judge and a human status yet: review some pairs first.")
    return a, b


def cohen_kappa(a: Any, b: Any) -> float:
    """Cohen's kappa: agreement beyond chance, (p_observed - p_chance) / (1 - p_chance); nan if undefined.

    It is undefined (nan) when both raters gave every item one and the same label: no disagreement was possible.
    """
    a, b = _aligned(a, b)
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    if chance == 1.0:
        return float("nan")
    return (observed - chance) / (1 - chance)


def agreement_table(judge_statuses: Any, human_statuses: Any) -> pd.DataFrame:
    """Confusion table: rows the judge's suggestion, columns the human decision, cells the number of pairs."""
    a, b = _aligned(judge_statuses, human_statuses)
    labels = list(STATUSES) + sorted((set(a) | set(b)) - set(STATUSES))
    table = pd.DataFrame(0, index=pd.Index(labels, name="judge"), columns=pd.Index(labels, name="human"), dtype=int)
    for x, y in zip(a, b):
        table.loc[x, y] += 1
    return table
