"""Stage 5 exports: the curated pairs in the formats fine-tuning tools read, each checked, with a dataset card.

    pairs = curated_pairs(read_jsonl("qa_pairs.jsonl", QAPair), read_jsonl("decisions.jsonl", Decision))
    result = export_dataset(pairs, "runs/demo/export", source="Pride and Prejudice (Project Gutenberg #1342)")

Formats: Alpaca JSON (instruction, input, output), ShareGPT JSON (conversations of human/gpt turns) and OpenAI chat
fine-tuning JSONL (messages: system, user, assistant). Every file is read back and validated after writing. Where each
answer came from (passage ids, teacher, prompt version) goes in a side file, or in a field of each record for the
tools that ignore extra fields; the OpenAI file always keeps it on the side, since its lines may hold only messages.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lecture_utils.curate.decisions import decisions_that_count
from lecture_utils.records import Decision, QAPair
from lecture_utils.scale.formats import (
    DEFAULT_SOURCE_LICENCE,
    DEFAULT_SYSTEM,
    FILE_NAMES,
    FORMATS,
    OPENAI_MIN_EXAMPLES,
    PROVENANCE,
    ExportError,
    fill_system,
    provenance,
    source_title,
    to_alpaca,
    to_openai_chat,
    to_sharegpt,
    validate_file,
)

# --- which pairs go in ------------------------------------------------------------------------------------------


def curation_counts(pairs: Iterable[QAPair], decisions: Iterable[Decision | dict]) -> dict[str, int]:
    """Pairs per final status (accept, fix, discard, unreviewed) and stale decisions, for the dataset card."""
    pairs = list(pairs)
    counted = decisions_that_count(pairs, decisions)
    latest, stale = counted.latest, counted.stale
    counts = Counter(latest[p.id].status if p.id in latest else "unreviewed" for p in pairs)
    return {"pairs": len(pairs), **{s: counts.get(s, 0) for s in ("accept", "fix", "discard", "unreviewed")},
            "stale decisions": stale}


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
        from lecture_utils.scale.quality import rows
        parts += ["## Diversity, grounding and copying (measured)", _table(rows(figures), ("figure", "value"))]
    if provenance_mode == "columns":  # the Hugging Face folder: provenance travels with each row
        prov = ("Each row carries its provenance as columns: `task_type`, `cited` (passage ids) and `units` (their "
                "chapters or documents), `evidence` and `reference` (the quotes and the answer Stage 2 wrote a task "
                "from; empty for answer-first questions), `review` (who vouches for it), `checks` (each check's "
                "result, as JSON), `teacher` and `prompt_sha`.")
    elif provenance_mode == "none":
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
