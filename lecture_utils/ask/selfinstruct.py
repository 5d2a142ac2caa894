"""Stage 2, Self-Instruct style: seed instructions, the teacher's meta-prompt runs, and merging the runs.

Each run shows the teacher a few seed instructions and asks for n new ones in the given categories; the runs are
merged seeds first, and an instruction too close to an earlier one (ROUGE-L, dedup.py) is dropped. novelty_by_run
says how much each run added that was new. How diverse the result is lives in diversity.py, which chapters and
characters it covers in coverage.py.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from lecture_utils.errors import KitError
from lecture_utils.prompts import CATEGORIES, SEED_META_PROMPT, SEED_SYSTEM, format_categories, format_examples
from lecture_utils.records import Instruction
from lecture_utils.settings import REPO_ROOT
from lecture_utils.teacher.task import Task
from lecture_utils.text.dedup import near_duplicates

SEEDS_PATH = REPO_ROOT / "data" / "seed_tasks.jsonl"


class TaxonomyError(KitError, ValueError):
    """A seed file or a teacher reply that Stage 2 cannot use."""


# --- Seeds -----------------------------------------------------------------------------------------------------------


def load_seeds(path: str | Path = SEEDS_PATH) -> list[Instruction]:
    """Read seed instructions from Alpaca's seed_tasks.jsonl, a JSONL of {"instruction", "category"?}, or plain lines."""
    path = Path(path)
    if not path.is_file():
        raise TaxonomyError(
            f"seed file {path} not found: pass an Alpaca seed_tasks.jsonl, a JSONL of {{\"instruction\": ...}} "
            f"or a text file with one instruction per line (the kit's own is {SEEDS_PATH})."
        )
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    as_json = first.startswith("{")  # the first real line decides the format, so a broken JSON line is an error
    seeds: list[Instruction] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or (not as_json and text.startswith("#")):
            continue
        if as_json:
            seeds.append(_seed_from_json(text, path, number, len(seeds) + 1))
        else:
            text = re.sub(r"^(?:[-*\u2022]|\d+[.)])\s+", "", text)  # "- ...", "3. ..." list markers
            seeds.append(Instruction(id=f"seed-{len(seeds) + 1:03d}", instruction=text, category="seed", run=-1, origin="seed"))
    if not seeds:
        raise TaxonomyError(f"{path} holds no instructions: add one per line, or one JSON object per line.")
    return seeds


def _seed_from_json(text: str, path: Path, number: int, position: int) -> Instruction:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaxonomyError(f"{path}:{number}: not valid JSON ({e.msg}); fix or delete that line.") from None
    instruction = data.get("instruction") if isinstance(data, dict) else None
    if not isinstance(instruction, str) or not instruction.strip():
        raise TaxonomyError(f"{path}:{number}: no \"instruction\" text; each line needs {{\"instruction\": \"...\"}}.")
    instances = data.get("instances") or [{}]
    first = instances[0] if isinstance(instances, list) and instances and isinstance(instances[0], dict) else {}
    return Instruction(
        id=f"seed-{position:03d}",
        instruction=" ".join(instruction.split()),
        category=str(data.get("category") or "seed"),
        run=-1,
        origin="seed",
        input=str(first.get("input") or ""),
    )


# --- Teacher runs ----------------------------------------------------------------------------------------------------


def INSTRUCTION_SCHEMA(n: int, categories: Sequence[str] | None = None) -> dict:
    """JSON schema for one run's reply: exactly n {category, instruction} items."""
    return {
        "type": "object",
        "properties": {
            "instructions": {
                "type": "array",
                "minItems": n,
                "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string", "enum": list(categories or CATEGORIES)},
                        "instruction": {"type": "string", "minLength": 15},
                    },
                    "required": ["category", "instruction"],
                },
            }
        },
        "required": ["instructions"],
    }


# Alpaca's meta-prompt: n categorised instructions in one reply (its schema and prompt are built per run).
META = Task("self-instruct run", SEED_META_PROMPT, INSTRUCTION_SCHEMA(20), system=SEED_SYSTEM, temperature=0.7,
            attempts=None)


