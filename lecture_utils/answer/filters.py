"""Heuristic quality filters with a funnel: each step says how many records it removed and why.

Cheap rules catch the obvious garbage before a human (or an LLM judge) spends time on it. The unsuitable-task
keywords follow Stanford Alpaca's list: tasks a text-only model cannot do (look at an image, draw a plot, play audio).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import pandas as pd

from lecture_utils.errors import KitError
from lecture_utils.records import Instruction, QAPair
from lecture_utils.text.dedup import rouge_l
from lecture_utils.text.refusal import (
    CONTEXT_PATTERNS,
    NOT_IN_TEXT_PATTERNS,
    REFUSAL_PATTERNS,
    first_match,
    says_not_in_text,
)
from lecture_utils.text.tokens import STOP_WORDS, missing_stems, words

# Alpaca's list of words that mark a task a language model cannot carry out (matched as whole words, any case).
UNSUITABLE_KEYWORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                       "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")


class FilterError(KitError, ValueError):
    """Bad input to a filter."""


@dataclass
class FilterConfig:
    """Every threshold a filter uses; set a step's value to None (or its flag to False) to switch it off."""

    min_instruction_words: int | None = 4  # Alpaca drops instructions of 3 words or fewer
    max_instruction_words: int | None = 150
    min_answer_words: int | None = 2  # "Miss Bingley" answers a who-question in full
    max_answer_words: int | None = 600
    unsuitable_keywords: tuple[str, ...] = UNSUITABLE_KEYWORDS
    require_letter_start: bool = True
    max_instruction_overlap: float | None = 0.7  # answer ROUGE-L against its own instruction
    drop_empty: bool = True
    drop_truncated: bool = True  # finish_reason "length": the teacher ran out of tokens mid-answer
    drop_refusals: bool = True
    keep_not_in_text: bool = True  # keep "the passages do not contain the answer" replies
    min_ascii_letters: float | None = 0.9  # share of letters that are a-z/A-Z
    min_stop_words: float | None = 0.1  # share of words that are common English words (texts of 8+ words)
    not_in_text_patterns: list[str] = field(default_factory=lambda: list(NOT_IN_TEXT_PATTERNS))
    refusal_patterns: list[str] = field(default_factory=lambda: list(REFUSAL_PATTERNS))
    context_patterns: list[str] = field(default_factory=lambda: list(CONTEXT_PATTERNS))  # [] keeps such answers


class Removed(NamedTuple):
    pair: object  # the removed record: a QAPair, or an Instruction / str for filter_instructions
    filter: str
    reason: str


@dataclass
class FilterResult:
    kept: list
    removed: list[Removed]
    funnel: pd.DataFrame  # columns step, removed, remaining; first row is the input

    def removed_by(self, name: str) -> list:
        return [r.pair for r in self.removed if r.filter == name]


def _word_count_check(text: str, low: int | None, high: int | None, what: str) -> str | None:
    n = len(text.split())
    if low is not None and n < low:
        return f"{what} has {n} words, fewer than {low}"
    if high is not None and n > high:
        return f"{what} has {n} words, more than {high}"
    return None


def unsuitable_keyword(text: str, keywords: tuple[str, ...] = UNSUITABLE_KEYWORDS) -> str | None:
    """The first keyword found as a whole word (any case), else None."""
    for word in keywords:
        if re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE):
            return word
    return None


def language_problem(text: str, config: FilterConfig) -> str | None:
    """Why text does not look like English, or None: mostly non-ASCII letters, or too few common English words."""
    letters = [c for c in text if c.isalpha()]
    if config.min_ascii_letters is not None and letters:
        share = sum(c.isascii() for c in letters) / len(letters)
        if share < config.min_ascii_letters:
            return f"only {share:.0%} of letters are a-z"
    tokens = words(text)
    if config.min_stop_words is not None and len(tokens) >= 8:
        share = sum(t in STOP_WORDS for t in tokens) / len(tokens)
        if share < config.min_stop_words:
            return f"only {share:.0%} common English words"
    return None


_matches = first_match


def is_not_in_text(pair: QAPair, config: FilterConfig | None = None) -> bool:
    """True if the answer says the passages do not hold the answer (flagged by the teacher, or in its words)."""
    config = config or FilterConfig()
    return says_not_in_text(pair, config.not_in_text_patterns)


# Each step: (name, applies to instructions too, check(instruction, pair or None, config) -> reason or None).
Check = Callable[[str, QAPair | None, FilterConfig], str | None]


