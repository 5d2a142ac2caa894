"""Stage 5 exports: the curated pairs in the formats fine-tuning tools read, each checked, with a dataset card.

    pairs = curated_pairs(read_jsonl("qa_pairs.jsonl", QAPair), read_jsonl("decisions.jsonl", Decision))
    result = export_dataset(pairs, "runs/demo/export", source="Pride and Prejudice (Project Gutenberg #1342)")

Formats: Alpaca JSON (instruction, input, output), ShareGPT JSON (conversations of human/gpt turns) and OpenAI chat
fine-tuning JSONL (messages: system, user, assistant). Every file is read back and validated after writing. Where each
answer came from (passage ids, teacher, prompt version) goes in a side file, or in a field of each record for the
tools that ignore extra fields; the OpenAI file always keeps it on the side, since its lines may hold only messages.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .decisions import decisions_that_count, is_judge
from .records import Decision, QAPair

FORMATS = ("alpaca", "sharegpt", "openai")
FILE_NAMES = {"alpaca": "alpaca.json", "sharegpt": "sharegpt.json", "openai": "openai_chat.jsonl"}
PROVENANCE = ("file", "field", "none")
# "{title}" is filled with the source's title (source_title), so the prompt names what the model is an expert on.
DEFAULT_SYSTEM = "You are an expert on {title}. Answer accurately and concisely."
DEFAULT_SOURCE_LICENCE = "Check the source's licence before you share this dataset."
OPENAI_MIN_EXAMPLES = 10  # the fine-tuning API refuses smaller training files
OPENAI_MAX_TOKENS = 65_536  # per example, for gpt-4o-mini and gpt-4.1 models; older models allow fewer
CHARS_PER_TOKEN = 4


class ExportError(ValueError):
    """Pairs or decisions that cannot be exported as asked; the message says how to fix it."""


def source_title(source: str = "") -> str:
    """The source's name without its trailing note: "Emma (Project Gutenberg #158)" -> "Emma"; "" -> "the source"."""
    return re.sub(r"\s*\([^()]*\)\s*$", "", source).strip() or "the source"


def fill_system(system: str | None, source: str = "") -> str | None:
    """The system prompt with its "{title}" placeholder filled (replace, not format: other braces stay as written)."""
    return system.replace("{title}", source_title(source)) if system else system


# --- which pairs go in ------------------------------------------------------------------------------------------


def _reviewer(decision: Decision) -> str:
    return "judge" if is_judge(decision.reviewer) else "person"


def curated_pairs(pairs: Iterable[QAPair], decisions: Iterable[Decision | dict]) -> list[QAPair]:
    """Accepted pairs as they are and fixed pairs with their edited answer, in pair order (copies).
    Discarded and unreviewed pairs are left out."""
    pairs = list(pairs)
    latest = decisions_that_count(pairs, decisions).latest
    out = []
    for p in pairs:
        d = latest.get(p.id)
        if d is None or d.status == "discard":
            continue
        if d.status == "fix":
            if not d.edited_answer.strip():
                raise ExportError(f"pair {p.id} is marked 'fix' but its edited answer is empty: edit it in the "
                                  "curation panel, or discard it")
            out.append(dataclasses.replace(p, answer=d.edited_answer.strip(), review=_reviewer(d)))
        elif d.status == "accept":
            out.append(dataclasses.replace(p, review=_reviewer(d)))
        else:
            raise ExportError(f"pair {p.id} has decision status {d.status!r}: use accept, fix or discard")
    return out


def curation_counts(pairs: Iterable[QAPair], decisions: Iterable[Decision | dict]) -> dict[str, int]:
    """Pairs per final status (accept, fix, discard, unreviewed) and stale decisions, for the dataset card."""
    pairs = list(pairs)
    counted = decisions_that_count(pairs, decisions)
    latest, stale = counted.latest, counted.stale
    counts = Counter(latest[p.id].status if p.id in latest else "unreviewed" for p in pairs)
    return {"pairs": len(pairs), **{s: counts.get(s, 0) for s in ("accept", "fix", "discard", "unreviewed")},
            "stale decisions": stale}


# --- records per format -----------------------------------------------------------------------------------------