def build_seed_prompt(n: int, examples: Sequence[str | Instruction] = (), categories: Sequence[str] | None = None,
                      prompt: str = SEED_META_PROMPT, title: str = "the source") -> str:
    """Fill the meta-prompt's {n}, {categories}, {examples} and {title}."""
    texts = [e.instruction if isinstance(e, Instruction) else str(e) for e in examples]
    try:
        return prompt.format(n=n, categories=format_categories(list(categories) if categories else None),
                             examples=format_examples(texts), title=title)
    except (KeyError, IndexError) as e:
        raise TaxonomyError(f"the meta-prompt has an unknown placeholder {e}; use only {{n}}, {{categories}}, "
                            "{examples} and {title}, and double other braces as {{ }}.") from None


def pick_examples(k: int = 3, seed: int | None = 0,
                  source: str | Path | Sequence[Instruction | str] = SEEDS_PATH) -> list[str]:
    """k seed instructions chosen by `seed`, so each run shows the teacher different examples (as Self-Instruct does).

    `source` is a seed file or already loaded seeds."""
    items = load_seeds(source) if isinstance(source, (str, Path)) else source
    texts = [i.instruction if isinstance(i, Instruction) else str(i) for i in items]
    return random.Random(seed).sample(texts, min(k, len(texts)))


def generate_run(teacher, n: int = 20, run: int = 1, temperature: float = 0.7, seed: int | None = None, *,
                 prompt: str = SEED_META_PROMPT, system: str | None = SEED_SYSTEM,
                 examples: Sequence[str | Instruction] | None = None, categories: Sequence[str] | None = None,
                 seeds: Sequence[Instruction | str] | None = None, max_tokens: int | None = None,
                 title: str = "the source") -> list[Instruction]:
    """Ask the teacher once for n categorised instructions; ids are "i{run:02d}-{position:03d}".

    Without `examples`, three are drawn (by `seed`) from `seeds`, or from the kit's seed file."""
    if examples is None:
        examples = pick_examples(3, seed if seed is not None else run, seeds if seeds is not None else SEEDS_PATH)
    cats = list(categories or CATEGORIES)
    system = system.replace("{title}", title) if system else system
    task = dataclasses.replace(META, system=system)
    reply = task.send(teacher, build_seed_prompt(n, examples, cats, prompt, title), schema=INSTRUCTION_SCHEMA(n, cats),
                      temperature=temperature, max_tokens=max_tokens or 80 * n + 200, seed=seed)
    items = reply.data.get("instructions") if isinstance(reply.data, dict) else None
    if not isinstance(items, list):
        got = sorted(reply.data) if isinstance(reply.data, dict) else type(reply.data).__name__
        raise TaxonomyError(f"run {run}: the reply has no \"instructions\" list (got {got}); try another seed or model.")
    out = []
    for item in items:
        text = item.get("instruction") if isinstance(item, dict) else item if isinstance(item, str) else None
        if not isinstance(text, str) or not text.strip():
            continue
        category = str(item.get("category") or "other").strip().lower() if isinstance(item, dict) else "other"
        out.append(Instruction(id=f"i{run:02d}-{len(out) + 1:03d}", instruction=" ".join(text.split()),
                               category=category, run=run, origin="teacher"))
    if not out:
        raise TaxonomyError(f"run {run}: the reply held no usable instructions; try another seed or model.")
    return out


_DANGLING = {"of", "the", "a", "an", "to", "in", "on", "and", "or", "with", "about", "from", "between", "by", "for",
             "as", "at", "into", "that", "his", "her", "their", "its", "is", "are", "was"}


def looks_cut_off(instruction: str) -> bool:
    """True for an instruction that stops mid-phrase, e.g. "Describe the plot of" (a small model wrote a quoted title
    with raw quotes inside its JSON string, and the string ended at the first one)."""
    text = instruction.strip()
    words = re.findall(r"[A-Za-z']+", text)
    return not text or (text[-1] not in ".?!)\"'”" and bool(words) and words[-1].lower() in _DANGLING)


@dataclass
class RunReport:
    run: int
    temperature: float
    seed: int | None
    count: int = 0  # instructions kept from this run
    cut_off: int = 0  # set aside because they stop mid-phrase
    error: str = ""  # one line; empty when the run worked