def _empty(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    return "empty answer" if c.drop_empty and not pair.answer.strip() else None


def _truncated(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    return "answer cut off (finish_reason 'length')" if c.drop_truncated and pair.finish_reason == "length" else None


def _instruction_length(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    return _word_count_check(inst, c.min_instruction_words, c.max_instruction_words, "instruction")


def _answer_length(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    # "Not in text" replies are short by nature; their own step decides about them.
    if is_not_in_text(pair, c):
        return None
    return _word_count_check(pair.answer, c.min_answer_words, c.max_answer_words, "answer")


def _keywords(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    word = unsuitable_keyword(inst, c.unsuitable_keywords)
    return f"asks for something a text model cannot do ('{word}')" if word else None


def _letter_start(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    first = inst.strip()[:1]
    if c.require_letter_start and not (first.isascii() and first.isalpha()):
        return f"instruction starts with {first!r}, not a letter" if first else "instruction is empty"
    return None


def new_words(answer: str, instruction: str) -> list[str]:
    """Content words of the answer that the instruction does not have (compared on their first letters)."""
    return missing_stems([w for w in words(answer) if w not in STOP_WORDS], words(instruction))


def _repeats(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    """An answer that says the instruction back and adds nothing. "Who returned on Monday?" -> "Mr. Collins returned
    on Monday." repeats nearly every word, but the name is the answer: a full-sentence answer is kept."""
    if c.max_instruction_overlap is None:
        return None
    score = rouge_l(inst, pair.answer)
    if score <= c.max_instruction_overlap or new_words(pair.answer, inst):
        return None
    return f"answer repeats the instruction and adds nothing (ROUGE-L {score:.2f})"


def _refusal(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    found = _matches(pair.answer, c.refusal_patterns) if c.drop_refusals else None
    return f"refusal or assistant boilerplate ('{found}')" if found else None


def _speaks_of_passages(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    """"The passage describes ...": the user of the finished assistant never saw the passages. A "not in the text"
    answer is judged by its own step."""
    if is_not_in_text(pair, c):
        return None
    found = _matches(pair.answer, c.context_patterns)
    return f"answer speaks of passages its user never saw ('{found}')" if found else None


def _not_in_text(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    return "answer says the passages do not contain it" if not c.keep_not_in_text and is_not_in_text(pair, c) else None


def _language(inst: str, pair: QAPair | None, c: FilterConfig) -> str | None:
    for what, text in (("instruction", inst), ("answer", pair.answer if pair else "")):
        problem = language_problem(text, c)
        if problem:
            return f"{what} does not look like English: {problem}"
    return None


STEPS: list[tuple[str, bool, Check]] = [
    ("empty answer", False, _empty),
    ("truncated answer", False, _truncated),
    ("instruction length", True, _instruction_length),
    ("unsuitable task", True, _keywords),
    ("starts with non-letter", True, _letter_start),
    ("language", True, _language),
    ("refusal", False, _refusal),
    ("not in text", False, _not_in_text),
    ("speaks of the passages", False, _speaks_of_passages),
    ("answer length", False, _answer_length),
    ("repeats instruction", False, _repeats),
]


def _run(records: list, texts: list[str], pairs: list[QAPair | None], config: FilterConfig,
         instruction_only: bool) -> FilterResult:
    alive = list(range(len(records)))
    removed: list[Removed] = []
    rows = [{"step": "input", "removed": 0, "remaining": len(records)}]
    for name, for_instructions, check in STEPS:
        if instruction_only and not for_instructions:
            continue
        survivors = []
        for k in alive:
            reason = check(texts[k], pairs[k], config)
            if reason:
                removed.append(Removed(records[k], name, reason))
            else:
                survivors.append(k)
        rows.append({"step": name, "removed": len(alive) - len(survivors), "remaining": len(survivors)})
        alive = survivors
    return FilterResult([records[k] for k in alive], removed, pd.DataFrame(rows, columns=["step", "removed", "remaining"]))


def run_filters(pairs: list[QAPair], config: FilterConfig | None = None) -> FilterResult:
    """Apply every filter step in turn to Q&A pairs (Stage 3); each record is counted by the first step that drops it."""
    if not all(isinstance(p, QAPair) for p in pairs):
        raise FilterError("run_filters needs QAPair records: load them with read_jsonl(path, QAPair); "
                          "for bare instructions use filter_instructions.")
    return _run(list(pairs), [p.instruction for p in pairs], list(pairs), config or FilterConfig(), False)


def filter_instructions(instructions: list[Instruction | str], config: FilterConfig | None = None) -> FilterResult:
    """The instruction-side steps only (length, unsuitable task, first character, language), for Stage 2."""
    texts = []
    for item in instructions:
        if isinstance(item, Instruction):
            texts.append(item.instruction)
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise FilterError(f"filter_instructions needs Instruction records or strings, got {type(item).__name__}.")
    return _run(list(instructions), texts, [None] * len(texts), config or FilterConfig(), True)
