"""Stage 2, passage-first: instructions written FROM sampled passages, each carrying the passage words that answer it.

    chosen = sample_passages(passages, n=60)                  # every chapter gets its turn before any gets two
    answer_sentences(chosen[0], 2)                             # -> [("factual", "Mr. Bingley ..."), ...]
    items, dropped = questions_from_passage(teacher, chosen[0])  # -> [Instruction(passage_id=..., span=...)], drops

A small teacher asked "write questions about Pride and Prejudice" invents premises (a proposal in the wrong chapter,
a character who is not in the book). Asked to write questions about a passage and to quote the answer, a 1.5B model
still gets who-said-what wrong and asks things the passage only hints at. So the questions are written answer-first:
the kit picks sentences of narration that state something about named people (no dialogue; see targets.py), and the
teacher only turns each into a question, a task small models do well. The sentence is the question's span, in the
passage by construction; a round trip (asked again with only the passage, the teacher must land on that sentence)
drops questions that point elsewhere. Coverage of the book is a property of the sampling instead of luck.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lecture_utils.ask import taxonomy
from lecture_utils.ask.checks import ROUND_TRIP_MIN, check_question
from lecture_utils.ask.targets import _PRONOUN, Target, _types, answer_sentences, names_in
from lecture_utils.errors import KitError
from lecture_utils.prompts import (
    NOT_IN_TEXT_TYPE,
    PASSAGE_PROMPT,
    PASSAGE_SYSTEM,
    ROUND_TRIP_PROMPT,
    format_context,
    prompt_sha,
)
from lecture_utils.records import Instruction, Passage, iter_jsonl
from lecture_utils.teacher.client import StructuredOutputError
from lecture_utils.teacher.task import ManySummary, Task, drops_path, run_many
from lecture_utils.teacher.wire import CallError
from lecture_utils.text.grounding import content_words
from lecture_utils.text.names import unknown_names
from lecture_utils.text.spans import find_span, normalize, overlap
from lecture_utils.text.tokens import dialogue_share, missing_stems

MIN_PASSAGE_WORDS = 40  # shorter passages (a letter's signature, one line of dialogue) rarely hold a question
# A question that points at "the passage" means nothing to a reader (or a student model) who cannot see it.
# "Who is Mr. Collins?": a small teacher asks it of any passage that names someone, and quotes a line that does not say.
_WHO_IS = re.compile(r"^(who|what) (is|was) ((mr|mrs|miss|lady|sir|colonel)\.? )?[a-z]\w+( [a-z]\w+)?\?$", re.I)
_DEICTIC = re.compile(r"\b(the|this|that|above|given|following) (passage|text|excerpt|extract|paragraph)\b", re.I)


class PassageFirstError(KitError, ValueError):
    """A passage or prompt that cannot be used; the message says how to fix it."""


@dataclass
class Dropped:
    """A question the checks threw out, and why (shown in the notebook, kept in the run's drops file)."""

    passage_id: str
    question: str
    quote: str
    reason: str


def sample_passages(passages: Sequence[Passage], n: int, seed: int = 0, min_words: int = MIN_PASSAGE_WORDS,
                    max_dialogue: float | None = 0.5) -> list[Passage]:
    """n passages spread over every chapter (or document): round-robin over the units in reading order, a random
    passage of each, so no chapter gets a second passage before every chapter has one. Within a chapter, passages
    with two answer sentences (see answer_sentences) come first, and passages with more than max_dialogue of their
    text in quotation marks only when a chapter has nothing better. Deterministic."""
    def prefer(p: Passage) -> tuple:  # passages with more sentences to ask about, then narration, are taken first
        return (min(len(answer_sentences(p, 2)), 2), max_dialogue is None or dialogue_share(p.text) <= max_dialogue)

    try:
        return taxonomy.sample(passages, n, seed, min_words, prefer=prefer)
    except taxonomy.TaxonomyError:
        raise PassageFirstError(f"no passage has {min_words} words or more to ask about: load a longer text, or "
                                "pass min_words= a smaller number") from None


QUESTION_SCHEMA = {"type": "object", "properties": {"question": {"type": "string", "minLength": 10}},
                   "required": ["question"]}
# One question written to one sentence of a passage (the prompt is built by build_passage_prompt).
QUESTION = Task("question from a sentence", PASSAGE_PROMPT, QUESTION_SCHEMA, system=PASSAGE_SYSTEM, max_tokens=60,
                temperature=0.0)


def where(p: Passage) -> str:
    """Where a passage sits, for the prompt and the tables: "Chapter 12" or a document's name and section."""
    if p.chapter is not None:
        return f"Chapter {p.chapter}"
    return f"{p.source}, {p.section}" if p.section else p.source


def build_passage_prompt(passage: Passage, target: Target, types: Mapping[str, str] | Sequence[str] | None = None,
                         prompt: str = PASSAGE_PROMPT, title: str = "the source") -> str:
    """Fill the passage prompt's {context} (the passage as Stage 3 shows it), {title}, {where}, {type}, {hint},
    {sentence}, {draft} and {answer}."""
    try:
        return prompt.format(context=format_context([passage], max_chars=10_000), title=title, where=where(passage),
                             type=target.kind, hint=_types(types).get(target.kind, ""), sentence=target.sentence,
                             answer=target.answer, draft=target.draft)
    except (KeyError, IndexError) as e:
        raise PassageFirstError(f"the passage prompt has an unknown placeholder {e}: use {{context}}, {{title}}, "
                                "{where}, {type}, {hint}, {sentence}, {draft} and {answer}, and write literal braces as "
                                "{{ and }}") from None


def check_item(question: str, span: str, passage: Passage, title: str = "", answer: str = "") -> str | None:
    """Why a question written from `span` (to the answer words `answer`) cannot be kept, or None: it must stand on
    its own without giving the answer away, and name only people the passage mentions."""
    question = " ".join(question.split())
    if len(question.split()) < 4 or not question[0].isalpha():
        return "question too short"
    if not question.endswith("?"):
        return "not a question"
    if _WHO_IS.match(question):
        return "asks who someone is (a passage rarely says)"
    if _DEICTIC.search(question) or re.search(r"\b(the|this) sentence\b", question, re.I):
        return 'question points at "the passage" (a reader cannot see it)'
    if _BROKEN.match(question) or ";" in question:
        return "question is not one plain sentence (a name cut in two, or two clauses run together)"
    if _unnamed_pronoun(question):
        return "question says he or she before naming anyone (whom does it mean?)"
    if find_span(span, passage.text) is None:
        return "quote is not in the passage"
    if overlap_share(question, span) >= 0.9 or (answer and normalize(answer) in normalize(question)):
        return "question gives its own answer away"
    if _adds_situation(question, span):
        return "question adds a situation the sentence does not describe"
    owner = _new_owner(question, span)
    if owner:
        return f'question says "{owner}", which the sentence does not (whose is it there?)'
    if not names_in(question) and not (re.match(r"(who|whose|which)\b", question, re.I)
                                       and overlap_share(question, span) >= 0.4):
        return "question names no one (a reader cannot tell whom it is about)"
    missing = unknown_names(question, passage.text, ignore=title.split())
    if missing:
        return f"names {', '.join(missing)}, who the passage does not mention"
    return None


# "Who de Bourgh's attention...", "Who and her sister...", "Who though flattered, received her...": a who-question
# cut from a sentence whose subject was longer than the name the kit took, or whose verb comes after an aside.
_BROKEN = re.compile(r"^who\s+(de|and|or|but|nor|after|before|though|although|on|in|at|with|while|when|if|as|of)\b",
                     re.I)


def _unnamed_pronoun(question: str) -> bool:
    """He, she or they stands for someone the question has not named: "How long had she been in Kent?". (In a
    who-question a later "his" or "she" is most often the person asked about, so those are left alone.)"""
    if re.match(r"who\b", question, re.I):
        return False
    first_name = min((question.find(n) for n in names_in(question)), default=len(question))
    pronoun = _PRONOUN.search(question)
    return bool(pronoun) and pronoun.start() < first_name


def _adds_situation(question: str, span: str) -> bool:
    """A "when/after/before/while ..." clause whose words the sentence does not have: "What did Mr. Bennet do when he
    saw Mr. Bingley?" made from a sentence that never says he saw him. Words match on their first five letters."""
    m = re.search(r"\b(when|after|before|while|as soon as)\b(.+)$", question, re.I)
    if not m:
        return False
    skip = [n.lower() for n in names_in(question)] + ["mr", "mrs", "miss", "lady", "sir"]
    words = missing_stems([w for w in content_words(m.group(2)) if len(w) > 2], skip)
    return bool(words) and len(missing_stems(words, content_words(span))) / len(words) > 0.5


_OWNED = re.compile(r"\b([A-Z][a-z]+)['\u2019]s\s+([a-z]+)")


def _new_owner(question: str, span: str) -> str:
    """A "Name's thing" the sentence does not have, most often a his/her the teacher gave an owner: "Mrs. Gardiner
    looked at her niece" asked as "Who looked at Elizabeth's niece?" (Elizabeth *is* the niece). Of the nine such
    questions the embedded teacher wrote about the novel, five got the owner wrong."""
    have = span.replace("\u2019", "'")
    return next((m.group(0).replace("\u2019", "'") for m in _OWNED.finditer(question)
                 if f"{m.group(1)}'s {m.group(2)}" not in have), "")


def _new_words(question: str, span: str) -> float:
    """Share of the question's content words that the sentence does not have (matched on their first five letters,
    so "returned" finds "return")."""
    words = [w for w in content_words(question) if len(w) > 2 and w not in _WH_WORDS]
    return len(missing_stems(words, content_words(span))) / len(words) if words else 0.0


_NEGATION = re.compile(r"\b(not|no|never|nor|nothing|none|nobody|neither|cannot)\b|n['\u2019]t\b", re.I)
_WH_WORDS = {"who", "whom", "whose", "what", "where", "when", "why", "how", "long", "much", "far", "many", "did", "does"}


def overlap_share(question: str, span: str) -> float:
    """Share of the span's content words that the question repeats (1.0: the question holds the whole answer)."""
    span_words = set(content_words(span))
    return len(span_words & set(content_words(question))) / len(span_words) if span_words else 1.0


def questions_from_passage(teacher: Any, passage: Passage, n: int = 2, *,
                           types: Mapping[str, str] | Sequence[str] | None = None,
                           prompt: str = PASSAGE_PROMPT, system: str | None = PASSAGE_SYSTEM,
                           title: str = "the source", temperature: float = 0.0,
                           max_tokens: int = 60, round_trip: bool = True,
                           round_trip_prompt: str = ROUND_TRIP_PROMPT) -> tuple[list[Instruction], list[Dropped]]:
    """One question for each of the passage's n best answer sentences; keep those that pass check_item and (round_trip)
    lead the teacher back to their sentence when asked again with only the passage.

    Ids are "{passage id}-q{k}", so a passage asked again gives the same ids. A reply that is never valid JSON
    raises StructuredOutputError (the caller records it as a failure and goes on)."""
    picked = answer_sentences(passage, n, types)
    if not picked:
        return [], [Dropped(passage.id, "", "", "no sentence of narration that names someone and holds an answer")]
    sha = prompt_sha(system, prompt)
    kept: list[Instruction] = []
    dropped: list[Dropped] = []
    for target in picked:
        text = build_passage_prompt(passage, target, types, prompt, title)
        reply = dataclasses.replace(QUESTION, system=system).send(teacher, text, temperature=temperature,
                                                                  max_tokens=max_tokens)
        question = " ".join(str(reply.data.get("question") or "").split())
        span = target.sentence
        reason = check_item(question, span, passage, title, target.answer)
        if not reason and _new_words(question, span) > 0.3:
            reason = "strays from the sentence (words it does not have)"
        if not reason and target.kind == "character" and _NEGATION.search(target.draft) and not _NEGATION.search(question):
            reason = "drops the sentence's negation (\"returning no more\" became \"return\")"
        if reason and target.kind == "character" and not check_item(target.draft, span, passage, title, target.answer):
            # a who-question built by rule is right, if plain (Gutenberg's _italics_ marks dropped)
            question, reason = re.sub(r"_(\w+)_", r"\1", target.draft), None
        if reason:
            dropped.append(Dropped(passage.id, question, span, reason))
            continue
        inst = Instruction(id=f"{passage.id}-q{len(kept) + 1}", instruction=question, category=target.kind, run=0,
                           origin="passage", passage_id=passage.id, span=span, prompt_sha=sha,
                           checks={"span": True, "names": [], "answer": target.answer})
        if round_trip:
            inst = check_question(teacher, inst, passage, prompt=round_trip_prompt, system=system)
            inst.checks["answer"] = target.answer
            found = inst.checks.get("round_trip_found") or ""
            if inst.checks["round_trip"] < ROUND_TRIP_MIN or overlap(found, target.answer) < ROUND_TRIP_MIN:
                dropped.append(Dropped(passage.id, question, span, f"round trip: asked again, the teacher found "
                                                                   f"other words ({(found or 'nothing')[:80]})"))
                continue
        kept.append(inst)
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
        far = [p for p in passages if p.unit != home.unit and len(p.text.split()) >= MIN_PASSAGE_WORDS
               and not (names_in(p.text) & names_in(inst.instruction + " " + inst.span))
               and len(span_words & set(normalize(p.text).split())) < len(span_words) / 3]
        if not far:
            continue
        other = rng.choice(far)
        out.append(Instruction(id=f"{inst.id}-neg", instruction=inst.instruction, category=NOT_IN_TEXT_TYPE, run=0,
                               origin="passage", passage_id=other.id, span="", prompt_sha=inst.prompt_sha))
    return out


def generate(teacher: Any, passages: Sequence[Passage], out: str | Path, *, n: int = 2, dropped_path: str | Path | None = None,
             progress: Any = None, **kwargs: Any) -> ManySummary:
    """questions_from_passage over many passages, appending each passage's questions to `out` as soon as they exist.
    Resumable: a passage with a line in `out` or in the drops file is not asked again."""
    out = Path(out)
    drops = Path(dropped_path) if dropped_path else drops_path(out)

    def work(passage: Passage) -> tuple[list, list]:
        kept, dropped = questions_from_passage(teacher, passage, n, **kwargs)
        return kept, dropped or ([] if kept else [Dropped(passage.id, "", "", "the teacher wrote no question")])

    return run_many(list(passages), lambda p: p.id, work, out, drops, progress=progress,
                    done_key=lambda r: r.get("passage_id"), drop_on=(StructuredOutputError, CallError),
                    failure=lambda k, e: Dropped(k, "", "", f"no valid reply: {str(e)[:160]}"),
                    what="passages", made="questions")


def load_generated(out: str | Path) -> list[Instruction]:
    """The questions generate() kept ([] when it kept none, or was given no passage)."""
    return list(iter_jsonl(out, Instruction)) if Path(out).exists() else []


def drops_table(path: str | Path) -> Iterable[dict]:
    return list(iter_jsonl(path)) if Path(path).exists() else []