@dataclass
class TaxonomyResult:
    """All runs merged: the instructions, and one report per run (failed runs say why)."""

    instructions: list[Instruction] = field(default_factory=list)
    runs: list[RunReport] = field(default_factory=list)
    teacher: str = ""
    cut_off: list[Instruction] = field(default_factory=list)  # set aside, shown, not silently lost

    @property
    def failures(self) -> list[RunReport]:
        return [r for r in self.runs if r.error]

    def table(self) -> pd.DataFrame:
        return instructions_table(self.instructions)

    def __repr__(self) -> str:
        cut = f", {len(self.cut_off)} cut off" if self.cut_off else ""
        return (f"TaxonomyResult({len(self.instructions)} instructions from {len(self.runs) - len(self.failures)}/"
                f"{len(self.runs)} runs{cut}; teacher: {self.teacher})")


def generate_taxonomy(teacher, runs: Sequence[tuple[float, int | None]] = ((0.7, 1), (0.9, 2), (1.0, 3)), n: int = 20,
                      *, first_run: int = 1, **kwargs: Any) -> TaxonomyResult:
    """Run the meta-prompt once per (temperature, seed); a failed run is reported and the others are kept.

    Instructions that stop mid-phrase go to `.cut_off` instead of `.instructions`."""
    result = TaxonomyResult(teacher=teacher.describe() if hasattr(teacher, "describe") else type(teacher).__name__)
    for number, (temperature, seed) in enumerate(runs, first_run):
        report = RunReport(number, temperature, seed)
        try:
            batch = generate_run(teacher, n, number, temperature, seed, **kwargs)
        except (ValueError, RuntimeError) as e:  # TeacherError and TaxonomyError are both; one bad run must not cost the rest
            report.error = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.warn(f"taxonomy run {number} (temperature {temperature}, seed {seed}) failed: {report.error}",
                          stacklevel=2)
        else:
            cut = [i for i in batch if looks_cut_off(i.instruction)]
            report.count, report.cut_off = len(batch) - len(cut), len(cut)
            result.instructions.extend(i for i in batch if not looks_cut_off(i.instruction))
            result.cut_off.extend(cut)
        result.runs.append(report)
    if not result.instructions and result.runs:
        raise TaxonomyError(f"every taxonomy run failed; the first said: {result.runs[0].error}")
    return result


def instructions_table(instructions: Iterable[Instruction]) -> pd.DataFrame:
    cols = ["id", "run", "origin", "category", "instruction"]
    return pd.DataFrame([{c: getattr(i, c) for c in cols} for i in instructions], columns=cols)


# --- Merging the runs: near-duplicates and novelty -------------------------------------------------------------------


def merge_and_dedup(instructions: Sequence[Instruction], threshold: float = 0.7,
                    method: str = "rouge") -> tuple[list[Instruction], pd.DataFrame]:
    """Seeds first, then runs in order; drop each instruction too similar to an earlier kept one. -> (kept, dropped)."""
    ordered = sorted(instructions, key=lambda i: (i.origin != "seed", i.run))  # stable: position within a run is kept
    result = near_duplicates([i.instruction for i in ordered], threshold=threshold, method=method)
    kept = [ordered[k] for k in result.kept]
    rows = []
    for d in result.dropped:
        me, other = ordered[d.index], ordered[d.closest]
        rows.append({"id": me.id, "instruction": me.instruction, "category": me.category, "run": me.run,
                     "origin": me.origin, "closest_id": other.id, "closest_instruction": other.instruction,
                     "closest_run": other.run, "score": round(d.score, 3)})
    cols = ["id", "instruction", "category", "run", "origin", "closest_id", "closest_instruction", "closest_run", "score"]
    return kept, pd.DataFrame(rows, columns=cols)


def novelty_by_run(instructions: Sequence[Instruction], threshold: float = 0.7,
                   dropped: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run: how many instructions were new, and how many repeated an earlier run (seeds count as run -1)."""
    if dropped is None:
        _, dropped = merge_and_dedup(instructions, threshold)
    generated = Counter(i.run for i in instructions)
    earlier = Counter(dropped.loc[dropped["closest_run"] != dropped["run"], "run"])
    same = Counter(dropped.loc[dropped["closest_run"] == dropped["run"], "run"])
    rows, total = [], 0
    for run in sorted(generated):
        new = generated[run] - earlier[run] - same[run]
        total += new
        rows.append({"run": run, "label": "seeds" if run < 0 else f"run {run}", "generated": generated[run], "new": new,
                     "repeats_earlier": earlier[run], "repeats_same_run": same[run], "unique_so_far": total})
    return pd.DataFrame(rows, columns=["run", "label", "generated", "new", "repeats_earlier", "repeats_same_run",
                                       "unique_so_far"])
