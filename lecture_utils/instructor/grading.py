"""Headless grading: run every student's notebooks with papermill and report one row per student.

A student who hands in executed notebooks and their run files (passages.jsonl ... dataset.jsonl) is graded on
that work; the grader's own re-run then only checks that it reproduces. Otherwise the re-run is the work graded.
The re-run uses TEACHER=classroom by default: the kit's recorded replies, and a live teacher only for prompts the
student changed (a student who needs one when none is set up is reported as "needs a live teacher").

Checking each notebook for pasted keys before it runs, running it with a time limit and reading back what it did
happen in nbrun.py; this module turns those runs into one report row per student and writes the report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lecture_utils.errors import KitError
from lecture_utils.instructor.course import NOTEBOOKS
from lecture_utils.instructor.nbrun import NotebookRun, _own_outcome, one_line, run_notebooks, scan_notebook
from lecture_utils.instructor.report import (
    STAGE_FILES,
    changed_prompts,
    decisions_file,
    outputs_text,
    own_run_dir,
    reproduced,
    run_dir_metrics,
    write_html,
)
from lecture_utils.settings import REPO_ROOT
from lecture_utils.teacher.engine import CLASSROOM_LIVE, NEEDS_LIVE

TEACHERS = ("classroom", "replay", "local", "openai", "endpoint")
NEEDS_TEACHER = "needs a live teacher"  # the status of a run that failed only for want of a live teacher


class GradeError(KitError, ValueError):
    """Bad grading input (missing folder, unknown teacher...); the message says how to fix it."""


@dataclass
class Submission:
    student: str
    notebooks: list[Path] = field(default_factory=list)
    folder: Path | None = None  # the student's folder; None for a single top-level .ipynb


def find_submissions(submissions_dir: str | Path) -> list[Submission]:
    """One submission per student folder (the five notebooks, or any .ipynb in it) or per top-level .ipynb file."""
    root = Path(submissions_dir)
    if not root.is_dir():
        raise GradeError(f"{root} is not a folder: pass a folder with one sub-folder (or one .ipynb) per student.")
    subs: list[Submission] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            subs.append(Submission(entry.stem, [entry]))
        elif entry.is_dir():
            known = [entry / n for n in NOTEBOOKS if (entry / n).is_file()]
            other = sorted(p for p in entry.glob("*.ipynb") if not p.name.startswith("."))
            subs.append(Submission(entry.name, known or other, entry))
    if not subs:
        raise GradeError(f"{root} holds no student folders or .ipynb files: put one folder per student in it.")
    seen: set[str] = set()
    for sub in subs:  # alice/ and alice.ipynb must not share a run directory
        while sub.student in seen:
            sub.student += "_"
        seen.add(sub.student)
    return subs


def _outcome(runs: list[NotebookRun], executed: Path | None = None) -> tuple[str, str, NotebookRun | None]:
    """(status, one-line problem, the notebook at fault) of a list of notebook runs. With the re-run's folder, an
    error that came from a prompt no live teacher could answer is NEEDS_TEACHER, not a bug of the student's."""
    failed = next((r for r in runs if not r.ok), None)
    if failed is None:
        bad = next((r for r in runs if r.check != "pass"), None)
        return ("check_failed", f"check cell of {bad.name}: {bad.check}", None) if bad else ("ok", "", None)
    where = f" cell {failed.cell}" if failed.cell else ""
    if executed is not None and failed.kind in ("error", "check_failed"):
        text = outputs_text(executed / failed.name)
        if NEEDS_LIVE in text:
            said = text[text.index(NEEDS_LIVE) + len(NEEDS_LIVE):].splitlines()[0]
            return NEEDS_TEACHER, f"{NEEDS_TEACHER} in {failed.name}{where}: {said.strip()}", failed
    return failed.kind, f"{failed.kind.replace('_', ' ')} in {failed.name}{where}: {failed.error}", failed


def _short(name: str) -> str:
    return name[:2] if name[:2].isdigit() else Path(name).stem


def _checks(runs: list[NotebookRun]) -> dict[str, Any]:
    return {f"check_{_short(r.name)}": r.check_data for r in runs}


