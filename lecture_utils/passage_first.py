"""Stage 2, passage-first: instructions written FROM sampled passages, each carrying the passage words that answer it.

    chosen = sample_passages(passages, n=60)                  # every chapter gets its turn before any gets two
    answer_sentences(chosen[0], 2)                             # -> [("factual", "Mr. Bingley ..."), ...]
    items, dropped = questions_from_passage(teacher, chosen[0])  # -> [Instruction(passage_id=..., span=...)], drops

A small teacher asked "write questions about Pride and Prejudice" invents premises (a proposal in the wrong chapter,
a character who is not in the book). Asked to write questions about a passage and to quote the answer, a 1.5B model
still gets who-said-what wrong and asks things the passage only hints at. So the questions are written answer-first:
the kit picks sentences of narration that state something about named people (no dialogue), and the teacher only
turns each into a question, a task small models do well. The sentence is the question's span, in the passage by
construction; a round trip (asked again with only the passage, the teacher must land on that sentence) drops
questions that point elsewhere. Coverage of the book is a property of the sampling instead of luck.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .grounding import content_words
from .prompts import (NOT_IN_TEXT_TYPE, PASSAGE_PROMPT, PASSAGE_SYSTEM, ROUND_TRIP_PROMPT, TASK_TYPES,
                      format_context, prompt_sha)
from .records import Instruction, Passage, append_jsonl, iter_jsonl
from .teacher import StructuredOutputError, TeacherError
from .verify import ROUND_TRIP_MIN, check_question, find_span, normalize, overlap, unknown_names

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
    passage of each, so no chapter gets a second passage before every chapter has one. Within a chapter, passages
    with two answer sentences (see answer_sentences) come first, and passages with more than max_dialogue of their
    text in quotation marks only when a chapter has nothing better. Deterministic."""
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
        # popped from the end: passages with more sentences to ask about, then narration, are taken first
        pool.sort(key=lambda p: (min(len(answer_sentences(p, 2)), 2),
                                 max_dialogue is None or dialogue_share(p.text) <= max_dialogue))
    chosen: list[Passage] = []
    while len(chosen) < n and any(by_unit.values()):
        for pool in by_unit.values():
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return chosen


QUESTION_SCHEMA = {"type": "object", "properties": {"question": {"type": "string", "minLength": 10}},
                   "required": ["question"]}

# Sentence ends, but not after a title ("Mr. Darcy") or an initial.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\b[A-Z]\.)\s+(?=[A-Z_\u201c\"(])")
_TITLED = re.compile(r"\b(?:Mr|Mrs|Miss|Lady|Sir|Colonel|Captain|Dr)\.? [A-Z][a-z]+")
_CAPITAL = re.compile(r"\b[A-Z][a-z]{2,}\b")
# Sentences a question cannot be written from without guessing: "Her brother ..." (whose?), "Had Lydia known ..."
_PRONOUN_START = re.compile(r"^(he|she|it|they|his|her|its|their|this|that|these|those|there|such|but|and|or|yet|"
                            r"had|were|could|would|should)\b", re.I)
