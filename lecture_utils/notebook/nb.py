"""Small conveniences the stage notebooks share: the run directory, showing figures and tables, the check line."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from lecture_utils import settings


def run_dir(path: str | Path) -> Path:
    """The run directory, created if needed; every stage reads and writes its files here.

    KIT_RUN_DIR in the environment wins, and says so: the test suite sets it so it never touches your own runs/demo.
    """
    override = settings.get("KIT_RUN_DIR")
    if override and Path(override).expanduser().resolve() != Path(path).expanduser().resolve():
        print(f"RUN_DIR is {override}, not {path}: KIT_RUN_DIR is set in the environment")
    path = Path(override or path).expanduser().resolve()
    (path / "figures").mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, run: Path, name: str) -> Path:
    """Save a figure as PNG under RUN_DIR/figures (the slides reuse them) and return the path."""
    out = Path(run) / "figures" / f"{name}.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def show_figure(fig, run: Path, name: str) -> None:
    """Show a figure in the notebook and save it under RUN_DIR/figures, in one step."""
    from IPython.display import display

    save_figure(fig, run, name)
    display(fig)


def show_table(data: Any, columns: list[str] | None = None, max_height: int | None = None) -> None:
    """Show a table with every row and the whole of every text, wrapped (pandas would cut texts at 50 characters).

    max_height (pixels) puts a long table in a scrolling box."""
    from IPython.display import HTML, display

    df = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    if columns is not None:
        df = df[columns]
    if not df.index.is_unique:  # two tables stacked with pd.concat: the styler cannot draw repeated row labels
        df = df.reset_index(drop=True)
    with pd.option_context("display.max_colwidth", None, "display.max_rows", None):
        body = (df.style.set_properties(**{"white-space": "pre-wrap", "text-align": "left", "vertical-align": "top"})
                .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
                .format(precision=2).to_html())
    if max_height:
        body = f'<div style="max-height:{int(max_height)}px; overflow-y:auto">{body}</div>'
    display(HTML(body))


def show_text(title: str, text: str) -> None:
    """A long text (a prompt, a passage) shown whole, in a monospace block that keeps its line breaks."""
    from IPython.display import HTML, display

    display(HTML(f"<b>{html.escape(title)}</b><pre style='white-space:pre-wrap'>{html.escape(text)}</pre>"))


# The package default each notebook prompt starts from, where the names differ.
_DEFAULT_NAMES = {"META_PROMPT": "SEED_META_PROMPT"}


def record_prompts(run: Path, stage: int, **texts: str) -> dict:
    """Write the prompt texts this stage ran to RUN_DIR/prompts.json with their hashes and whether they differ from
    the kit's defaults, so a grader sees what a student changed. Returns the file's content."""
    from lecture_utils import prompts
    from lecture_utils.prompts import prompt_sha

    path = Path(run) / "prompts.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for name, text in texts.items():
        default = getattr(prompts, _DEFAULT_NAMES.get(name, name), None)
        saved[name] = {"stage": stage, "sha": prompt_sha(text), "changed": default is not None and text != default,
                       "text": text}
    path.write_text(json.dumps(saved, indent=1, ensure_ascii=False), encoding="utf-8")
    return saved


def record_settings(run: Path, stage: int, defaults: dict[str, Any], **values: Any) -> dict:
    """Write the settings this stage ran with (K, say) to RUN_DIR/settings.json, marking those that differ from
    `defaults`, so Stage 5 and the grader run with what the student chose."""
    path = Path(run) / "settings.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for name, value in values.items():
        saved[name] = {"stage": stage, "value": value, "changed": name in defaults and value != defaults[name]}
    path.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    return saved


def record_usage(run: Path, stage: int, usage) -> dict:
    """Add this stage's teacher usage (calls, tokens, seconds of teacher time) to RUN_DIR/usage.json, whose "seconds"
    is the run's total: what bench/bench_dataset.py divides by the kept pairs."""
    path = Path(run) / "usage.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    saved[str(stage)] = {"calls": usage.calls, "prompt_tokens": usage.prompt_tokens,
                         "completion_tokens": usage.completion_tokens, "seconds": round(usage.seconds, 1),
                         "untimed_calls": usage.untimed}
    stages = [v for k, v in saved.items() if k.isdigit()]
    # a replay of calls recorded before their time was kept cannot say the teacher's time
    saved["seconds"] = None if any(v.get("untimed_calls") for v in stages) else round(sum(v["seconds"] for v in stages), 1)
    path.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    return saved


def teacher_seconds(run: Path) -> float | None:
    """The run's teacher time so far (RUN_DIR/usage.json, see record_usage); None before any stage recorded it, or
    when some calls were replayed from a recording that did not keep their time."""
    path = Path(run) / "usage.json"
    return json.loads(path.read_text(encoding="utf-8")).get("seconds") if path.exists() else None


def check(**counts) -> None:
    """Print the one line a grader reads: `CHECK {json}` with this stage's counts."""
    print("CHECK " + json.dumps(counts, sort_keys=True))