def grade_student(sub: Submission, work: Path, teacher: str, timeout: float, params: dict[str, Any]) -> dict:
    """Scan, then run one student's notebooks in order into a fresh run dir; return the report row. When the student
    handed in executed notebooks and their run files, those are graded and the run only checks they reproduce."""
    start = time.monotonic()
    if work.exists():
        shutil.rmtree(work)
    run_dir, executed, cwd = work / "run", work / "executed", work / "notebooks"
    for folder in (run_dir, executed, cwd):
        folder.mkdir(parents=True)
    if (REPO_ROOT / "data").is_dir():  # notebooks find the kit's data as ../data, as they do in the kit's own notebooks/
        (work / "data").symlink_to(REPO_ROOT / "data", target_is_directory=True)
    row: dict[str, Any] = {"student": sub.student, "status": "ok", "reason": "",
                           "notebooks_found": " ".join(_short(p.name) for p in sub.notebooks), "notebooks_ran": ""}
    params = dict(params)
    if "DECISIONS_FILE" not in params:
        # A fresh run has none of the student's clicks: replay their decisions file if they handed one in,
        # else let Stage 4 take its judge's suggestions so the later stages still have a curated set.
        mine = decisions_file(sub.folder)
        params["DECISIONS_FILE"] = str(mine.resolve()) if mine else "judge"
        row["decisions_from"] = mine.name if mine else "judge"
    if not sub.notebooks:
        row.update(status="empty", reason="no notebooks found in the student's folder")
        return row
    own_dir = own_run_dir(sub.folder, sub.notebooks)
    row["graded_from"] = "submission" if own_dir else "re-run"
    row["prompts_changed"] = " ".join(changed_prompts(sub.notebooks))
    scans = [scan_notebook(p) for p in sub.notebooks]
    secrets = [msg for _, kind, msg in scans if kind == "secret"]
    problems: list[str] = list(secrets)
    status = "secret" if secrets else "ok"
    all_params = {"TEACHER": teacher, "RUN_DIR": str(run_dir.resolve()), **params}
    runnable = []
    for path, (_, kind, msg) in zip(sub.notebooks, scans):
        if kind:  # never run a notebook that cannot be read, lost a required cell or holds a secret
            if kind != "secret":
                problems.append(msg)
            status = status if status == "secret" else kind
            row.update(failed_notebook=path.name)
            break
        runnable.append(path)
    runs = run_notebooks(runnable, executed, cwd, all_params, timeout) if runnable else []
    row["live_teacher"] = " ".join(_short(r.name) for r in runs if CLASSROOM_LIVE in outputs_text(executed / r.name))
    rerun_metrics = run_dir_metrics(run_dir)
    rerun_status, rerun_problem, rerun_failed = _outcome(runs, executed)
    problem, failed = "", None
    if own_dir and status == "ok":  # the student's own work is graded; the re-run only checks that it reproduces
        graded = [_own_outcome(p) for p in sub.notebooks]
        own_metrics = run_dir_metrics(own_dir)
        row.update(own_metrics)
        row["reproduced"] = reproduced(rerun_status, rerun_problem, {**own_metrics, **_checks(graded)},
                                        {**rerun_metrics, **_checks(runs)})
        status, problem, failed = _outcome(graded)
    else:
        graded = runs
        row.update(rerun_metrics)
        if rerun_failed is not None or status == "ok":  # a failing notebook outranks a scan problem, not a secret
            status = status if status == "secret" else rerun_status
            problem, failed = rerun_problem, rerun_failed
    if status == NEEDS_TEACHER and row["prompts_changed"]:
        where, _, said = problem.partition(": ")
        problem = f"{where} (prompts changed: {row['prompts_changed']}): {said}"
    if problem:
        problems.insert(len(secrets), problem)
    if failed is not None:
        row.update(failed_notebook=failed.name, failed_cell=failed.cell, error=failed.error)
    if status == "ok" and NOTEBOOKS[3] in {p.name for p in sub.notebooks} and not row.get("reviewed_by_person"):
        status = "not reviewed"
        problems.append("no Stage 4 decision was made by a person (the LLM judge's do not count): review the pairs "
                        "in the curation panel and hand in decisions.jsonl")
    row["status"], row["reason"] = status, one_line("; ".join(problems), 400)
    row["notebooks_ran"] = " ".join(_short(r.name) for r in runs if r.ok)
    for path in sub.notebooks:
        done = next((r for r in graded if r.name == path.name), None)
        row[f"check_{_short(path.name)}"] = done.check if done else "not run"
    row["check_data"] = json.dumps({_short(r.name): r.check_data for r in graded if r.check_data}, sort_keys=True)
    row["seconds"] = round(time.monotonic() - start, 1)
    return row


