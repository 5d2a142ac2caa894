"""The taxonomy: the kinds of task a dataset should teach, and which sampled passages each kind is written from.

    types = resolve("novel")                       # or "docs", or your own list of TaskType / dicts
    jobs = assign(chosen, types, index, seed=0)    # [Job(type, passages)]: every type in turn, two passages for "compare"

A task type says what such a task asks and what a good answer does. Generation hands each sampled passage one type,
in turn, so no type can crowd out the others; the teacher writes the task to that type (see grounded.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from lecture_utils.errors import KitError
from lecture_utils.records import Passage
from lecture_utils.text.tokens import dialogue_share, search_words


class TaxonomyError(KitError, ValueError):
    """A taxonomy the kit cannot use; the message says how to fix it."""


@dataclass(frozen=True)
class TaskType:
    name: str
    asks: str  # what such a task asks for
    good_answer: str  # what a good answer to it does
    pattern: str = ""  # the shape of such an instruction, <slots> to fill with the passages' names and events
    passages: int = 1  # 2: the task is written from two related passages (compare, when to use which)

    def describe(self) -> str:
        return f"{self.name}: {self.asks} A good answer {self.good_answer}"


# For stories: novels, memoirs, histories. Each asks something a reader of the whole book would want to know.
NOVEL = [
    TaskType("explain why", "asks the reason behind something a named person does or feels.",
             "gives the reason the passages give, and the event it explains.",
             "Why does <person> <do what they do>?"),
    TaskType("character", "asks what a named person is like, as their words and actions show it.",
             "names a trait or two and the behaviour that shows each.",
             "What does <person>'s <action> show about <person>'s character?"),
    TaskType("relationship", "asks how two named people feel about or behave towards each other.",
             "says what each thinks of or does towards the other, and why.",
             "How does <person> feel about <other person> after <event>, and why?"),
    TaskType("summarise", "asks for a short summary of an episode, named by who is in it and what happens.",
             "says in two to four sentences who does what, in order, and how it ends.",
             "Summarise what happens when <person> <event>."),
    TaskType("compare", "asks to compare two moments of the story: how a person, a relationship or a situation "
             "differs between them.", "says what is alike and what differs, with a detail from each moment.",
             "How does <person or situation> at <first moment> differ from <second moment>?", passages=2),
    TaskType("evidence", "asks what shows that a claim about a named person or situation is true.",
             "quotes a few words in quotation marks and explains what they show.",
             "What shows that <person> <claim about them>?"),
    TaskType("recall a fact", "asks for a concrete fact: who, what, where, when or how much.",
             "states the fact in a full sentence, with the situation it belongs to.",
             "Where/When/How much/What <question about a named person or event>?"),
    TaskType("setting and society", "asks about a place, a custom, money, rank or manners in the story, and what it "
             "means to a named person.", "explains the place or custom and its effect on that person.",
             "What does <place or custom> mean for <person>?"),
]

# For documentation: manuals, wikis, API guides, help pages.
DOCS = [
    TaskType("how do I", "asks how to do a concrete thing a user of the software wants to do.",
             "gives the steps or the code to do it, and names the functions or options used.",
             "How do I <goal> with <tool or feature>?"),
    TaskType("what happens if", "asks what the software does in a specific situation or edge case.",
             "states the behaviour and the rule or setting behind it.",
             "What happens if <situation> when using <feature>?"),
    TaskType("when to use which", "asks when to use one of two related features rather than the other.",
             "says what each is for and the case in which to pick each.",
             "When should I use <feature A> rather than <feature B>?", passages=2),
    TaskType("explain the concept", "asks what an idea, a feature or a term of the software means and why it exists.",
             "explains it in plain words and what problem it solves.",
             "What is <concept> in <tool>, and why is it useful?"),
    TaskType("troubleshoot", "describes a problem a user could meet and asks how to fix it.",
             "names the likely cause and the fix.",
             "My <feature> does <unwanted behaviour>. Why, and how do I fix it?"),
    TaskType("find the setting", "asks which option, parameter, default value or name controls a behaviour.",
             "names it exactly and says what it does and its default, if the documentation gives one.",
             "Which <option or parameter> controls <behaviour>, and what is its default?"),
    TaskType("worked example", "asks for a short example that shows a feature in use.",
             "gives a small, complete example (code where it fits) and says what it does.",
             "Write a short example that uses <feature> to <goal>."),
]

TAXONOMIES = {"novel": NOVEL, "docs": DOCS}


def resolve(taxonomy: str | Sequence[TaskType | Mapping[str, Any]] | None) -> list[TaskType]:
    """A taxonomy by name ("novel", "docs") or your own list of TaskType or dicts with "name", "asks", "good_answer"
    (and "passages": 2 for a type written from two passages)."""
    if taxonomy is None:
        taxonomy = "novel"
    if isinstance(taxonomy, str):
        if taxonomy not in TAXONOMIES:
            raise TaxonomyError(f'unknown TAXONOMY "{taxonomy}": use "novel", "docs" or a list of task types '
                                '(dicts with "name", "asks" and "good_answer")')
        return list(TAXONOMIES[taxonomy])
    types = []
    for t in taxonomy:
        if isinstance(t, TaskType):
            types.append(t)
            continue
        try:
            types.append(TaskType(str(t["name"]), str(t["asks"]), str(t["good_answer"]), str(t.get("pattern", "")),
                                  int(t.get("passages", 1))))
        except (KeyError, TypeError, ValueError):
            raise TaxonomyError(f'a task type needs "name", "asks" and "good_answer" (and may set "passages": 1 or 2); '
                                f"got {t!r}") from None
    if not types:
        raise TaxonomyError("the taxonomy is empty: give at least one task type")
    if len({t.name for t in types}) != len(types):
        raise TaxonomyError("two task types share a name: give each its own")
    return types


MIN_WORDS = 60  # a shorter passage (a signature, one line of dialogue, a heading and a link) rarely holds a task


def sample(passages: Sequence[Passage], n: int, seed: int = 0, min_words: int = MIN_WORDS,
           max_dialogue: float = 0.5, prefer: Callable[[Passage], Any] | None = None) -> list[Passage]:
    """n passages spread over every chapter or document: round-robin over the units in reading order, a random
    passage of each, so no unit gets a second passage before every unit has one. Within a unit, passages that
    `prefer` ranks higher come first (by default: those with at most max_dialogue of their text in quotation marks,
    since who-said-what is where a small teacher goes wrong). Deterministic."""
    rng = random.Random(seed)
    by_unit: dict[Any, list[Passage]] = {}
    for p in passages:
        if len(p.text.split()) >= min_words:
            by_unit.setdefault(p.unit, []).append(p)
    if not by_unit:
        raise TaxonomyError(f"no passage has {min_words} words or more to write a task from: load a longer text, "
                            "or pass min_words= a smaller number")
    for pool in by_unit.values():
        rng.shuffle(pool)
        pool.sort(key=prefer or (lambda p: dialogue_share(p.text) <= max_dialogue))  # popped from the end: best first
    chosen: list[Passage] = []
    while len(chosen) < n and any(by_unit.values()):
        for pool in by_unit.values():
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return chosen


@dataclass
class Job:
    """One task to write: its type and the passages it is written from (the first is its home)."""

    type: TaskType
    passages: list[Passage]

    @property
    def id(self) -> str:
        return "+".join(p.id for p in self.passages)


def partner(passage: Passage, index: Any, used: set[str] = frozenset(), pool: int = 40) -> Passage | None:
    """A passage from another chapter or document that is about the same things (BM25 on the passage's own words),
    for a task written from two passages; None when no other unit shares enough with it."""
    query = " ".join(dict.fromkeys(search_words(passage.text)))
    try:
        hits = index.search(query, k=pool)
    except Exception:  # a passage with no searchable word
        return None
    for other, score in hits:
        if other.id != passage.id and other.unit != passage.unit and other.id not in used and score > 0:
            return other
    return None


def assign(passages: Sequence[Passage], types: Sequence[TaskType], index: Any = None,
           seed: int = 0) -> list[Job]:
    """One job per passage, the types dealt in turn (shuffled within each round) so each type gets its share; a
    two-passage type takes a related passage from another unit when `index` finds one, else the next type goes."""
    rng = random.Random(seed)
    jobs: list[Job] = []
    deck: list[TaskType] = []
    used: set[str] = {p.id for p in passages}
    for p in passages:
        waiting: list[TaskType] = []  # two-passage types this passage found no partner for
        for _ in range(2 * len(types)):
            if not deck:
                deck = [t for t in types if t not in waiting]
                rng.shuffle(deck)
                if not deck:
                    break  # only two-passage types, and no partner for this passage
            t = deck.pop()
            other = partner(p, index, used) if t.passages > 1 and index is not None else None
            if t.passages == 1 or other is not None:
                if other is not None:
                    used.add(other.id)
                jobs.append(Job(t, [p] + ([other] if other is not None else [])))
                break
            waiting.append(t)
        deck.extend(waiting)  # popped first: they keep their turn for the next passage
    return jobs


def shares(type_names: Iterable[str]) -> dict[str, float]:
    """Share of each task type, largest first."""
    names = list(type_names)
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return {k: round(v / len(names), 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if names else {}
