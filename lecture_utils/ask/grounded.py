"""Stage 2, the default: tasks of every type in the taxonomy, each written from one or two sampled passages, with the
answer in the teacher's words and the verbatim evidence it rests on, and checked before it is kept.

    jobs = taxonomy.assign(chosen, taxonomy.resolve("novel"), index)
    kept, dropped = write_one(teacher, jobs[0], title="Treasure Island")      # one job, in a notebook cell
    summary = generate(teacher, jobs, run / "tasks.jsonl", title=...)         # all of them, resumable

What a kept task has passed (each result is stored in its `checks`):
  evidence   every quote is found in its passages (the passage's own words replace a quote with a word changed)
  stands     the instruction names what it is about: no "he", "this scene", "the passage" pointing at nothing
  names      it names no one the passages do not mention (a premise the passages cannot support), and calls no one
             by a title the passages never use ("Mrs. Bennet" where they say "Mr. Bennet")
  echo       the instruction does not repeat the type's own description instead of the passages
  copies     the answer holds no run of 12 words of the passages outside quotation marks (a copying answer is
             asked for once more in the teacher's own words), and is not mostly a quotation
  support    each answer sentence shares most of its content words with one passage (claim by claim)
  faithful   the teacher, shown the passages, says every claim is stated there and the task is answered
  claims     each answer sentence, shown with the evidence sentences only, is one they state (a call per sentence)
  clear      a fresh call that sees only the instruction says it is clear on its own
  unique     its evidence is not evidence another kept task already used (one sentence, one pair)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from lecture_utils.ask.checks import FAITHFUL as FAITHFUL_CHECK
from lecture_utils.ask.taxonomy import Job
from lecture_utils.prompts import (
    CLAIM_PROMPT,
    CLEAR_PROMPT,
    EVIDENCE_PROMPT,
    PASSAGE_SYSTEM,
    REPHRASE_PROMPT,
    TASK_PROMPT,
    format_context,
)
from lecture_utils.records import Instruction, from_dict, iter_jsonl, to_dict
from lecture_utils.teacher.task import VERDICT_SCHEMA, Task, drops_path, run_many
from lecture_utils.text.grounding import sentence_support
from lecture_utils.text.names import TITLED_NAME, unknown_names
from lecture_utils.text.sentences import sentence_spans, split_sentences
from lecture_utils.text.spans import find_span, normalize, overlap
from lecture_utils.text.tokens import copied_run, stem, unquoted, word_runs, words

EVIDENCE_SCHEMA = {
    "type": "object",
    "properties": {"evidence": {"type": "array", "items": {"type": "string", "minLength": 12}, "minItems": 1,
                                "maxItems": 2}},
    "required": ["evidence"],
}
TASK_SCHEMA = {
    "type": "object",
    "properties": {"instruction": {"type": "string", "minLength": 12}, "answer": {"type": "string", "minLength": 12}},
    "required": ["instruction", "answer"],
}

PICK = Task("pick evidence", EVIDENCE_PROMPT, EVIDENCE_SCHEMA, system=PASSAGE_SYSTEM, max_tokens=200)
WRITE = Task("write task", TASK_PROMPT, TASK_SCHEMA, system=PASSAGE_SYSTEM, max_tokens=300)
FAITHFUL = dataclasses.replace(FAITHFUL_CHECK, attempts=1)  # a task's verdict is asked once: a NO drops it anyway
REPHRASE = Task("rephrase", REPHRASE_PROMPT, {"type": "object", "properties": {"answer": {"type": "string", "minLength": 12}},
                                              "required": ["answer"]}, system=None, max_tokens=250, attempts=1)
CLAIM = Task("claim", CLAIM_PROMPT, VERDICT_SCHEMA, system=None, max_tokens=12, attempts=1)
CLEAR = Task("clear", CLEAR_PROMPT, VERDICT_SCHEMA, system=None, max_tokens=12, attempts=1)

SUPPORT_MIN = 0.4  # own words share fewer words with the text than a copy does; a made-up sentence scores ~0.2
SAME_EVIDENCE = 0.8  # evidence sharing this much with a kept task's evidence is the same sentence asked again

_DEICTIC = re.compile(r"\b(the|this|that|these|those|above|given|following|provided|said) (passages?|texts?|excerpts?|"
                      r"extracts?|paragraphs?|quotes?|quotations?|snippets?|sentences?|documents?|page)\b", re.I)
_BACK = re.compile(r"\b(the former|the latter|aforementioned|mentioned above|described above|in question|as above)\b",
                   re.I)
_THIS_NOUN = re.compile(r"\b([Tt]his|[Tt]hese|[Tt]hose)\s+([a-z]+)\b")  # not "that": "an example that uses ..."
# "Mrs. Bennet" where the passage has only "Mr. Bennet": a small teacher swaps titles, and the surname check passes it
_TITLED = TITLED_NAME


def _undotted(text: str) -> str:
    return text.replace(".", "")


_NOT_NOUNS = frozenset("""he she it they we you i his her their its the a an is was are were be been to of in on at by
for with and or but not no had has have did does do would could should will can may might must as so""".split())
_PERSONAL = re.compile(r"\b(he|she|him|his|her|hers|they|them|their|it|its)\b", re.I)
_OPENING_PRONOUN = re.compile(r"^(he|she|it|they|this|that|these|those|his|her|its|their)\b", re.I)
_CODE = re.compile(r"`[^`]+`|\b\w+\(\)|\b\w+[._]\w+\b|--?[a-z][\w-]+")
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+")


def stands_alone(instruction: str) -> str:
    """Why the instruction does not make sense without its passage ("" when it does): it points at the passage, at
    "the former", at "this scene" it never named, or says he/she/it/they before naming anyone or anything."""
    text = " ".join(instruction.split())
    m = _DEICTIC.search(text)
    if m:
        return f'it points at "{m.group(0)}", which the reader cannot see'
    m = _BACK.search(text)
    if m:
        return f'"{m.group(0)}" points at nothing the instruction says'
    if _OPENING_PRONOUN.match(text):
        return f'it opens with "{text.split()[0]}" for something it never names'
    for m in _THIS_NOUN.finditer(text):
        noun = m.group(2).lower()
        if noun not in _NOT_NOUNS and stem(noun) not in normalize(text[:m.start()]):
            return f'"{m.group(0)}" points at something the instruction never names'
    pronoun = _PERSONAL.search(text)
    if pronoun and pronoun.group(1).lower() not in {"it", "its"}:
        named = [m.start() for m in _CAPITALISED.finditer(text) if m.start() > 0] + [m.start() for m in _CODE.finditer(text)]
        if not any(start < pronoun.start() for start in named):
            return f'it says "{pronoun.group(1)}" before naming anyone'
    return ""


_OPENING = re.compile(r"(?:^|[.!?:]\s+)[\"'\u201c(]*([A-Z][a-z]+)")


def _names(text: str, context: str, ignore: list[str]) -> list[str]:
    """Capitalised words of text that the context never has, leaving out words seen only opening a sentence
    ("Because ...", "Both ...")."""
    openers = {m.group(1) for m in _OPENING.finditer(text)}
    inside = {w for w in re.findall(r"(?<![.!?:]\s)(?<!^)\b[A-Z][a-z]+", text)}
    return [w for w in unknown_names(text, context, ignore=ignore) if w not in openers or w in inside]


def whole_sentences(quote: str, text: str) -> str:
    """The sentence or sentences of text that hold the quote (a small teacher often copies half a sentence, and
    the half loses who did it); the quote's own words if it is not found as written."""
    span = find_span(quote, text) or quote
    flat = " ".join(text.split())
    pos = flat.find(span)
    if pos < 0:
        return span
    out = [flat[s:e] for s, e in sentence_spans(flat) if s < pos + len(span) and e > pos]
    return " ".join(out) or span


