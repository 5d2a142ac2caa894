"""Grading runs real notebooks headless: tiny fixture submissions of ours, plus the kit's notebooks (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest

from lecture_utils.grading import NOTEBOOKS, GradeError, grade, grade_main, scan_notebook
from lecture_utils.records import Decision, read_jsonl, write_jsonl

FIXTURES = Path(__file__).parent / "fixtures_grading"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 12  # seconds per notebook; each fixture notebook needs about 2


def fake_key() -> str:
    return "sk-" + "x" * 40  # assembled here so no key-shaped string is ever committed


def kernels_under(folder: Path) -> list[psutil.Process]:
    """Processes (kernels, papermill) still working inside `folder`: a killed submission must leave none."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd.startswith(str(folder)):
            found.append(proc)
    return found


def test_good_broken_and_looping_submissions_get_three_correct_rows(tmp_path):
    out = tmp_path / "grades" / "report.csv"
    df = grade(FIXTURES / "class", out, teacher="replay", timeout=TIMEOUT, jobs=3)

    assert list(df["student"]) == ["broken", "good", "looping"]
    rows = df.set_index("student")

    good = rows.loc["good"]
    assert good["status"] == "ok" and not good["reason"]
    assert good["notebooks_ran"] == "01 02 03 04 05"
    assert [good[f"n_{s}"] for s in ("passages", "instructions", "qa_pairs", "decisions", "dataset")] == [3, 4, 4, 4, 2]
    assert good["accepted_share"] == 0.5  # q002 was accepted, then discarded: the last decision counts
    assert good["distinct_verbs"] == 3  # describe, explain, compare
    assert good["grounding_rate"] == 0.75  # one pair cites a passage that does not exist
    assert all(good[f"check_{n[:2]}"] == "pass" for n in NOTEBOOKS)
    assert json.loads(good["check_data"])["05"] == {"stage": 5, "dataset": 2}
    assert good["decisions_from"] == "judge"  # nothing handed in: Stage 4 is told to take its judge's suggestions
    if not pd.isna(good["mean_similarity"]):
        assert 0 < good["mean_similarity"] < 1

    broken = rows.loc["broken"]
    assert broken["status"] == "syntax_error"
    assert broken["failed_notebook"] == "02_seed_taxonomy.ipynb" and broken["failed_cell"] == 3
    assert broken["error"].startswith("SyntaxError")
    assert broken["notebooks_ran"] == "01" and broken["n_passages"] == 3
    assert broken["check_01"] == "pass" and broken["check_02"] == "not run"

    looping = rows.loc["looping"]
    assert looping["status"] == "timeout"
    assert looping["failed_notebook"] == "01_gather_knowledge.ipynb" and looping["failed_cell"] == 3
    assert "infinite loop" in looping["reason"]
    assert kernels_under(tmp_path) == []  # the kernel stuck in `while True` was killed with its process group

    # The CSV on disk is the same table, and the HTML summary opens offline with its plots inline.
    on_disk = pd.read_csv(out)
    assert list(on_disk["status"]) == ["syntax_error", "ok", "timeout"]
    page = (out.parent / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert "http://" not in page and "https://" not in page
    assert "syntax error in 02_seed_taxonomy.ipynb cell 3" in page


def test_secret_invalid_json_deleted_cell_and_failed_check_are_reported_not_run(tmp_path):
    subs = tmp_path / "subs"
    good = FIXTURES / "class" / "good"

    leaky = subs / "leaky"
    shutil.copytree(good, leaky)
    nb = nbformat.read(leaky / NOTEBOOKS[1], as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(f'OPENAI_API_KEY = "{fake_key()}"'))
    nbformat.write(nb, leaky / NOTEBOOKS[1])

    shutil.copy(FIXTURES / "invalid_json.ipynb", subs / "truncated.ipynb")  # a single notebook as a submission
    shutil.copy(good / NOTEBOOKS[0], subs / "solo.ipynb")

    deleted = subs / "deleted"
    shutil.copytree(good, deleted)
    nb = nbformat.read(deleted / NOTEBOOKS[2], as_version=4)
    nb.cells = [c for c in nb.cells if "check" not in c.metadata.get("tags", [])]
    nbformat.write(nb, deleted / NOTEBOOKS[2])

    wrong = subs / "wrong"
    wrong.mkdir()
    nb = nbformat.read(good / NOTEBOOKS[0], as_version=4)
    nb.cells[-1].source = nb.cells[-1].source.replace("== 3", "== 30")
    nbformat.write(nb, wrong / NOTEBOOKS[0])

    handed_in = subs / "handed_in"  # the student's own Stage 4 clicks, handed in beside the notebooks
    shutil.copytree(good, handed_in)
    write_jsonl(handed_in / "runs" / "demo" / "decisions.jsonl",
                [Decision(pid, status, reason="" if status == "accept" else "off topic", reviewer="alice")
                 for pid, status in [("q001", "discard"), ("q002", "accept"), ("q003", "accept"), ("q004", "discard")]])

    out = tmp_path / "out" / "grades.csv"
    assert grade_main([str(subs), "--out", str(out), "--timeout", str(TIMEOUT), "--jobs", "3"]) == 0
    rows = pd.read_csv(out).set_index("student")

    assert rows.loc["leaky", "status"] == "secret"
    assert rows.loc["leaky", "reason"].startswith("secret found in cell 3 of 02_seed_taxonomy.ipynb")
    assert rows.loc["leaky", "notebooks_ran"] == "01"
    assert not (out.parent / "grades_runs" / "leaky" / "executed" / NOTEBOOKS[1]).exists()
    for f in out.parent.rglob("*"):
        if f.is_file():
            assert "x" * 40 not in f.read_text(errors="replace"), f"the secret leaked into {f}"

    assert rows.loc["truncated", "status"] == "invalid_json"
    assert "invalid notebook JSON in truncated.ipynb" in rows.loc["truncated", "reason"]
    assert pd.isna(rows.loc["truncated", "notebooks_ran"])

    assert rows.loc["solo", "status"] == "ok" and rows.loc["solo", "n_passages"] == 3

    assert rows.loc["deleted", "status"] == "deleted_cell"
    assert "03_grounded_qa.ipynb has no code cell tagged 'check'" in rows.loc["deleted", "reason"]
    assert rows.loc["deleted", "notebooks_ran"] == "01 02"

    assert rows.loc["handed_in", "status"] == "ok" and rows.loc["handed_in", "decisions_from"] == "decisions.jsonl"
    replayed = read_jsonl(out.parent / "grades_runs" / "handed_in" / "run" / "decisions.jsonl")
    assert {d["reviewer"] for d in replayed} == {"alice"} and rows.loc["handed_in", "accepted_share"] == 0.5

    assert rows.loc["wrong", "status"] == "check_failed"
    assert rows.loc["wrong", "check_01"].startswith("fail: AssertionError: expected three passages")


@pytest.mark.parametrize(
    "source",
    [
        'client = OpenAI(api_key="{key}")',
        "OPENAI_API_KEY = '{key}'",
        'os.environ["OPENAI_API_KEY"] = "{key}"',
        "api_key = 'abcdefghijklmnopqrstuvwxyz012345'",
        "# my key: sk-proj-" + "y" * 30,
    ],
)
def test_scan_finds_pasted_keys_and_names_the_cell(tmp_path, source):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("TEACHER = 'openai'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source.format(key=fake_key())),
        nbformat.v4.new_code_cell("print('CHECK {}')", metadata={"tags": ["check"]}),
    ])
    nbformat.write(nb, tmp_path / "n.ipynb")
    _, kind, message = scan_notebook(tmp_path / "n.ipynb")
    assert kind == "secret" and "cell 2" in message
    assert "x" * 10 not in message and "y" * 10 not in message


