"""The grader's hands on a student's notebook files: check each one before it runs, run them in order in a process
of their own, and read back what every notebook did.

A notebook that is not valid JSON, has lost its `parameters` or `check` cell, or holds something shaped like an API
key is never run. The run gets its own process group and a time limit per notebook; past the limit the whole group,
kernel included, is killed, so one student's endless loop cannot hold up the rest. Text read back from a notebook
goes through `redact` before it can reach a report.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from lecture_utils.settings import REPO_ROOT, environment

STARTUP_LIMIT = 120  # seconds for the per-student process to import papermill

# Key-like strings. The second pattern catches `api_key = "..."` style assignments of a long literal.
SECRET_PATTERNS = (
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}"),
    re.compile(r"""(?i)\b\w*(?:api[_-]?key|secret|access[_-]?token|auth[_-]?token)\w*['"]?\s*\]?\s*[:=]\s*['"][^'"\s]{24,}['"]"""),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\b(?:ghp|github_pat|hf)_[A-Za-z0-9_]{30,}"),
)


@dataclass
class NotebookRun:
    """What happened to one notebook of one student."""

    name: str
    ok: bool = False
    kind: str = ""  # "", "error", "syntax_error", "check_failed", "timeout", "crash"
    cell: int | None = None  # 1-based position in the student's notebook
    error: str = ""
    check: str = "not run"  # "pass", "fail: ...", "no CHECK line", "not run"
    check_data: dict | None = None
    seconds: float = 0.0


def redact(text: str) -> str:
    """Replace anything key-like with a marker, so an error message never carries a secret into the report."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


def one_line(text: str, limit: int = 240) -> str:
    text = redact(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scan_notebook(path: Path) -> tuple[Any, str | None, str]:
    """Read and check a notebook before running it: (notebook or None, problem kind, one-line message)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises several types for broken files
        raw = path.read_text(encoding="utf-8", errors="replace")
        if any(p.search(raw) for p in SECRET_PATTERNS):  # a broken file can still leak a key
            return None, "secret", f"secret found in {path.name} (which is not valid notebook JSON either); remove the key"
        return None, "invalid_json", (f"invalid notebook JSON in {path.name} ({one_line(e, 100)}); "
                                      "re-download or re-save it from Jupyter")
    for i, cell in enumerate(nb.cells, 1):
        texts = [cell.get("source", "")]
        for out in cell.get("outputs", []) or []:
            texts.append(out.get("text", "") if isinstance(out.get("text", ""), str) else "".join(out.get("text", "")))
            texts.extend(v for v in (out.get("data") or {}).values() if isinstance(v, str))
        if any(p.search(t) for t in texts for p in SECRET_PATTERNS):
            return nb, "secret", (
                f"secret found in cell {i} of {path.name}: remove the key from the notebook and set "
                "TEACHER_API_KEY in the environment instead (the notebook was not run)"
            )
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in nb.cells if c.cell_type == "code"]
    for tag in ("parameters", "check"):
        if not any(tag in t for t in tags):
            return nb, "deleted_cell", (
                f"deleted cell: {path.name} has no code cell tagged '{tag}'; restore it from the original notebook"
            )
    return nb, None, ""


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill the papermill process group and the kernel's own group (jupyter starts kernels in a new session)."""
    import psutil  # a dependency of IPython, so always there where papermill is

    groups = {proc.pid}
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                groups.add(os.getpgid(child.pid))
            except ProcessLookupError:
                pass
    except psutil.NoSuchProcess:
        pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def _original_cells(executed: Any) -> list[Any]:
    """The executed notebook's cells without the ones papermill inserts, so positions match the student's file."""
    added = {"injected-parameters", "papermill-error-cell-tag"}
    return [c for c in executed.cells if not added & set(c.get("metadata", {}).get("tags", []))]


def _read_outcome(run: NotebookRun, out_path: Path) -> None:
    """Fill in the failing cell, error and check result from papermill's output notebook."""
    try:
        cells = _original_cells(nbformat.read(out_path, as_version=4))
    except Exception:
        return
    for i, cell in enumerate(cells, 1):
        if cell.cell_type != "code":
            continue
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if run.kind == "timeout" and status == "running" and run.cell is None:
            run.cell = i
        if errors and run.cell is None:
            run.cell = i
            evalue = re.sub(r"\(\d+\.py, line (\d+)\)", r"(line \1 of the cell)", errors[0].get("evalue", ""))
            run.error = one_line(f"{errors[0].get('ename', 'Error')}: {evalue}")
            if errors[0].get("ename") in ("SyntaxError", "IndentationError", "TabError"):
                run.kind = "syntax_error"
        if "check" in cell.get("metadata", {}).get("tags", []):
            lines = [
                line[len("CHECK "):]
                for o in cell.get("outputs", [])
                if o.get("output_type") == "stream"
                for line in (o.get("text", "") if isinstance(o.get("text"), str) else "".join(o["text"])).splitlines()
                if line.startswith("CHECK ")
            ]
            if errors:
                if run.cell == i and run.kind != "syntax_error":
                    run.kind = "check_failed"
                run.check = "fail: " + one_line(f"{errors[0].get('ename')}: {errors[0].get('evalue', '')}", 160)
            elif lines:
                run.check = "pass"
                try:
                    run.check_data = json.loads(lines[-1])
                except json.JSONDecodeError:
                    run.check = "fail: CHECK line is not valid JSON"
            elif status == "completed" or cell.get("execution_count"):
                run.check = "no CHECK line"