COLUMNS = ["student", "status", "reason", "graded_from", "reproduced", "notebooks_found", "notebooks_ran",
           "failed_notebook", "failed_cell", "error", "reviewed_by_person", "accept", "fix", "discard",
           "judge_decided", "prompts_changed", "recipe_changed", "live_teacher", *[f"n_{s}" for s in STAGE_FILES], "accepted_share",
           "distinct_verbs", "mean_similarity", "grounding_rate", *[f"check_{n[:2]}" for n in NOTEBOOKS],
           "decisions_from", "stale_decisions", "check_data", "seconds"]
COUNTS = ["failed_cell", "distinct_verbs", "reviewed_by_person", "accept", "fix", "discard", "judge_decided",
          "stale_decisions", *[f"n_{s}" for s in STAGE_FILES]]


def grade(
    submissions_dir: str | Path,
    out_csv: str | Path,
    teacher: str = "classroom",
    timeout: float = 600,
    jobs: int = 2,
    params: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Grade every submission; write the CSV and report.html beside it; return the table (one row per student)."""
    if teacher not in TEACHERS:
        raise GradeError(f"unknown teacher {teacher!r}: use one of {', '.join(TEACHERS)}.")
    if timeout <= 0 or jobs < 1:
        raise GradeError(f"timeout must be > 0 and jobs >= 1 (got timeout={timeout}, jobs={jobs}).")
    subs = find_submissions(submissions_dir)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    work_root = out_csv.parent / f"{out_csv.stem}_runs"
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(lambda s: grade_student(s, work_root / s.student, teacher, timeout, params or {}), subs))
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df.reindex(columns=COLUMNS + extra)
    for col in COUNTS:
        df[col] = df[col].astype("Int64")  # whole numbers, blank where unknown
    df.to_csv(out_csv, index=False)
    write_html(df, out_csv.with_name("report.html"), teacher=teacher)
    return df


# Command line -------------------------------------------------------------------------------------------------------


def grade_main(argv: list[str] | None = None) -> int:
    """`python -m lecture_utils grade SUBMISSIONS_DIR --out report.csv [--teacher T] [--timeout S] [--jobs N]`."""
    ap = argparse.ArgumentParser(prog="python -m lecture_utils grade", description=grade_main.__doc__)
    ap.add_argument("submissions_dir", help="one folder (or one .ipynb) per student")
    ap.add_argument("--out", default="report.csv", help="CSV path; report.html is written beside it")
    ap.add_argument("--teacher", default="classroom", choices=TEACHERS,
                    help="classroom (default): the recorded replies, and a live teacher (TEACHER_BASE_URL, else "
                         "OPENAI_API_KEY, else the embedded model) only for prompts a student changed; replay: "
                         "recorded replies only; local, openai, endpoint: always the live teacher")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook")
    ap.add_argument("--jobs", type=int, default=2, help="students graded in parallel")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra notebook parameter, e.g. N_QA=4 or BOOK_PATH=/data/pg1342.txt (JSON values; repeatable)")
    args = ap.parse_args(argv)
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--param {item!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)  # numbers, lists, true/false/null as JSON; anything else is a string
        except json.JSONDecodeError:
            params[key] = value
    try:
        df = grade(args.submissions_dir, args.out, args.teacher, args.timeout, args.jobs, params)
    except GradeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for _, r in df.iterrows():
        print(f"{r['student']:<20} {r['status']:<20} {r['reason'] if isinstance(r['reason'], str) else ''}")
    print(f"wrote {args.out} and {Path(args.out).with_name('report.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(grade_main())
