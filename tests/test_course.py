"""The whole course, headless, on the recorded teacher: what CI and an instructor's `run-course` rely on."""

import json
from pathlib import Path

import pytest

from lecture_utils import records
from lecture_utils.course import NOTEBOOKS, run_course

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO.parent / "shared" / "data" / "pg1342.txt"


@pytest.mark.slow
@pytest.mark.skipif(not BOOK.exists(), reason="the shared book is not beside the repository (../shared/data)")
def test_run_course_on_replay_executes_every_notebook_and_builds_a_cited_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_PATH", str(BOOK))
    monkeypatch.delenv("KIT_RUN_DIR", raising=False)
    result = run_course(teacher="replay", out_dir=tmp_path)

    for name in NOTEBOOKS:
        nb = json.loads((tmp_path / name).read_text(encoding="utf-8"))
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}"
        assert result.checks[name]["stage"] == NOTEBOOKS.index(name) + 1

    run = tmp_path / "run"
    passages = {p.id for p in records.read_jsonl(run / "passages.jsonl", records.Passage)}
    dataset = records.read_jsonl(run / "dataset.jsonl", records.QAPair)
    assert dataset and result.checks["05_repeat_and_scale.ipynb"]["dataset"] == len(dataset)
    for pair in dataset:
        assert pair.instruction.strip() and pair.answer.strip()
        assert pair.cited or pair.not_in_text
        assert set(pair.cited) <= passages
    # Stage 4 applied the shipped human decisions, and the dataset holds the accepted and fixed ones
    assert result.checks["04_human_curation.ipynb"]["reviewed"] == result.checks["04_human_curation.ipynb"]["pairs"]
    for fmt in ("alpaca.json", "sharegpt.json", "openai_chat.jsonl", "README.md"):
        assert any(p.name == fmt for p in (run / "export").iterdir()), fmt


def test_run_course_takes_the_classroom_teacher_and_refuses_an_unknown_one(tmp_path, monkeypatch):
    import papermill

    from lecture_utils import course

    with pytest.raises(course.CourseError, match="unknown teacher 'gpt': use one of replay, classroom"):
        run_course(teacher="gpt", out_dir=tmp_path)
    seen = []

    def execute(src, dst, parameters, **kwargs):  # stands in for papermill: note the parameters, write a check line
        seen.append(parameters)
        out = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": 'CHECK {"stage": 0}'}]}]}
        Path(dst).write_text(json.dumps(out), encoding="utf-8")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    stand_ins = tmp_path / "notebooks"  # five notebooks that take the parameters run_course passes
    stand_ins.mkdir()
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
            "source": "TEACHER = None\nRUN_DIR = None\nDECISIONS_FILE = None\n"}
    for name in NOTEBOOKS:
        (stand_ins / name).write_text(json.dumps({"cells": [cell]}), encoding="utf-8")
    run_course(teacher="classroom", out_dir=tmp_path / "out", notebooks_dir=stand_ins)
    assert [p["TEACHER"] for p in seen] == ["classroom"] * len(NOTEBOOKS)
    # the kit's prompts replay, so Stage 4 applies the shipped human decisions, as with the replay teacher
    assert {p["DECISIONS_FILE"] for p in seen} == {str(course.DEMO_DECISIONS)}
