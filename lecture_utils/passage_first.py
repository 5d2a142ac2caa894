"""Stage 2, passage-first: instructions written FROM sampled passages, each carrying the passage words that answer it.

    chosen = sample_passages(passages, n=60)                  # every chapter gets its turn before any gets two
    items, dropped = questions_from_passage(teacher, chosen[0])  # -> [Instruction(passage_id=..., span=...)], drops

A small teacher asked "write questions about Pride and Prejudice" invents premises (a proposal in the wrong chapter,
a character who is not in the book). Asked to write questions about the passage in front of it, and to copy the words
that answer each one, it can be checked: a quote that is not in the passage drops the question. Coverage of the book
becomes a property of the sampling instead of luck.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .prompts import NOT_IN_TEXT_TYPE, PASSAGE_PROMPT, PASSAGE_SYSTEM, ROUND_TRIP_PROMPT, TASK_TYPES, prompt_sha
from .records import Instruction, Passage, append_jsonl, iter_jsonl
from .teacher import StructuredOutputError, TeacherError
from .verify import ROUND_TRIP_MIN, check_question, find_span, normalize, unknown_names

MIN_PASSAGE_WORDS = 40  # shorter passages (a letter's signature, one line of dialogue) rarely hold a question
MIN_SPAN_WORDS = 3
MAX_SPAN_CHARS = 400
# A question that points at "the passage" means nothing to a reader (or a student model) who cannot see it.
# "Who is Mr. Collins?": a small teacher asks it of any passage that names someone, and quotes a line that does not say.
_WHO_IS = re.compile(r"^(who|what) (is|was) ((mr|mrs|miss|lady|sir|colonel)\.? )?[a-z]\w+( [a-z]\w+)?\?$", re.I)
_DIALOGUE = re.compile(r"\u201c[^\u201d]*\u201d|\"[^\"]*\"")
_DEICTIC = re.compile(r"\b(the|this|that|above|given|following) (passage|text|excerpt|extract|paragraph)\b", re.I)


class PassageFirstError(ValueError):
    """A passage or prompt that cannot be used; the message says how to fix it."""


@dataclass
class Dropped:
    """A question the checks threw out, and why (shown in the notebook, kept in the run's drops file)."""

    passage_id: str
    question: str
    quote: str
    reason: str


def _unit(p: Passage) -> Any:
    return p.chapter if p.chapter is not None else p.source


def dialogue_share(text: str) -> float:
    """Share of the text's characters inside quotation marks: who-said-what is where a small teacher goes wrong."""
    inside = sum(len(m) for m in _DIALOGUE.findall(text))
    return inside / max(1, len(text))


def sample_passages(passages: Sequence[Passage], n: int, seed: int = 0, min_words: int = MIN_PASSAGE_WORDS,
                    max_dialogue: float | None = 0.5) -> list[Passage]:
    """n passages spread over every chapter (or document): round-robin over the units in reading order, a random
    passage of each, so no chapter gets a second passage before every chapter has one. Passages with more than
    max_dialogue of their text in quotation marks are taken only when a chapter has no other. Deterministic."""
    rng = random.Random(seed)
    by_unit: dict[Any, list[Passage]] = {}
    for p in passages:
        if len(p.text.split()) >= min_words:
            by_unit.setdefault(_unit(p), []).append(p)
    if not by_unit:
        raise PassageFirstError(f"no passage has {min_words} words or more to ask about: load a longer text, or "
                                "pass min_words= a smaller number")
    for pool in by_unit.values():
        rng.shuffle(pool)
        if max_dialogue is not None:  # popped from the end: narration last in the list is taken first
            pool.sort(key=lambda p: dialogue_share(p.text) <= max_dialogue)
    chosen: list[Passage] = []
    while len(chosen) < n and any(by_unit.values()):
        for pool in by_unit.values():
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return chosen


def passage_schema(n: int, types: Sequence[str]) -> dict:
    item = {"type": "object",
            "properties": {"type": {"type": "string", "enum": list(types)},
                           "question": {"type": "string", "minLength": 10},
                           "quote": {"type": "string", "minLength": 8}},
            "required": ["type", "question", "quote"]}
    return {"type": "object", "properties": {"items": {"type": "array", "items": item, "minItems": 1, "maxItems": n}},
            "required": ["items"]}


def where(p: Passage) -> str:
    """Where a passage sits, for the prompt and the tables: "Chapter 12" or a document's name and section."""
    if p.chapter is not None:
        return f"Chapter {p.chapter}"
    return f"{p.source}, {p.section}" if p.section else p.source


def _types(types: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """Question types with the hint the teacher sees for each (a list of names takes the kit's hints)."""
    if types is None:
        return dict(TASK_TYPES)
    if isinstance(types, Mapping):
        return dict(types)
    return {t: TASK_TYPES.get(t, t) for t in types}


def build_passage_prompt(passage: Passage, n: int = 2, types: Mapping[str, str] | Sequence[str] | None = None,
                         prompt: str = PASSAGE_PROMPT, title: str = "Pride and Prejudice") -> str:
    """Fill the passage prompt's {n}, {title}, {types}, {where} and {passage}."""
    described = "\n".join(f"  - {name}: {hint}" for name, hint in _types(types).items())
    try:
        return prompt.format(n=n, title=title, types=described, where=where(passage),
                             passage=" ".join(passage.text.split()))
    except (KeyError, IndexError) as e:
        raise PassageFirstError(f"the passage prompt has an unknown placeholder {e}: use {{n}}, {{title}}, {{types}}, "
                                "{where} and {passage}, and write literal braces as {{ and }}") from None


def check_item(item: Any, passage: Passage, types: Sequence[str], title: str = "") -> tuple[str, str, str, str | None]:
    """(type, question, span, reason-or-None) for one generated item: the quote must be in the passage, the question
    must stand on its own."""
    if not isinstance(item, dict):
        return "", "", "", "not an object"
    kind = str(item.get("type") or "").strip().lower()
    question = " ".join(str(item.get("question") or "").split())
    quote = " ".join(str(item.get("quote") or "").split())
    if kind not in types:
        kind = types[0]
    if len(question.split()) < 4 or not question[0].isalpha():
        return kind, question, quote, "question too short"
    if _WHO_IS.match(question):
        return kind, question, quote, "asks who someone is (a passage rarely says)"
    if _DEICTIC.search(question):
        return kind, question, quote, 'question points at "the passage" (a reader cannot see it)'
    if len(quote.split()) < MIN_SPAN_WORDS or len(quote) > MAX_SPAN_CHARS:
        return kind, question, quote, f"quote not {MIN_SPAN_WORDS} words to {MAX_SPAN_CHARS} characters long"
    span = find_span(quote, passage.text)
    if span is None:
        return kind, question, quote, "quote is not in the passage"
    if normalize(span) in normalize(question):
        return kind, question, span, "question gives its own answer away"
    missing = unknown_names(question, passage.text, ignore=title.split())
    if missing:
        return kind, question, span, f"names {', '.join(missing)}, who the passage does not mention"
    return kind, question, span, None


def questions_from_passage(teacher: Any, passage: Passage, n: int = 2, *,
                           types: Mapping[str, str] | Sequence[str] | None = None,
                           prompt: str = PASSAGE_PROMPT, system: str | None = PASSAGE_SYSTEM,
                           title: str = "Pride and Prejudice", temperature: float = 0.3,
                           max_tokens: int | None = None, round_trip: bool = True,
                           round_trip_prompt: str = ROUND_TRIP_PROMPT) -> tuple[list[Instruction], list[Dropped]]:
    """Ask the teacher for n questions about one passage; keep those whose quote is in the passage and (round_trip)
    that lead the teacher back to that quote when asked again.

    Ids are "{passage id}-q{k}", so a passage asked again gives the same ids. A reply that is never valid JSON raises
    StructuredOutputError (the caller records it as a failure and goes on)."""
    names = list(_types(types))
    text = build_passage_prompt(passage, n, types, prompt, title)
    reply = teacher.structured(text, passage_schema(n, names), system=system, temperature=temperature,
                               max_tokens=max_tokens or 90 * n + 60, attempts=2)
    sha = prompt_sha(system, prompt)
    kept: list[Instruction] = []
    dropped: list[Dropped] = []
    seen: set[str] = set()
    for item in reply.data.get("items", []):
        kind, question, span, reason = check_item(item, passage, names, title)
        if reason is None and normalize(question) in seen:
            reason = "same question twice"
        if reason:
            dropped.append(Dropped(passage.id, question, span, reason))
            continue
        seen.add(normalize(question))
        inst = Instruction(id=f"{passage.id}-q{len(kept) + 1}", instruction=question, category=kind, run=0,
                           origin="passage", passage_id=passage.id, span=span, prompt_sha=sha,
                           checks={"span": True, "names": []})
        if round_trip:
            inst = check_question(teacher, inst, passage, prompt=round_trip_prompt)
            if inst.checks["round_trip"] < ROUND_TRIP_MIN:
                found = inst.checks.get("round_trip_found") or "nothing"
                dropped.append(Dropped(passage.id, question, span, f"round trip: asked again, the teacher found "
                                                                   f"other words ({found[:80]})"))
                continue
        kept.append(dataclasses.replace(inst, id=f"{passage.id}-q{len(kept) + 1}"))
    return kept, dropped


def not_in_text_questions(instructions: Sequence[Instruction], passages: Sequence[Passage], every: int = 8,
                          seed: int = 0) -> list[Instruction]:
    """Negatives built on purpose: every `every`-th question is asked again against a passage from a far-away chapter
    that shares none of its answer's words, so the right answer is "the passages do not say"."""
    rng = random.Random(seed)
    by_id = {p.id: p for p in passages}
    out = []
    for inst in list(instructions)[::max(1, every)]:
        home = by_id.get(inst.passage_id)
        if home is None:
            continue
        span_words = set(normalize(inst.span).split()) | set(normalize(inst.instruction).split())
        far = [p for p in passages if _unit(p) != _unit(home) and len(p.text.split()) >= MIN_PASSAGE_WORDS
               and not (_names(p.text) & _names(inst.instruction + " " + inst.span))
               and len(span_words & set(normalize(p.text).split())) < len(span_words) / 3]
        if not far:
            continue
        other = rng.choice(far)
        out.append(Instruction(id=f"{inst.id}-neg", instruction=inst.instruction, category=NOT_IN_TEXT_TYPE, run=0,
                               origin="passage", passage_id=other.id, span="", prompt_sha=inst.prompt_sha))
    return out


def _names(text: str) -> set[str]:
    """Capitalised words that are not sentence starts: a rough list of the names a text mentions."""
    return {m.group(1) for m in re.finditer(r"(?<![.!?\"]\s)(?<!^)\b([A-Z][a-z]{2,})\b", text)} - {"The", "She", "His"}


@dataclass
class GenerationSummary:
    passages: int = 0
    asked: int = 0  # passages sent to the teacher in this call (the rest were done before)
    kept: int = 0
    dropped: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return (f"{self.passages} passages ({self.asked} asked now): {self.kept} questions kept, {self.dropped} dropped "
                f"by the checks, {self.failed} passages failed")


def generate(teacher: Any, passages: Sequence[Passage], out: str | Path, *, n: int = 2, dropped_path: str | Path | None = None,
             progress: Any = None, **kwargs: Any) -> GenerationSummary:
    """questions_from_passage over many passages, appending each passage's questions to `out` as soon as they exist.
    Resumable: a passage with a line in `out` or in the drops file is not asked again."""
    out = Path(out)
    drops = Path(dropped_path) if dropped_path else drops_path(out)
    done = {r["passage_id"] for path in (out, drops) if path.exists() for r in iter_jsonl(path)}
    s = GenerationSummary(passages=len(passages))
    for passage in (progress(passages) if progress else passages):
        if passage.id in done:
            continue
        s.asked += 1
        try:
            kept, dropped = questions_from_passage(teacher, passage, n, **kwargs)
        except (StructuredOutputError, TeacherError) as e:
            if isinstance(e, TeacherError) and not isinstance(e, StructuredOutputError) and "no recorded reply" not in str(e):
                raise  # an unreachable teacher or a missing key stops the run; what is written stays
            append_jsonl(drops, Dropped(passage.id, "", "", f"no valid reply: {str(e)[:160]}"))
            s.failed += 1
            continue
        for inst in kept:
            append_jsonl(out, inst)
        for d in dropped:
            append_jsonl(drops, d)
        if not kept and not dropped:
            append_jsonl(drops, Dropped(passage.id, "", "", "the teacher wrote no question"))
        s.kept += len(kept)
        s.dropped += len(dropped)
    return s


def drops_path(out: str | Path) -> Path:
    """Where generate() keeps the questions its checks threw out, beside its output file."""
    out = Path(out)
    return out.with_name(out.stem + ".dropped.jsonl")


def load_generated(out: str | Path) -> list[Instruction]:
    return list(iter_jsonl(out, Instruction))


def drops_table(path: str | Path) -> Iterable[dict]:
    return list(iter_jsonl(path)) if Path(path).exists() else []
