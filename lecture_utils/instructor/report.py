"""What the grading report says about a student's work: the numbers read from a run directory, the prompts the
student changed, and the one-file HTML summary. nbrun.py runs the notebooks and grading.py makes the rows; this
module only reads and writes."""

from __future__ import annotations

import ast
import base64
import html
import io
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

from lecture_utils.ask.diversity import diversity_stats
from lecture_utils.curate.decisions import decisions_that_count, is_judge
from lecture_utils.errors import KitError
from lecture_utils.records import iter_jsonl
from lecture_utils.scale.runs import read_recipe
from lecture_utils.settings import NOTEBOOKS_DIR

# Python 3.11's parser is not safe to run from several threads at once (grading reads notebooks in a pool):
# "SystemError: AST constructor recursion depth mismatch". One parse at a time.
_AST_LOCK = threading.Lock()
STAGE_FILES = ("passages", "instructions", "qa_pairs", "decisions", "dataset")
KIT_NOTEBOOKS = NOTEBOOKS_DIR


def read_records(path: Path) -> list[dict] | None:
    try:
        return list(iter_jsonl(path)) if path.exists() else None
    except (ValueError, OSError):
        return None


def run_dir_metrics(run_dir: Path) -> dict[str, Any]:
    """Counts at each stage, the Stage 4 review (decisions.decisions_that_count decides which decisions count, and
    which were a person's), diversity and grounding, and the prompts and settings the run recorded as changed from
    the kit's (recipe_changed), read from a run directory."""
    data = {name: read_records(run_dir / f"{name}.jsonl") for name in STAGE_FILES}
    m: dict[str, Any] = {f"n_{name}": len(data[name]) if data[name] is not None else None for name in STAGE_FILES}
    if data["decisions"] is not None:
        pairs = [p for p in data["qa_pairs"] or [] if isinstance(p, dict)]
        counted = decisions_that_count(pairs, data["decisions"])
        by_person = counted.counts(people_only=True)
        m["n_decisions"] = len(counted.latest)
        m["reviewed_by_person"] = len(counted.by_person())
        m.update({s: by_person[s] for s in ("accept", "fix", "discard")})
        m["judge_decided"] = sum(is_judge(d.reviewer) for d in counted.latest.values())
        m["stale_decisions"] = counted.stale
        if counted.latest:
            kept = sum(d.status in ("accept", "fix") for d in counted.latest.values())
            m["accepted_share"] = round(kept / len(counted.latest), 3)
    instructions = [r.get("instruction", "") for r in data["instructions"] or [] if isinstance(r, dict)]
    if instructions:  # the same numbers notebook 2 shows (diversity.diversity_stats)
        stats = diversity_stats(instructions)
        m["distinct_verbs"] = stats["distinct_leading_verbs"]
        m["mean_similarity"] = stats["mean_pairwise_rouge_l"] if stats["pairs_scored"] else None
    pairs = [p for p in data["qa_pairs"] or [] if isinstance(p, dict) and not p.get("not_in_text")]
    if pairs:
        known = {p.get("id") for p in data["passages"] or [] if isinstance(p, dict)}
        grounded = 0
        for p in pairs:
            cited = set(p.get("cited") or [])
            retrieved = {r.get("id") if isinstance(r, dict) else r for r in p.get("retrieved") or []}
            grounded += bool(cited) and cited <= retrieved and cited <= known
        m["grounding_rate"] = round(grounded / len(pairs), 3)
    try:  # what the run itself recorded as differing from the kit (prompts.json, settings.json): what Stage 5 ran
        m["recipe_changed"] = " ".join(read_recipe(run_dir).changed)
    except KitError as e:
        m["recipe_changed"] = f"unreadable: {e}"
    return m


# A student's own run --------------------------------------------------------------------------------------------


def _was_executed(path: Path) -> bool:
    """True if a code cell other than the check cell (the kit ships those with outputs) has run."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return False
    return any(c.cell_type == "code" and "check" not in c.get("metadata", {}).get("tags", [])
               and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


def decisions_file(folder: Path | None) -> Path | None:
    """The Stage 4 decisions a student handed in beside their notebooks (decisions.jsonl or .csv), if any."""
    for name in ("decisions.jsonl", "decisions.csv"):
        found = sorted(folder.rglob(name)) if folder else []
        if found:
            return found[0]
    return None


def own_run_dir(folder: Path | None, notebooks: list[Path]) -> Path | None:
    """The student's run directory when they handed in executed notebooks (all of them) and the files they wrote:
    of the folders holding a passages.jsonl, the one with the most of the stage files. None: grade the re-run."""
    if folder is None or not notebooks or not all(_was_executed(p) for p in notebooks):
        return None
    found = {f.parent: sum((f.parent / f"{name}.jsonl").is_file() for name in STAGE_FILES)
             for f in folder.rglob("passages.jsonl")}
    return max(found, key=lambda d: (found[d], -len(d.parts))) if found else None


def outputs_text(path: Path) -> str:
    """All the text a notebook's cells printed or raised, one output per line."""
    try:
        cells = nbformat.read(path, as_version=4).cells
    except Exception:
        return ""
    texts = []
    for cell in cells:
        for out in cell.get("outputs", []) or []:
            text = out.get("text", "")
            texts.append(text if isinstance(text, str) else "".join(text))
            texts.append(out.get("evalue", "") or "")
    return "\n".join(texts)