_INTRO = re.compile(r"^[A-Z][^,;:]{2,40}, (?=[A-Z])")  # "After tea, Mr. Bennet retired to the library."
_PRONOUN = re.compile(r"\b(he|she|him|his|her|hers|they|them|their)\b", re.I)
_NOT_A_NAME = frozenset("The This That These Those There Then When What Which While Who Why How Her His She They "
                        "Their Its And But Yet Nor For Not Our Your You Had Has Have Was Were Such Some Every Each "
                        "Chapter Letter Nothing Here Everything Everybody Nobody Anything Something After Before "
                        "Much Many Two Three January February March April May June July August September October November "
                        "December Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())
# Quotation marks, or "I" and "you": a speech or letter that began in the passage before has no marks of its own.
_SPEECH = re.compile(r"[\u2018\u201c\u201d\"]|[.,!?;:]\u2019|\b(I|me|my|we|us|our|you|your)\b")
MIN_SENTENCE_WORDS, MAX_SENTENCE_WORDS = 8, 50
MAX_PRONOUNS = 3  # more "he", "her", "their" than this and a small teacher mixes up who is who


def sentences(text: str) -> list[str]:
    """The passage's sentences, whitespace made single."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _spoken(flat: str) -> list[tuple[int, int]]:
    """Character ranges inside quotation marks; a speech that runs on from the passage before (a closing mark
    first) or into the next (no closing mark) counts to the passage's edge."""
    spans, opened = [], None
    for m in re.finditer(r"[\u201c\u201d\"]", flat):
        mark = m.group(0)
        if mark == "\u201c" or (mark == '"' and opened is None):
            opened = m.start() if opened is None else opened
        else:
            spans.append((0 if opened is None else opened, m.end()))
            opened = None
    if opened is not None:
        spans.append((opened, len(flat)))
    return spans


def narration(text: str) -> list[str]:
    """Sentences (and the ";" clauses of long ones) that lie outside every quotation, in reading order: what the
    narrator states, not what a character claims."""
    flat = " ".join(text.split())
    spoken = _spoken(flat)
    out, at = [], 0
    whole = sentences(flat)
    if whole and (not re.search(r"[.!?][_\u2019\u201d\")]*$", flat) or re.search(r"\b(Mr|Mrs|Dr|St|[A-Z])\.$", flat)):
        whole = whole[:-1]  # the passage stops mid-sentence
    for sent in whole:
        start = flat.find(sent, at)
        at = start + len(sent)
        if any(a < at and start < b for a, b in spoken) or _SPEECH.search(sent):
            continue
        parts = [sent] if len(sent.split()) <= MAX_SENTENCE_WORDS else [c.strip() for c in sent.split(";")]
        out += [c if c.endswith((".", "!")) else c.rstrip(",:") for c in parts]
    return out


def names_in(sentence: str) -> set[str]:
    """Names a sentence mentions: titled ("Mr. Darcy") or capitalised words that are not its first word."""
    found = {m.group(0).split()[-1] for m in _TITLED.finditer(sentence)}
    first = sentence.split()[0] if sentence.split() else ""
    found |= {w for w in _CAPITAL.findall(sentence) if w not in _NOT_A_NAME and w != first.strip("_\u201c\"(")}
    return found


_NUMBER = r"(?:\d[\d,]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|thousand|half)"
_UNIT = r"(?:pounds?|miles?|years?|months?|weeks?|days?|hours?|minutes|guineas|daughters|sons|sisters|children|times|dances)"
_AMOUNT = re.compile(rf"\b(?:(?:about|nearly|only|above|almost|full|at least|more than|less than|a|an)\s+){{0,2}}"
                     rf"(?:{_NUMBER}(?:[\s-]+(?:and|or|a)?[\s-]*)?)+\s*{_UNIT}\b(?:\s+a\s+year)?", re.I)
# "at Hunsford", "to London": a place is a capitalised word after a preposition that the passage never uses as a
# person's name (checked against the passage's names in answers_of)
_PLACE = re.compile(r"\b(?:at|to|from|in|into|near) (?:the )?(?!(?:Mr|Mrs|Miss|Lady|Sir)\b)[A-Z][a-z]{2,}(?: [A-Z][a-z]+)?\b")
_PERSON = re.compile(r"(?:(?:Mr|Mrs|Miss|Lady|Sir|Colonel|Captain|Dr)\.? )?[A-Z][a-z]+(?: (?:de )?[A-Z][a-z]+)?")
_BECAUSE = re.compile(r"\bbecause\b[^;:.!?]{8,100}", re.I)
_SUBJECT = re.compile(r"^((?:(?:Mr|Mrs|Miss|Lady|Sir|Colonel|Captain|Dr)\.? )?[A-Z][a-z]+(?: (?:de )?[A-Z][a-z]+)?"
                      r"(?: and (?:(?:Mr|Mrs|Miss|Lady|Sir|Colonel|Captain|Dr)\.? )?[A-Z][a-z]+(?: [A-Z][a-z]+)?)?)(?=[ ,])")


_TITLES = {"Mr", "Mrs", "Miss", "Lady", "Sir", "Colonel", "Captain", "Dr", "Mr.", "Mrs.", "Dr."}


@dataclass(frozen=True)
class Target:
    """What one question is written from: its type, the sentence (the question's span) and the answer words in it."""

    kind: str
    sentence: str
    answer: str
    ask: str = "who"  # the question word the draft puts where the answer was

    @property
    def draft(self) -> str:
        """The kit's rough question, built from the sentence by rule: "Mr. Collins returned on the Monday" -> "Who
        returned on the Monday?"; other types mark the answer's place: "Longbourn was [how far] from Meryton?"."""
        intro = _INTRO.match(self.sentence)
        lead = intro.group(0) if intro and self.sentence[intro.end():].startswith(self.answer) else ""
        if self.kind == "character" and self.sentence[len(lead):].startswith(self.answer):
            rest = self.sentence[len(lead) + len(self.answer):]
            aside = re.match(r"\s*,([^,;]{1,80}),", rest)  # "Elizabeth, who was left by herself, now smiled"
            return (lead + "who " if lead else "Who ") + _clause(rest[aside.end():] if aside else rest) + "?"
        ask = self.ask
        start = self.sentence.find(self.answer)
        before = self.sentence[:start].rsplit(";", 1)[-1].lstrip(" ,")
        after = _clause(self.sentence[start + len(self.answer):], keep_short=True)
        return (before + f"[{ask}]" + (" " + after if after else "")).strip() + "?"


_WH = {"pound": "how much", "guinea": "how much", "mile": "how far", "year": "how long", "month": "how long",
       "week": "how long", "day": "how long", "hour": "how long", "minute": "how long"}


def _unit_of(answer: str) -> str:
    m = re.search(_UNIT + r"\b", answer, re.I)
    return m.group(0).lower().rstrip("s") if m else ""


def _clause(rest: str, keep_short: bool = False) -> str:
    """The rest of a sentence up to where its first clause ends (";", ":", "--", ", but", ", and")."""
    rest = rest.strip(" ,")
    cuts = list(re.finditer(r";|:|--|,? but |, and |, while |, which ", rest))
    for cut in cuts:
        if keep_short or len(rest[:cut.start()].split()) >= 3:
            return rest[:cut.start()].rstrip(" ,.!")
    return (rest[:cuts[0].start()] if cuts else rest).rstrip(" ,.!")


def answers_of(sentence: str, known: set[str], types: Sequence[str]) -> list[tuple[str, str, str]]:
    """(type, answer words, question word) for each question the sentence can answer: an amount ("only one mile":
    how far) or a place ("at Hunsford": where), both "factual"; a reason ("because ...": "why or how"); the person the
    sentence opens with ("Mr. Bennet": "character", a who-question), and another person it names in that clause
    ("factual", whom)."""
    out = []
    m = _AMOUNT.search(sentence)
    if m and "factual" in types and len(m.group(0).split()) >= 2:
        out.append(("factual", m.group(0).strip(), _WH.get(_unit_of(m.group(0)), "how many")))
    m = _PLACE.search(sentence)
    if m and "factual" in types and not _TITLED.search(m.group(0)) and m.group(0).split()[-1] not in known:
        out.append(("factual", m.group(0), "where"))
    m = _BECAUSE.search(sentence)
    if m and "why or how" in types:
        out.append(("why or how", m.group(0).strip(" ,"), "why"))
    intro = _INTRO.match(sentence)
    if intro and (names_in(intro.group(0)) or _TITLED.search(intro.group(0)) or intro.group(0).split()[0] in known):
        intro = None  # "Lady Catherine, Sir William and ...": a list of people, not an opening phrase
    rest = sentence[intro.end():] if intro else sentence
    m = _SUBJECT.match(rest)
    if m and m.group(1) not in _TITLES and (_TITLED.match(m.group(1)) or m.group(1).split()[0] in known):
        if "character" in types:
            out.append(("character", m.group(1), "who"))
        clause = re.split(r";|:|--", rest[m.end():], maxsplit=1)[0]
        other = next((o for o in _PERSON.finditer(clause) if o.group(0) not in _TITLES and
                      (_TITLED.match(o.group(0)) or (o.group(0).split()[0] in known and not
                                                     re.search(r"\b(at|to|from|in|into|near|of|on)\s+$", clause[:o.start()])))
                      and o.group(0).split()[-1] not in m.group(1)), None)
        if other and "factual" in types:
            out.append(("factual", other.group(0), "whom"))
    return out


def answer_sentences(passage: Passage, n: int = 2, types: Mapping[str, str] | Sequence[str] | None = None
                     ) -> list[Target]:
    """Up to n Targets to write questions to: sentences of narration (no quotation marks) of MIN_SENTENCE_WORDS to
    MAX_SENTENCE_WORDS words that name someone and hold an answer (see answers_of), best first: a sentence that opens
    with a name says plainly whom it is about; pronouns leave the question to guess. Types are spread: a second
    sentence of a type already taken gives way to one of another type. Deterministic."""
    names = list(_types(types))
    # a sentence's first word is a name if the passage also writes it inside a sentence
    known = set().union(*(names_in(sent) for sent in sentences(passage.text)))
    scored = []
    for pos, sent in enumerate(narration(passage.text)):
        words = sent.split()
        if not MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS or len(sent) > MAX_SPAN_CHARS or sent.endswith("?"):
            continue
        opens_with_name = bool(_TITLED.match(sent)) or words[0].strip("_(,") in known
        who = names_in(sent) | ({words[0].strip("_(,")} if opens_with_name else set())
        pronouns = len(_PRONOUN.findall(sent))
        if not who or _PRONOUN_START.match(sent) or pronouns > MAX_PRONOUNS:
            continue
        for k, (kind, answer, ask) in enumerate(answers_of(sent, known, names)):
            target = Target(kind, sent, answer, ask)
            if len(content_words(target.draft)) < 5 and not names_in(target.draft[4:]):
                continue  # "Who made no answer?": true of a dozen scenes, so no question at all
            score = min(len(who), 3) + (2 if opens_with_name else 0) - pronouns + (1 if kind != "character" else 0)
            scored.append((score, (pos, k), target))
    scored.sort(key=lambda x: (-x[0], x[1]))
    chosen: dict[tuple[int, int], Target] = {}
    for _, at, t in scored:  # first pass: one question per type
        if len(chosen) < n and t.kind not in {c.kind for c in chosen.values()}:
            chosen[at] = t
    for _, at, t in scored:  # then the best of the rest
        if len(chosen) < n and at not in chosen:
            chosen[at] = t
    return [chosen[at] for at in sorted(chosen)]


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


def build_passage_prompt(passage: Passage, target: Target, types: Mapping[str, str] | Sequence[str] | None = None,
                         prompt: str = PASSAGE_PROMPT, title: str = "Pride and Prejudice") -> str:
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
    stems = {w[:5] for w in content_words(span)}
    skip = {n.lower()[:5] for n in names_in(question)} | {"mr", "mrs", "miss", "lady", "sir"}
    words = [w for w in content_words(m.group(2)) if len(w) > 2 and w[:5] not in skip]
    return bool(words) and sum(w[:5] in stems for w in words) / len(words) < 0.5


def _new_words(question: str, span: str) -> float:
    """Share of the question's content words that the sentence does not have (matched on their first five letters,
    so "returned" finds "return")."""
    stems = {w[:5] for w in content_words(span)}
    words = [w for w in content_words(question) if len(w) > 2 and w not in _WH_WORDS]
    return sum(w[:5] not in stems for w in words) / len(words) if words else 0.0


_WH_WORDS = {"who", "whom", "whose", "what", "where", "when", "why", "how", "long", "much", "far", "many", "did", "does"}


def overlap_share(question: str, span: str) -> float:
    """Share of the span's content words that the question repeats (1.0: the question holds the whole answer)."""
    span_words = set(content_words(span))
    return len(span_words & set(content_words(question))) / len(span_words) if span_words else 1.0


def questions_from_passage(teacher: Any, passage: Passage, n: int = 2, *,
                           types: Mapping[str, str] | Sequence[str] | None = None,
                           prompt: str = PASSAGE_PROMPT, system: str | None = PASSAGE_SYSTEM,
                           title: str = "Pride and Prejudice", temperature: float = 0.0,
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
        reply = teacher.structured(text, QUESTION_SCHEMA, system=system, temperature=temperature,
                                   max_tokens=max_tokens, attempts=2)
        question = " ".join(str(reply.data.get("question") or "").split())
        span = target.sentence
        reason = check_item(question, span, passage, title, target.answer)
        if not reason and _new_words(question, span) > 0.3:
            reason = "strays from the sentence (words it does not have)"
        if reason and target.kind == "character" and not check_item(target.draft, span, passage, title, target.answer):
            question, reason = target.draft, None  # a who-question built by rule is right, if plain
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
        far = [p for p in passages if _unit(p) != _unit(home) and len(p.text.split()) >= MIN_PASSAGE_WORDS
               and not (names_in(p.text) & names_in(inst.instruction + " " + inst.span))
               and len(span_words & set(normalize(p.text).split())) < len(span_words) / 3]
        if not far:
            continue
        other = rng.choice(far)
        out.append(Instruction(id=f"{inst.id}-neg", instruction=inst.instruction, category=NOT_IN_TEXT_TYPE, run=0,
                               origin="passage", passage_id=other.id, span="", prompt_sha=inst.prompt_sha))
    return out


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