def provenance(pair: QAPair) -> dict:
    """Where an answer came from: its ids, the passages it cites and was shown, the teacher and the prompt version."""
    return {"pair_id": pair.id, "instruction_id": pair.instruction_id, "category": pair.category,
            "cited": list(pair.cited), "retrieved": [r.id for r in pair.retrieved], "teacher": pair.teacher,
            "prompt_version": pair.prompt_version, "not_in_text": pair.not_in_text, "review": pair.review or "none",
            "checks": {k: v for k, v in pair.checks.items() if not k.endswith("_found")}}


def _check_pair(pair: QAPair) -> None:
    if not pair.instruction.strip() or not pair.answer.strip():
        raise ExportError(f"pair {pair.id} has an empty {'instruction' if not pair.instruction.strip() else 'answer'}: "
                          "fix or discard it before exporting")


def to_alpaca(pair: QAPair) -> dict:
    _check_pair(pair)
    return {"instruction": pair.instruction.strip(), "input": "", "output": pair.answer.strip()}


def to_sharegpt(pair: QAPair, system: str | None = None) -> dict:
    _check_pair(pair)
    turns = [{"from": "system", "value": system}] if system else []
    turns += [{"from": "human", "value": pair.instruction.strip()}, {"from": "gpt", "value": pair.answer.strip()}]
    return {"conversations": turns}


def to_openai_chat(pair: QAPair, system: str | None = DEFAULT_SYSTEM) -> dict:
    _check_pair(pair)
    system = fill_system(system)
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": pair.instruction.strip()},
                 {"role": "assistant", "content": pair.answer.strip()}]
    return {"messages": messages}


# --- validators: what each tool requires ------------------------------------------------------------------------


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def validate_alpaca(records: Any) -> list[str]:
    """Problems with an Alpaca dataset: a JSON list of objects with string instruction, input and output
    (instruction and output non-empty), as Stanford Alpaca, Axolotl and LLaMA-Factory read it."""
    if not isinstance(records, list):
        return ["the file must hold one JSON list of records"]
    problems = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            problems.append(f"record {i}: not an object")
            continue
        for key in ("instruction", "input", "output"):
            if not isinstance(r.get(key), str):
                problems.append(f"record {i}: '{key}' must be a string")
        for key in ("instruction", "output"):
            if isinstance(r.get(key), str) and not r[key].strip():
                problems.append(f"record {i}: '{key}' is empty")
    return problems


def validate_sharegpt(records: Any) -> list[str]:
    """Problems with a ShareGPT dataset: a JSON list of {"conversations": [...]} whose turns are {"from", "value"},
    an optional system turn first, then human and gpt turns alternating, starting with human, ending with gpt."""
    if not isinstance(records, list):
        return ["the file must hold one JSON list of records"]
    problems = []
    for i, r in enumerate(records):
        turns = r.get("conversations") if isinstance(r, dict) else None
        if not isinstance(turns, list) or not turns:
            problems.append(f"record {i}: needs a non-empty 'conversations' list")
            continue
        if all(isinstance(t, dict) for t in turns) and turns[0].get("from") == "system":
            if not _nonempty_str(turns[0].get("value")):
                problems.append(f"record {i}: the system turn is empty")
            turns = turns[1:]
        if len(turns) < 2:
            problems.append(f"record {i}: needs at least one human and one gpt turn")
        for j, t in enumerate(turns):
            want = "human" if j % 2 == 0 else "gpt"
            if not isinstance(t, dict) or set(t) != {"from", "value"}:
                problems.append(f"record {i} turn {j}: must be exactly {{'from', 'value'}}")
            elif t["from"] != want:
                problems.append(f"record {i} turn {j}: from={t['from']!r}, expected {want!r} (turns alternate human, gpt)")
            elif not _nonempty_str(t["value"]):
                problems.append(f"record {i} turn {j}: empty value")
        if turns and isinstance(turns[-1], dict) and turns[-1].get("from") != "gpt":
            problems.append(f"record {i}: the last turn must be from gpt (the answer to learn)")
    return problems


_OPENAI_ROLES = {"system", "user", "assistant"}
_OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight"}


