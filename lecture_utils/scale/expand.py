"""Stage 2 at scale: many Self-Instruct meta-prompt runs, several at a time, resumable like the factory.

    expand_instructions(teacher, "runs/big/instructions.raw.jsonl", runs=50)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from lecture_utils.records import to_dict
from lecture_utils.scale.runs import failures_path
from lecture_utils.teacher.client import Teacher
from lecture_utils.teacher.task import ManySummary, TaskError, run_many
from lecture_utils.teacher.wire import CallError


def expand_instructions(teacher: Teacher, out: str | Path, runs: int = 10, n_per_run: int = 20, *, first_run: int = 1,
                        temperatures: Sequence[float] = (0.7, 0.9, 1.0), concurrency: int = 4,
                        failures: str | Path | None = None, progress: bool = True, **run_options: Any) -> ManySummary:
    """Stage 2 at scale: `runs` meta-prompt calls (selfinstruct.generate_run, run r uses seed r and its own examples),
    several at a time, each run's instructions appended to `out` in one write. Runs already in `out` or in the
    failures file are skipped, so it resumes; deduplicate afterwards with selfinstruct.merge_and_dedup."""
    from lecture_utils.ask.selfinstruct import generate_run

    out = Path(out)
    failures = failures_path(out, failures)

    def work(r: int) -> tuple[list, list]:  # one write for the whole run: a killed process leaves it whole or absent
        batch = generate_run(teacher, n_per_run, r, temperatures[r % len(temperatures)], r, **run_options)
        return [{**to_dict(i), "job": f"run-{r}"} for i in batch], []

    def bar(items: Any, total: int | None = None) -> Any:
        from tqdm.auto import tqdm

        return tqdm(items, total=total, desc="Self-Instruct runs")

    summary = run_many(list(range(first_run, first_run + runs)), lambda r: f"run-{r}", work, out, failures,
                       concurrency=concurrency, done_key=lambda rec: rec.get("job") or f"run-{rec.get('run')}",
                       drop_on=(TaskError, CallError, ValueError), progress=bar if progress else None,
                       what="Self-Instruct runs", made="instructions")
    if progress:
        print(summary)
    return summary
