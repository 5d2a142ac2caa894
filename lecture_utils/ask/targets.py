"""What a passage-first question is written to: the sentence of narration it comes from and the answer words in it.

The kit, not the teacher, does this part. A passage is split into sentences; those inside quotation marks, or that
read like speech, are set aside, since they say what a character claims rather than what happened. In the sentences
left, answers_of looks for an amount, a place, a reason or a person, and answer_sentences ranks the results into
Targets, favouring sentences that open with a name over those that lean on pronouns. passage_first.py then asks
the teacher to turn each Target into a question and checks what comes back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from lecture_utils.prompts import TASK_TYPES
from lecture_utils.records import Passage
from lecture_utils.text.grounding import content_words
from lecture_utils.text.names import TITLE_WORDS, TITLED_NAME
from lecture_utils.text.sentences import ends_sentence, split_sentences

MAX_SPAN_CHARS = 400  # a longer sentence is no target: the span a question points to stays short

_TITLED = TITLED_NAME
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
    """The passage's sentences (text.sentences' rule), whitespace made single."""
    return split_sentences(" ".join(text.split()))


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
    if whole and not ends_sentence(flat):
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
_PLACE = re.compile(rf"\b(?:at|to|from|in|into|near) (?:the )?(?!(?:{TITLE_WORDS})\b)[A-Z][a-z]{{2,}}(?: [A-Z][a-z]+)?\b")
_PERSON = re.compile(rf"(?:(?:{TITLE_WORDS})\.? )?[A-Z][a-z]+(?: (?:de )?[A-Z][a-z]+)?")
_BECAUSE = re.compile(r"\bbecause\b[^;:.!?]{8,100}", re.I)
_SUBJECT = re.compile(rf"^((?:(?:{TITLE_WORDS})\.? )?[A-Z][a-z]+(?: (?:de )?[A-Z][a-z]+)?"
                      rf"(?: and (?:(?:{TITLE_WORDS})\.? )?[A-Z][a-z]+(?: [A-Z][a-z]+)?)?)(?=[ ,])")


# an inverted passive ("with ready delight was he received ... between Elizabeth and Lydia"): the person named after
# it is no object to ask "whom" about, and the teacher turns the sentence round ("Who did Mr. Wickham receive ...?")
_PASSIVE = re.compile(r"\b(?:was|were)\s+(?:he|she|they|it|I|we)\s+\w+(?:ed|en)\b")
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
        if other and "factual" in types and not _PASSIVE.search(clause):
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


def _types(types: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """Question types with the hint the teacher sees for each (a list of names takes the kit's hints)."""
    if types is None:
        return dict(TASK_TYPES)
    if isinstance(types, Mapping):
        return dict(types)
    return {t: TASK_TYPES.get(t, t) for t in types}