def validate_openai_chat(records: Any, max_tokens: int = OPENAI_MAX_TOKENS) -> list[str]:
    """Problems with OpenAI chat fine-tuning data: per line an object with only a "messages" list; each message a
    role (system/user/assistant) and non-empty string content; at least one assistant message; not too long."""
    if not isinstance(records, list):
        return ["expected one JSON object per line"]
    problems = []
    for i, r in enumerate(records):
        where = f"line {i + 1}"
        if not isinstance(r, dict) or not isinstance(r.get("messages"), list) or not r["messages"]:
            problems.append(f"{where}: needs a non-empty 'messages' list")
            continue
        extra = set(r) - {"messages"}
        if extra:
            problems.append(f"{where}: unexpected keys {sorted(extra)} (only 'messages' is allowed)")
        chars = 0
        for j, m in enumerate(r["messages"]):
            if not isinstance(m, dict):
                problems.append(f"{where} message {j}: not an object")
                continue
            if set(m) - _OPENAI_MESSAGE_KEYS:
                problems.append(f"{where} message {j}: unrecognised keys {sorted(set(m) - _OPENAI_MESSAGE_KEYS)}")
            if m.get("role") not in _OPENAI_ROLES:
                problems.append(f"{where} message {j}: role {m.get('role')!r} is not system, user or assistant")
            if not _nonempty_str(m.get("content")):
                problems.append(f"{where} message {j}: content must be a non-empty string")
            else:
                chars += len(m["content"])
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in r["messages"]):
            problems.append(f"{where}: no assistant message (nothing to learn)")
        if chars / CHARS_PER_TOKEN > max_tokens:
            problems.append(f"{where}: about {chars // CHARS_PER_TOKEN} tokens, over the {max_tokens} limit per example")
    return problems


VALIDATORS = {"alpaca": validate_alpaca, "sharegpt": validate_sharegpt, "openai": validate_openai_chat}


