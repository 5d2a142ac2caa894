"""The lecture's loop: Stage 5 grows the instruction pool again from Stage 2's Tasks, with the prompts the run
recorded, on passages Stage 2 did not use, with the same checks; the factory then answers the new tasks like any
instruction.

    new = grow(teacher, "runs/demo", passages, 24, taxonomy_name="novel", title="Pride and Prejudice")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from lecture_utils.answer.retrieval import BM25Index
from lecture_utils.ask import grounded, taxonomy
from lecture_utils.records import Instruction, Passage, iter_jsonl
from lecture_utils.scale.runs import read_recipe
from lecture_utils.text.dedup import near_duplicates

GROWN = "factory/grown_tasks.jsonl"  # under the run directory, beside the factory's other files


def used_passages(run_dir: str | Path) -> set[str]:
    """The passages the run's instructions and Stage 2's tasks (kept or dropped) were written from. (Not those grow
    used: asked again with the same n and seed, grow picks the same passages, and its files make it a resume.)"""
    run = Path(run_dir)
    used: set[str] = set()
    for name in ("instructions.jsonl", "tasks.jsonl", "tasks.dropped.jsonl"):
        if (run / name).exists():
            for record in iter_jsonl(run / name):
                used.add(record.get("passage_id") or "")
                used |= set(record.get("related") or [])
                used |= set(str(record.get("job") or "").split("+"))
    return used - {""}


def grow(teacher: Any, run_dir: str | Path, passages: Sequence[Passage], n: int, *, taxonomy_name: Any = None,
         title: str, seed: int = 1, threshold: float = 0.7, progress: Any = None) -> list[Instruction]:
    """Write tasks from n passages the run has not used yet (spread over every unit, types dealt in turn), with the
    evidence and task prompts in RUN_DIR/prompts.json (the kit's where the run has none), checked as in Stage 2;
    resumable. Returns the kept tasks that are not near-duplicates (ROUGE-L above threshold) of the run's
    instructions. `taxonomy_name` defaults to the run's TAXONOMY setting, else "novel"."""
    run = Path(run_dir)
    recipe = read_recipe(run)
    types = taxonomy.resolve(taxonomy_name or recipe.settings.get("TAXONOMY") or "novel")
    used = used_passages(run)
    fresh = [p for p in passages if p.id not in used]
    if n <= 0 or not fresh:
        return []
    jobs = taxonomy.assign(taxonomy.sample(fresh, n, seed=seed), types, BM25Index(passages), seed=seed)
    out = run / GROWN
    grounded.generate(teacher, jobs, out, title=title, progress=progress,
                      pick=grounded.PICK.edited(recipe.prompt("EVIDENCE_PROMPT", grounded.PICK.prompt)),
                      write=grounded.WRITE.edited(recipe.prompt("TASK_PROMPT", grounded.WRITE.prompt)))
    kept, _ = grounded.load(out, jobs)
    pool = [i.instruction for i in iter_jsonl(run / "instructions.jsonl", Instruction)] \
        if (run / "instructions.jsonl").exists() else []
    result = near_duplicates(pool + [k.instruction for k in kept], threshold=threshold)
    survivors = {i - len(pool) for i in result.kept if i >= len(pool)}
    return [k for i, k in enumerate(kept) if i in survivors]
