"""Stage 2 at scale: many Self-Instruct meta-prompt runs, several at a time, resumable like the factory.

    expand_instructions(teacher, "runs/big/instructions.raw.jsonl", runs=50)
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lecture_utils.records import repair_tail, to_dict
from lecture_utils.scale.runs import LineWriter, failures_path, finished_ids, iter_instructions, progress_bar
from lecture_utils.teacher.client import Teacher


@dataclass
class ExpandSummary:
    out: str
    failures: str
    runs_done: int = 0
    runs_skipped: int = 0  # already in the output or failures file
    runs_failed: int = 0
    instructions: int = 0

    def __str__(self) -> str:
        return (f"expansion: {self.runs_done} runs gave {self.instructions:,} instructions -> {self.out}; "
                f"{self.runs_failed} failed -> {self.failures}; {self.runs_skipped} done before")


def expand_instructions(teacher: Teacher, out: str | Path, runs: int = 10, n_per_run: int = 20, *, first_run: int = 1,
                        temperatures: Sequence[float] = (0.7, 0.9, 1.0), concurrency: int = 4,
                        failures: str | Path | None = None, progress: bool = True, **run_options: Any) -> ExpandSummary:
    """Stage 2 at scale: `runs` meta-prompt calls (selfinstruct.generate_run, run r uses seed r and its own examples),
    several at a time, each run's instructions appended to `out` in one write. Runs already in `out` or in the
    failures file are skipped, so it resumes; deduplicate afterwards with selfinstruct.merge_and_dedup."""
    from lecture_utils.ask.selfinstruct import generate_run

    out = Path(out)
    failures = failures_path(out, failures)
    summary = ExpandSummary(str(out), str(failures))
    for path in (out, failures):
        repair_tail(path)
    done = {rec.run for rec in iter_instructions(out)} if out.exists() else set()
    done |= {int(str(r)[4:]) for r in finished_ids(failures, "id") if str(r).startswith("run-")}
    todo = [r for r in range(first_run, first_run + runs) if r not in done]
    summary.runs_skipped = runs - len(todo)
    writer, fail = LineWriter(out), LineWriter(failures)
    bar = progress_bar(len(todo), progress)
    try:
        # The sync Teacher does the structured output, retries and caching; Stage 2 needs hundreds of calls, not
        # tens of thousands, so a few threads are plenty.
        with concurrent.futures.ThreadPoolExecutor(max(1, concurrency)) as pool:
            futures = {pool.submit(generate_run, teacher, n_per_run, r, temperatures[r % len(temperatures)], r,
                                   **run_options): r for r in todo}
            for future in concurrent.futures.as_completed(futures):
                r = futures[future]
                try:
                    batch = future.result()
                except (ValueError, RuntimeError) as e:
                    fail.write({"id": f"run-{r}", "reason": type(e).__name__, "detail": str(e)[:300], "attempts": 1})
                    summary.runs_failed += 1
                else:  # one write for the whole run: a killed process leaves the run complete or absent
                    os.write(writer.fd, "".join(json.dumps(to_dict(i), ensure_ascii=False) + "\n"
                                                for i in batch).encode("utf-8"))
                    summary.runs_done += 1
                    summary.instructions += len(batch)
                if bar is not None:
                    bar.update(1)
    finally:
        writer.close()
        fail.close()
        if bar is not None:
            bar.close()
    if progress:
        print(summary)
    return summary