WORKER_MARK = "@@grader"


def _worker() -> None:
    """Runs in the per-student process: execute the notebooks in order, announcing each start and end."""
    spec = json.loads(sys.stdin.read())
    import papermill as pm

    for nb in spec["notebooks"]:
        print(f"{WORKER_MARK} start {nb['name']}", flush=True)
        code = 0
        try:
            pm.execute_notebook(nb["path"], nb["out"], parameters=spec["params"], kernel_name="python3",
                                cwd=spec["cwd"], progress_bar=False, autosave_cell_every=5)
        except pm.PapermillExecutionError:
            code = 1
        except Exception as e:  # kernel died, unreadable notebook...: the parent reports this line
            print(one_line(f"{type(e).__name__}: {e}"), file=sys.stderr, flush=True)
            code = 2
        print(f"{WORKER_MARK} end {nb['name']} {code}", flush=True)
        if code:
            break


def run_notebooks(
    paths: list[Path], executed: Path, cwd: Path, params: dict[str, Any], timeout: float
) -> list[NotebookRun]:
    """Run one student's notebooks in order in a process of their own; kill it if one notebook exceeds `timeout` s."""
    spec = {"cwd": str(cwd.resolve()), "params": params,
            "notebooks": [{"name": p.name, "path": str(p.resolve()), "out": str((executed / p.name).resolve())}
                          for p in paths]}
    env = environment()
    package_root = str(REPO_ROOT)  # so the worker and kernels import this same package
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log = executed / "papermill.log"
    runs: list[NotebookRun] = []
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from lecture_utils.instructor.nbrun import _worker; _worker()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, cwd=cwd.resolve(),
            start_new_session=True,
        )
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
        current: NotebookRun | None = None
        started = time.monotonic()
        while True:
            wait = (started + timeout if current else started + STARTUP_LIMIT) - time.monotonic()
            try:
                line = lines.get(timeout=max(wait, 0.01))
            except queue.Empty:
                _kill_tree(proc)
                if current is None:
                    runs.append(NotebookRun(paths[len(runs)].name, kind="crash",
                                            error=f"the grading process did not start within {STARTUP_LIMIT} s"))
                else:
                    current.kind = "timeout"
                    current.seconds = round(time.monotonic() - started, 1)
                    _read_outcome(current, executed / current.name)
                    current.error = f"still running after {timeout:g} s (infinite loop?); killed"
                    runs.append(current)
                break
            if line is None:  # the worker exited
                if current is not None:
                    current.kind = "crash"
                    current.error = "the notebook's process died: " + _last_line(log)
                    runs.append(current)
                break
            if not line.startswith(WORKER_MARK):
                continue
            _, event, name, *rest = line.split()
            if event == "start":
                current, started = NotebookRun(name), time.monotonic()
            elif event == "end" and current is not None:
                current.seconds = round(time.monotonic() - started, 1)
                _finish(current, executed / name, int(rest[0]), log)
                runs.append(current)
                current, started = None, time.monotonic()
        proc.wait()
    return runs


def _last_line(log: Path) -> str:
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip() and "WARNING" not in line]
    return one_line(tail[-1]) if tail else "no message"


def _finish(run: NotebookRun, out_path: Path, code: int, log: Path) -> None:
    _read_outcome(run, out_path)
    if code == 0:
        run.ok, run.kind = True, ""
        if run.check == "not run":
            run.check = "no CHECK line"
    elif code == 1 and run.error:
        run.kind = run.kind or "error"
    else:
        run.kind, run.error = "crash", _last_line(log)


def _own_outcome(path: Path) -> NotebookRun:
    """What a student's own executed notebook shows: the first error in its outputs, and its check cell."""
    run = NotebookRun(path.name)
    _read_outcome(run, path)
    if run.error:
        run.kind = run.kind or "error"
    elif run.check != "pass":
        run.kind = "check_failed"
    else:
        run.ok = True
    return run