@pytest.mark.parametrize(
    "source",
    ['client = OpenAI(api_key=os.environ["TEACHER_API_KEY"])', 'OpenAI(api_key="sk-no-key-required")',
     "tokens = tokenize(text)"],
)
def test_scan_leaves_keys_from_the_environment_alone(tmp_path, source):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("TEACHER = 'openai'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source),
        nbformat.v4.new_code_cell("print('CHECK {}')", metadata={"tags": ["check"]}),
    ])
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert scan_notebook(tmp_path / "n.ipynb")[1] is None


def test_bad_arguments_get_one_line_errors(tmp_path):
    with pytest.raises(GradeError, match="is not a folder") as e:
        grade(tmp_path / "nope", tmp_path / "r.csv")
    assert "\n" not in str(e.value)
    with pytest.raises(GradeError, match="no student folders"):
        grade(tmp_path, tmp_path / "r.csv")
    (tmp_path / "alice").mkdir()
    with pytest.raises(GradeError, match="unknown teacher"):
        grade(tmp_path, tmp_path / "r.csv", teacher="gpt")


@pytest.mark.slow
def test_the_kits_own_notebooks_grade_clean_with_the_replay_teacher(tmp_path, monkeypatch):
    real = REPO / "notebooks"
    if not all((real / n).exists() for n in NOTEBOOKS):
        pytest.skip("notebooks/ does not hold the five stage notebooks yet")
    if not (REPO / "data" / "replay_cache.jsonl").exists():
        pytest.skip("no data/replay_cache.jsonl: the replay teacher has nothing to replay")
    book = next((p for p in (REPO / "data" / "pg1342.txt", REPO.parent / "shared" / "data" / "pg1342.txt")
                 if p.exists()), None)
    if book is None:
        pytest.skip("no copy of pg1342.txt in data/ or ../shared/data/")
    monkeypatch.setenv("BOOK_PATH", str(book))
    shutil.copytree(real, tmp_path / "subs" / "kit", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    df = grade(tmp_path / "subs", tmp_path / "report.csv", teacher="replay", timeout=600, jobs=1)
    row = df.iloc[0]
    assert row["status"] == "ok", row["reason"]
    assert row["notebooks_ran"] == "01 02 03 04 05"
    assert row["n_passages"] > 0 and row["n_instructions"] > 0 and row["n_qa_pairs"] > 0
    assert 0 <= row["grounding_rate"] <= 1