def reproduced(rerun_status: str, rerun_problem: str, own: dict, again: dict) -> str:
    """'yes' if the re-run ran cleanly and gave the same counts and check lines as the student's own run."""
    if rerun_status != "ok":
        return "no: " + (rerun_problem or rerun_status)
    differ = [f"{k} {own.get(k)} handed in, {again.get(k)} on re-run" for k in sorted(set(own) | set(again))
              if k.startswith(("n_", "check_")) and own.get(k) != again.get(k)]
    return "no: " + "; ".join(differ[:4]) if differ else "yes"


# Prompts changed from the kit's ---------------------------------------------------------------------------------


def _assignments(path: Path) -> dict[str, list[str]]:
    """Every top-level assignment to an UPPER_CASE name outside the parameters cell: name -> [value as AST text]."""
    found: dict[str, list[str]] = {}
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # an unreadable notebook has no prompts to compare; the scan reports it
        return found
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            with _AST_LOCK:
                tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = ast.dump(node.value) if node.value is not None else ""
            elif isinstance(node, ast.AugAssign):
                targets, value = [node.target], f"{type(node.op).__name__}= {ast.dump(node.value)}"
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    found.setdefault(target.id, []).append(value)
    return found


def _is_prompt(name: str, values: list[str]) -> bool:
    """A prompt is a name that says so (..._PROMPT, SYSTEM...) or an UPPER_CASE name given a string."""
    return "PROMPT" in name or "SYSTEM" in name or any(v.startswith(("Constant(value='", 'Constant(value="',
                                                                       "JoinedStr(")) for v in values)


def changed_prompts(notebooks: list[Path], kit_dir: Path = KIT_NOTEBOOKS) -> list[str]:
    """'02:META_PROMPT'-style names of the prompts a student's notebooks assign differently from the kit's own copy
    of the same notebook, or that the kit's copy does not have (compared as code, so spacing does not count)."""
    changed = []
    for path in notebooks:
        kit = kit_dir / path.name
        if not kit.is_file():
            continue
        mine, theirs = _assignments(path), _assignments(kit)
        for name in sorted(mine):
            if _is_prompt(name, mine[name] + theirs.get(name, [])) and mine[name] != theirs.get(name):
                changed.append(f"{path.name[:2]}:{name}")
    return changed


# HTML summary -------------------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _barh(frame: pd.DataFrame, title: str, xlabel: str, share: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.5 + 0.45 * len(frame)))
    frame.astype(float).fillna(0).plot.barh(ax=ax, width=0.8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    if share:
        ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.invert_yaxis()
    src = _png(fig)
    plt.close(fig)
    return src


def _plots(df: pd.DataFrame) -> list[tuple[str, str]]:
    students = df.set_index("student")
    counts = students[[f"n_{s}" for s in STAGE_FILES]].rename(columns=lambda c: c[2:])
    rates = students[["accepted_share", "grounding_rate"]].rename(
        columns={"accepted_share": "accepted in curation", "grounding_rate": "citations check out"})
    return [("Stage counts", _barh(counts, "Records at each stage, per student", "records in the run directory")),
            ("Curation and grounding", _barh(rates, "Curation and grounding, per student (share of pairs)", "share",
                                             share=True))]


def write_html(df: pd.DataFrame, path: str | Path, teacher: str = "") -> Path:
    """A one-file summary (inline CSS and base64 plots) that opens offline."""
    path = Path(path)
    tally = ", ".join(f"{n} {status}" for status, n in df["status"].value_counts().items())
    plots = "".join(f'<figure><img alt="{html.escape(t)}" src="{src}"></figure>' for t, src in _plots(df))
    shown = [c for c in df.columns if c != "check_data"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    body = "".join(
        f'<tr class="{html.escape(str(r["status"]).replace(" ", "-"))}">'
        + "".join(f"<td>{'' if pd.isna(r[c]) else html.escape(str(r[c]))}</td>" for c in shown)
        + "</tr>"
        for _, r in df.iterrows()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Grading report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top; }}
th {{ background: #f2f2f2; }}
tr.ok td:nth-child(2) {{ color: #1a7f37; font-weight: bold; }}
tr:not(.ok) td:nth-child(2) {{ color: #b42318; font-weight: bold; }}
figure {{ display: inline-block; margin: 0 1.5em 1em 0; vertical-align: top; }}
img {{ max-width: 600px; }}
.wide {{ overflow-x: auto; }}
</style></head><body>
<h1>Grading report</h1>
<p>{len(df)} submissions: {html.escape(tally)}; teacher: {html.escape(teacher)};
generated {datetime.now().strftime("%Y-%m-%d %H:%M")}.</p>
<p>graded_from: "submission" when the student handed in executed notebooks and run files (the numbers are theirs,
and reproduced says whether the grader's re-run gave the same), else "re-run". reviewed_by_person, accept, fix and
discard count a person's Stage 4 decisions (the LLM judge's are in judge_decided); prompts_changed names the prompts
that differ from the kit's notebooks; live_teacher names the notebooks whose unrecorded prompts went to a live
teacher in the re-run.</p>
{plots}
<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