def _stem_runs(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """Runs of n word stems ("acts, feels" meets "act, feel"): how an instruction that echoes its type is found."""
    w = [x.rstrip("s")[:4] for x in words(text)]
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


@dataclass
class Written:
    """What the teacher wrote for one job, and what the checks found."""

    job: Job
    instruction: str
    answer: str
    evidence: list[str]
    checks: dict
    reason: str = ""  # why it is dropped ("" when kept)


def _texts(job: Job) -> list[str]:
    return [p.text for p in job.passages]


_SAYS = re.compile(r"^(?:according to the (?:passages?|text),?\s*|(?:the|this) (?:passages?|text|excerpt) "
                   r"(?:states?|says?|mentions?|describes?|tells? us|shows?)(?: that)?[,:]?\s*)", re.I)
_IN_PASSAGE = re.compile(r",?\s+(?:in|according to|as described in) the (?:passages?|text|excerpt)(?=\?|\.$|$)", re.I)


def tidy(instruction: str, answer: str) -> tuple[str, str]:
    """Take out the words a small teacher adds about its passage ("The passage states that ...", "... in the
    passage?"), which mean nothing to a reader who never saw it; the rest is left as written."""
    instruction = _IN_PASSAGE.sub("", " ".join(instruction.split()))
    kept = []
    for sentence in split_sentences(" ".join(answer.split())):
        bare = _SAYS.sub("", sentence)
        if bare != sentence and kept and bare[:1] in "\"'\u201c\u2018":
            continue  # "... The passage states that 'quote'.": the quote again, as proof; the answer came before it
        kept.append(bare[:1].upper() + bare[1:])
    return instruction, " ".join(s for s in kept if s)


def check_written(job: Job, instruction: str, answer: str, quotes: Sequence[str], title: str = "") -> Written:
    """The checks that need no teacher, in order; the first that fails is the reason."""
    instruction, answer = tidy(instruction, answer)
    texts = _texts(job)
    checks: dict[str, Any] = {}
    # every passage must lend a quote; a quote found nowhere is left out (only verbatim words are kept as evidence)
    found = {q: next(((i, s) for i, t in enumerate(texts) if (s := find_span(q, t))), None) for q in quotes if q.strip()}
    evidence = list(dict.fromkeys(hit[1] for hit in found.values() if hit))
    checks["evidence"] = {hit[0] for hit in found.values() if hit} == set(range(len(texts)))
    checks["evidence_found"] = f"{len(evidence)}/{len(found)}"
    checks["stands"] = stands_alone(instruction) or True
    ignore = title.split() + ["True", "False", "None"]  # literals of code, not names
    checks["names"] = _names(instruction, " ".join(texts), ignore)
    runs = set().union(*(word_runs(t) for t in texts))
    checks["copies"] = copied_run(answer, runs)
    support = sentence_support(answer, texts)
    checks["support"] = round(min((s.score for s in support), default=0.0), 3)
    checks["answer_names"] = _names(answer, " ".join(texts) + " " + instruction, ignore)
    checks["titles"] = [t for t in dict.fromkeys(_TITLED.findall(f"{instruction} {answer}"))
                        if _undotted(t) not in {_undotted(x) for x in _TITLED.findall(" ".join(texts))}]
    # the type's description echoed instead of the passages; the shape of its instruction is meant to be followed
    echo = (_stem_runs(instruction) & _stem_runs(f"{job.type.asks} | {job.type.good_answer}")) - _stem_runs(job.type.pattern)
    points = _DEICTIC.search(answer)
    reason = ""
    if not checks["evidence"]:
        reason = f"evidence: no quote found in {'each passage' if len(texts) > 1 else 'the passage'} ({checks['evidence_found']} found)"
    elif checks["stands"] is not True:
        reason = f"not self-contained: {checks['stands']}"
    elif checks["names"]:
        reason = f"instruction names {', '.join(checks['names'])}, whom the passages do not mention"
    elif not instruction.rstrip().endswith(("?", ".")) or len(instruction.split()) < 5:
        reason = "not a full question or instruction"
    elif echo:
        reason = f'the instruction repeats the task description ("{" ".join(sorted(echo)[0])}") instead of the passages'
    elif points:
        reason = f'the answer points at "{points.group(0)}", which a reader of the answer cannot see'
    elif len(words(unquoted(answer))) < 0.4 * len(words(answer)):
        reason = "the answer is a quotation, not an answer in the teacher's own words"
    elif checks["copies"]:
        reason = f'answer copies the source: "{checks["copies"]}"'
    elif checks["titles"]:
        reason = f"{', '.join(checks['titles'])}: the passages never call anyone that (a Mr. for a Mrs.?)"
    elif checks["answer_names"]:
        reason = f"answer names {', '.join(checks['answer_names'])}, whom the passages do not mention"
    elif checks["support"] < SUPPORT_MIN:
        reason = f"an answer sentence is not supported by the passages (support {checks['support']})"
    return Written(job, instruction, answer, evidence, checks, reason)


def write_one(teacher: Any, job: Job, *, title: str, pick: Task = PICK, write: Task = WRITE, faithful: Task = FAITHFUL,
              claim: Task = CLAIM, clear: Task = CLEAR, rephrase: Task = REPHRASE,
              used_evidence: list[str] | None = None) -> tuple[list[Instruction], list[dict]]:
    """Write one task for a job and check it: ([the Instruction], []) when kept, ([], [the drop]) when not. The calls
    about a passage come one after another, passages first, so a llama.cpp server reads the passages once."""
    context = format_context(job.passages, max_chars=10_000)
    t = job.type
    each = " Take one sentence from each passage." if len(job.passages) > 1 else ""
    quotes = [str(q) for q in pick.one(teacher, context=context, title=title, type=t.name, asks=t.asks,
                                      each=each).get("evidence") or []]
    found = list(dict.fromkeys(f for q in quotes if (f := next((whole_sentences(q, p.text) for p in job.passages
                                                                if find_span(q, p.text)), None))))
    if not found:
        return [], [{"job": job.id, "type": t.name, "instruction": "", "answer": "", "evidence": quotes,
                     "reason": "evidence: the quotes are not in the passages", "checks": {"evidence": False}}]
    data = write.one(teacher, context=context, evidence=" ".join(f'"{q}"' for q in found), title=title, type=t.name,
                     asks=t.asks, good_answer=t.good_answer, pattern=t.pattern or "(any clear question or request)")
    w = check_written(job, str(data.get("instruction") or ""), str(data.get("answer") or ""), quotes, title)
    if w.checks.get("copies") and w.reason.startswith("answer copies"):  # one chance to say it in its own words
        again = str(rephrase.one(teacher, answer=w.answer).get("answer") or "")
        w = check_written(job, w.instruction, again, quotes, title)
        w.checks["rephrased"] = True
    if not w.reason and used_evidence is not None:
        same = next((u for u in used_evidence for e in w.evidence if overlap(e, u) >= SAME_EVIDENCE), "")
        w.checks["unique"] = not same
        if same:
            w.reason = f'the same evidence as a task already kept ("{same[:60]}")'
    if not w.reason:
        w.checks["faithful"] = str(faithful.one(teacher, context=context, instruction=w.instruction,
                                                answer=w.answer).get("verdict"))
        if w.checks["faithful"] != "YES":
            w.reason = "the teacher, shown the passages, says the answer is not stated there (faithful: NO)"
    if not w.reason:  # claim by claim, against the evidence sentences only
        sentences = "\n".join(f"- {e}" for e in found)
        verdicts = [str(claim.one(teacher, evidence=sentences, claim=c).get("verdict")) for c in split_sentences(w.answer)]
        w.checks["claims"] = f"{verdicts.count('YES')}/{len(verdicts)}"
        if "NO" in verdicts or not verdicts:
            w.reason = f"a claim of the answer is not stated by its evidence (claims: {w.checks['claims']} YES)"
    if not w.reason:
        w.checks["clear"] = str(clear.one(teacher, title=title, instruction=w.instruction).get("verdict"))
        if w.checks["clear"] != "YES":
            w.reason = "a fresh call that sees only the instruction finds it unclear (clear: NO)"
    if w.reason:
        return [], [{"job": job.id, "type": t.name, "instruction": w.instruction, "answer": w.answer,
                     "reason": w.reason, "checks": w.checks}]
    if used_evidence is not None:
        used_evidence.extend(w.evidence)
    home = job.passages[0]
    span = next((e for e in w.evidence if find_span(e, home.text)), w.evidence[0])
    inst = Instruction(id=f"{home.id}-{_slug(t.name)}", instruction=w.instruction, category=t.name, run=0,
                       origin="task", passage_id=home.id, span=span, prompt_sha=write.sha,
                       checks=w.checks, evidence=w.evidence, related=[p.id for p in job.passages[1:]],
                       reference=w.answer)
    return [inst], []


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def generate(teacher: Any, jobs: Sequence[Job], out: str | Path, *, title: str, progress: Callable | None = None,
             **tasks: Task):
    """write_one over many jobs, each result appended to `out` (kept) or its drops file the moment it exists.
    Resumable: a job already in either file is not asked again. `tasks` replace write_one's default Tasks (a
    student's edited prompts: pick=PICK.edited(...), write=WRITE.edited(...))."""
    out = Path(out)
    used = [e for r in iter_jsonl(out) for e in r.get("evidence", [])] if out.exists() else []

    def work(job: Job):
        kept, dropped = write_one(teacher, job, title=title, used_evidence=used, **tasks)
        return [dict(to_dict(k), job=job.id) for k in kept], dropped

    return run_many(list(jobs), lambda j: j.id, work, out, drops_path(out), progress=progress)


def load(out: str | Path, jobs: Sequence[Job] | None = None) -> tuple[list[Instruction], list[dict]]:
    """(kept instructions, dropped records) of these jobs (all when None), from generate's files."""
    want = None if jobs is None else {j.id for j in jobs}
    out = Path(out)
    kept = [r for r in iter_jsonl(out) if want is None or r.get("job") in want] if out.exists() else []
    dropped = [r for r in iter_jsonl(drops_path(out)) if want is None or r.get("job") in want] \
        if drops_path(out).exists() else []
    return [from_dict(Instruction, r) for r in kept], dropped
