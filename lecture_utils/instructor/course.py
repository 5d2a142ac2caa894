"""Run the five stage notebooks headless, in order, with papermill (for instructors and CI)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from lecture_utils.errors import KitError
from lecture_utils.settings import DATA_DIR, MODES, NOTEBOOKS_DIR, REPLAY_MODES

NOTEBOOKS = (
    "01_gather_knowledge.ipynb",
    "02_seed_taxonomy.ipynb",
    "03_grounded_qa.ipynb",
    "04_human_curation.ipynb",
    "05_repeat_and_scale.ipynb",
)


DEMO_DECISIONS = DATA_DIR / "demo_decisions.jsonl"
# what run-course --teacher takes, the replay modes (they answer the kit's own prompts from the replay cache) first
TEACHERS = REPLAY_MODES + tuple(m for m in MODES if m not in REPLAY_MODES)
REPLAYS = REPLAY_MODES


def replay_environment() -> dict[str, str]:
    """Environment for a headless replay run: the recorded teacher, and the shipped human decisions for Stage 4."""
    return {"TEACHER": "replay", "CURATION_DECISIONS": str(DEMO_DECISIONS)}


class CourseError(KitError, RuntimeError):
    pass


@dataclass
class CourseResult:
    out_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    checks: dict[str, dict] = field(default_factory=dict)


def check_lines(nb_path: Path) -> dict:
    """The `CHECK {json}` line a notebook's last cell printed, parsed ({} when there is none)."""
    nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    for cell in reversed(nb["cells"]):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith("CHECK "):
                    return json.loads(line[len("CHECK "):])
    return {}


def _parameter_names(nb_path: Path) -> set[str]:
    """Names assigned in the notebook's `parameters` cell (papermill warns about any other)."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            return {line.split("=")[0].strip() for line in src.splitlines() if "=" in line and not line.startswith("#")}
    return set()


def run_course(teacher: str = "replay", out_dir: str | Path = "runs/course", notebooks_dir: str | Path | None = None,
               parameters: dict | None = None, timeout: int = 1800) -> CourseResult:
    """Execute notebooks 1-5 into out_dir; the run's data goes to out_dir/run. Stops at the first failing notebook.

    `teacher` is one of TEACHERS: "classroom" replays like "replay" and sends unrecorded prompts to a live teacher.
    """
    if teacher not in TEACHERS:
        raise CourseError(f"unknown teacher {teacher!r}: use one of {', '.join(TEACHERS)}.")
    import papermill as pm

    notebooks_dir = Path(notebooks_dir or NOTEBOOKS_DIR)
    out_dir = Path(out_dir).resolve()
    run_dir = out_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"TEACHER": teacher, "RUN_DIR": str(run_dir), **(parameters or {})}
    if "DECISIONS_FILE" not in params:  # Stage 4 has nobody to click: replay uses the shipped decisions, live runs the judge
        params["DECISIONS_FILE"] = str(DEMO_DECISIONS) if teacher in REPLAYS else "judge"
    result = CourseResult(out_dir)
    for name in NOTEBOOKS:
        src = notebooks_dir / name
        if not src.exists():
            raise CourseError(f"{src} is missing: restore it from the repository (git checkout -- {src}).")
        dst = out_dir / name
        start = time.perf_counter()
        print(f"running {name} (teacher={teacher}) ...", flush=True)
        try:
            names = _parameter_names(src)
            pm.execute_notebook(str(src), str(dst), parameters={k: v for k, v in params.items() if k in names},
                                cwd=str(notebooks_dir),
                                execution_timeout=timeout, progress_bar=False, kernel_name="python3")
        except pm.PapermillExecutionError as e:
            raise CourseError(f"{name} failed in cell {e.exec_count}: {e.ename}: {e.evalue.splitlines()[0] if e.evalue else ''}"
                              f" (executed copy: {dst})") from None
        result.seconds[name] = round(time.perf_counter() - start, 1)
        result.checks[name] = check_lines(dst)
        print(f"  done in {result.seconds[name]} s: {result.checks[name]}", flush=True)
    return result