def read_export(path: str | Path, fmt: str) -> Any:
    """Load an export the way the tools do: one JSON document, or one JSON object per line for OpenAI."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if fmt == "openai":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None


def validate_file(path: str | Path, fmt: str) -> list[str]:
    """Problems with an export file on disk (empty list: the tools will accept it)."""
    if fmt not in VALIDATORS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return VALIDATORS[fmt](read_export(path, fmt))


# --- writing ----------------------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What export_dataset wrote."""

    files: dict[str, Path]  # format -> data file
    card: Path
    provenance: Path | None = None  # side file: line n describes record n of every format's file
    count: int = 0
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        names = [p.name for p in self.files.values()] + [self.card.name]
        return f"{self.count} pairs -> {', '.join(names)} in {self.card.parent}" + "".join(
            f"\n  warning: {w}" for w in self.warnings)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def _write_lines(path: Path, records: Iterable[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def export_dataset(pairs: Iterable[QAPair], out_dir: str | Path, formats: Sequence[str] = FORMATS, *,
                   provenance_mode: str = "file", system: str | None = DEFAULT_SYSTEM,
                   sharegpt_system: bool = False, title: str | None = None,
                   source: str = "", counts: Mapping[str, int] | None = None, filters: Any = None,
                   licence: str | None = None, licence_note: str | None = None, notes: str = "",
                   refusals: bool = False, source_licence: str = DEFAULT_SOURCE_LICENCE,
                   figures: Mapping[str, Any] | None = None) -> ExportResult:
    """Write the pairs in each format to out_dir, validate every file as written, and put README.md (the dataset
    card) beside them. provenance_mode: "file" (side files), "field" (a 'provenance' key in Alpaca and ShareGPT
    records) or "none". `system` is the system prompt for the OpenAI file (and ShareGPT if sharegpt_system); its
    "{title}" becomes the source's title, as does the card's `title` when not given. `source_licence` is the card's
    line on the source text's licence.
    "The passages do not say" answers are left out (a model trained on them learns to give up) unless refusals=True."""
    pairs = list(pairs)
    system = fill_system(system, source)
    left_out = 0 if refusals else sum(p.not_in_text for p in pairs)
    pairs = [p for p in pairs if refusals or not p.not_in_text]
    if provenance_mode not in PROVENANCE:
        raise ExportError(f"provenance_mode={provenance_mode!r}: use one of {', '.join(PROVENANCE)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format(s) {unknown}: use any of {', '.join(FORMATS)}")
    if not pairs:
        raise ExportError("no pairs to export: accept or fix some pairs in notebook 4 first")
    ids = [p.id for p in pairs]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise ExportError(f"pair id {dup} appears twice: export each pair once (curated_pairs does that)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(files={}, card=out_dir / "README.md", count=len(pairs))
    prov = [provenance(p) for p in pairs]
    for fmt in formats:
        path = out_dir / FILE_NAMES[fmt]
        if fmt == "alpaca":
            records = [to_alpaca(p) for p in pairs]
        elif fmt == "sharegpt":
            records = [to_sharegpt(p, system if sharegpt_system else None) for p in pairs]
        else:
            records = [to_openai_chat(p, system) for p in pairs]
        in_field = provenance_mode == "field" and fmt != "openai"
        if in_field:
            records = [{**r, "provenance": pv} for r, pv in zip(records, prov)]
        if fmt == "openai":
            _write_lines(path, records)
        else:
            _write_json(path, records)
        problems = validate_file(path, fmt)
        if problems:
            raise ExportError(f"{path.name} failed its {fmt} check with {len(problems)} problem(s), first: {problems[0]}")
        result.files[fmt] = path
        if provenance_mode != "none" and not in_field and result.provenance is None:
            result.provenance = out_dir / "provenance.jsonl"  # records are in the same order in every format
            _write_lines(result.provenance, ({"line": i, **pv} for i, pv in enumerate(prov)))
    if left_out:
        notes = (notes + "\n\n" if notes else "") + (f"{left_out} pairs whose answer is \"the passages do not say\" were "
                                                      "left out (export with refusals=True to include them).")
        if counts:  # the curation table then adds up to what the files hold
            counts = {**counts, "left out: \"the passages do not say\" answers": -left_out, "exported": len(pairs)}
    if "openai" in formats and len(pairs) < OPENAI_MIN_EXAMPLES:
        result.warnings.append(f"OpenAI fine-tuning needs at least {OPENAI_MIN_EXAMPLES} examples; this file has "
                               f"{len(pairs)}")
    write_dataset_card(result.card, pairs, files=result.files, provenance_file=result.provenance,
                       provenance_mode=provenance_mode, title=title, source=source, counts=counts, filters=filters,
                       system=system, licence=licence, licence_note=licence_note, notes=notes,
                       warnings=result.warnings, source_licence=source_licence, figures=figures)
    return result


# --- the dataset card -------------------------------------------------------------------------------------------

TEACHER_TERMS_NOTE = (
    "The answers were written by a teacher model: its provider's terms of use may restrict what you may train "
    "with them (read them before you publish or train a commercial model)."
)

HOW_TO_LOAD = {
    "alpaca": "Alpaca JSON: `datasets.load_dataset('json', data_files='alpaca.json')`; Axolotl `type: alpaca`; "
              "LLaMA-Factory `formatting: alpaca`",
    "sharegpt": "ShareGPT JSON: Axolotl `type: chat_template` with `field_messages: conversations`; "
                "LLaMA-Factory `formatting: sharegpt`",
    "openai": "OpenAI chat JSONL: upload with `purpose=\"fine-tune\"` and start a fine-tuning job",
}


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _filters_markdown(filters: Any) -> str:
    if filters is None:
        return "No automatic filters were recorded for this export."
    if hasattr(filters, "to_dict") and hasattr(filters, "columns"):  # a funnel DataFrame (step, removed, remaining)
        cols = list(filters.columns)
        return _table([tuple(row) for row in filters.itertuples(index=False)], tuple(cols))
    if isinstance(filters, Mapping):
        return "\n".join(f"- **{k}**: {v}" for k, v in filters.items())
    return "\n".join(f"- {f}" for f in filters)


def write_dataset_card(path: str | Path, pairs: Sequence[QAPair], *, files: Mapping[str, Path] | None = None,
                       provenance_file: Path | None = None, provenance_mode: str = "file",
                       title: str | None = None, source: str = "",
                       counts: Mapping[str, int] | None = None, filters: Any = None, system: str | None = None,
                       licence: str | None = None, licence_note: str | None = None, notes: str = "",
                       warnings: Sequence[str] = (), today: date | None = None,
                       source_licence: str = DEFAULT_SOURCE_LICENCE, figures: Mapping[str, Any] | None = None) -> Path:
    """A markdown dataset card: what is in the files, where it came from, how it was filtered, and the licence.
    `title` defaults to "Instructions about <the source's title>"; `licence_note` replaces both the line on the
    source's licence (`source_licence`) and the note on the teacher's terms."""
    path = Path(path)
    title = title or f"Instructions about {source_title(source)}"
    teachers = Counter(p.teacher or "(none: no passage matched)" for p in pairs)
    versions = Counter(p.prompt_version for p in pairs)
    categories = Counter(p.category or "(none)" for p in pairs)
    cited = sum(1 for p in pairs if p.cited)
    not_in_text = sum(1 for p in pairs if p.not_in_text)
    passages = {r.id for p in pairs for r in p.retrieved}
    cited_passages = {c for p in pairs for c in p.cited}
    review = Counter(p.review or "none" for p in pairs)
    person, judge, checks = review.get("person", 0), review.get("judge", 0), review.get("checks", 0)
    unchecked = len(pairs) - person - judge - checks
    parts = [
        f"# {title}",
        f"Made on {(today or date.today()).isoformat()} with the *Art of the Ask* course kit: instructions about the "
        "source, each answered by a teacher model from passages of the source (retrieval-augmented generation) and "
        "checked against them.",
        "## Contents",
        f"- **{len(pairs):,} instruction-answer pairs** in {len(categories)} categories\n"
        f"- **{person:,} reviewed by a person** (accepted as written, or fixed); {judge:,} accepted by the LLM judge "
        f"only; **{checks:,} passed the automatic checks only** and were never read by a person"
        + (f"; {unchecked:,} neither reviewed nor checked" if unchecked else "") + "\n"
        f"- {cited:,} answers cite at least one passage; {not_in_text:,} say the passages do not hold the answer\n"
        f"- answers cite {len(cited_passages):,} distinct passages of the source "
        f"({len(passages):,} were retrieved for them)\n"
        "- each record's provenance says which of these it is (`review`) and what each check found (`checks`)",
    ]
    if files:
        rows = [(fmt, f"`{Path(p).name}`", HOW_TO_LOAD[fmt]) for fmt, p in files.items()]
        parts += ["## Files", _table(rows, ("format", "file", "how to use it"))]
        if system:
            parts.append(f"System prompt in the OpenAI file: \"{fill_system(system, source)}\"")
    parts += ["## Source", source or "Not recorded: pass source=... to export_dataset."]
    parts += ["## Teacher", _table(sorted(teachers.items(), key=lambda x: -x[1]), ("model", "pairs")),
              "Prompt versions: " + ", ".join(f"`{v or '?'}` ({n})" for v, n in versions.items())]
    parts += ["## Curation and filters"]
    if counts:
        parts.append(_table(list(counts.items()), ("step", "pairs")))
    parts.append(_filters_markdown(filters))
    parts += ["## Categories", _table(sorted(categories.items(), key=lambda x: -x[1]), ("category", "pairs"))]
    if figures:  # quality.figures: the lecture's three qualities, measured on the pairs exported
        from .quality import rows
        parts += ["## Diversity, grounding and copying (measured)", _table(rows(figures), ("figure", "value"))]
    if provenance_mode == "none":
        prov = "Provenance was not exported."
    elif provenance_mode == "field":
        prov = ("Each Alpaca and ShareGPT record has a `provenance` field (pair and instruction ids, cited and "
                "retrieved passage ids, teacher model, prompt version).")
        if provenance_file:
            prov += (f" The OpenAI file keeps it in `{Path(provenance_file).name}` (line n describes record n), "
                     "since its lines may hold only `messages`.")
    else:
        prov = ("Provenance (pair and instruction ids, cited and retrieved passage ids, teacher model, prompt "
                f"version) is in `{Path(provenance_file).name if provenance_file else 'provenance.jsonl'}`: line n "
                "describes record n of every file above.")
    parts += ["## Provenance", prov]
    parts += ["## Licence", f"Dataset licence: {licence or 'not chosen yet; pick one before you publish.'}",
              licence_note or f"{source_licence} {TEACHER_TERMS_NOTE}".strip()]
    if person == len(pairs):
        limits = "Synthetic data: a person reviewed every pair, but answers can still be wrong or incomplete. "
    else:
        limits = (f"Synthetic data: {len(pairs) - person:,} of the {len(pairs):,} pairs were never read by a person. "
                  "Automatic checks (the answer's words found in the passages, a YES/NO verdict from the teacher, "
                  "the question leading back to its evidence) catch many mistakes but not all: a small teacher can "
                  "still name the wrong speaker or misread a scene. ")
    limits += "Answers are grounded in the retrieved passages only, so they miss what retrieval missed."
    parts += ["## Limitations", limits]
    if warnings:
        parts += ["## Warnings", "\n".join(f"- {w}" for w in warnings)]
    if notes:
        parts += ["## Notes", notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path
