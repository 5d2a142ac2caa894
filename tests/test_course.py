"""The whole course, headless, on the recorded teacher: what CI and an instructor's `run-course` rely on."""

import json
import re
from pathlib import Path

import pytest

from lecture_utils import records
from lecture_utils.instructor.course import NOTEBOOKS, check_lines, run_course

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO.parent / "shared" / "data" / "pg1342.txt"
# What the shipped replay cache yields (see the README's figures): a real dataset, not a token one.
MIN_PAIRS, MIN_CHAPTERS = 120, 50  # exported pairs (refusals left out) and the chapters they cite (the README's figures)


@pytest.mark.slow
def test_run_course_on_replay_executes_every_notebook_and_builds_a_checked_cited_dataset(replayed_course):
    out = replayed_course
    checks = {name: check_lines(out / name) for name in NOTEBOOKS}
    images = 0
    for name in NOTEBOOKS:
        nb = json.loads((out / name).read_text(encoding="utf-8"))
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}"
        assert checks[name]["stage"] == NOTEBOOKS.index(name) + 1
        for cell in nb["cells"]:
            pngs = sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
            said = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
            if "nb.show_figure(" in "".join(cell["source"]) and " skipped: " not in said:  # offline: one line
                assert pngs >= 1, f"{name}: a plot cell shows no picture: {''.join(cell['source'])[:80]}"
            images += pngs
            for o in cell.get("outputs", []):
                table = "".join(o.get("data", {}).get("text/html", ""))
                assert not re.search(r"\.\.\.</td>", table), f"{name}: a table cuts its text with '...'"
    assert images >= 10, f"only {images} pictures across the five notebooks"

    run = out / "run"
    passages = {p.id: p for p in records.read_jsonl(run / "passages.jsonl", records.Passage)}
    dataset = records.read_jsonl(run / "dataset.jsonl", records.QAPair)
    assert dataset and checks["05_repeat_and_scale.ipynb"]["dataset"] == len(dataset)
    for pair in dataset:
        assert pair.instruction.strip() and pair.answer.strip()
        assert pair.not_in_text or (pair.cited and set(pair.cited) <= set(passages))  # a refusal cites nothing
        assert pair.review == "person" or pair.passed, f"{pair.id} went in unchecked and unreviewed"
    answers = [p for p in dataset if not p.not_in_text]
    assert len({passages[c].chapter for p in answers for c in p.cited}) >= MIN_CHAPTERS
    assert len(answers) >= MIN_PAIRS
    # Stage 4 applied the shipped human decisions to every pair
    assert checks["04_human_curation.ipynb"]["reviewed"] == checks["04_human_curation.ipynb"]["pairs"]
    for fmt in ("alpaca.json", "sharegpt.json", "openai_chat.jsonl", "README.md"):
        assert (run / "export" / fmt).exists(), fmt
    card = (run / "export" / "README.md").read_text(encoding="utf-8")
    person = sum(p.review == "person" and not p.not_in_text for p in dataset)  # the card counts what is exported
    assert f"**{person:,} reviewed by a person**" in card
    # the Hugging Face folder: train and test, no cited passage and no instruction in both, a YAML header that parses
    datasets, yaml = pytest.importorskip("datasets"), pytest.importorskip("yaml")
    hf = datasets.load_dataset(str(run / "export" / "hf"))
    assert set(hf) == {"train", "test"} and len(hf["test"]) >= 10
    assert not {c for r in hf["train"] for c in r["cited"]} & {c for r in hf["test"] for c in r["cited"]}
    assert not {u for r in hf["train"] for u in r["units"]} & {u for r in hf["test"] for u in r["units"]}
    asked = {r["messages"][-2]["content"].lower() for r in hf["train"]}
    assert not asked & {r["messages"][-2]["content"].lower() for r in hf["test"]}
    header = yaml.safe_load((run / "export" / "hf" / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert header["license"] and header["configs"][0]["data_files"]


def test_run_course_takes_the_classroom_teacher_and_refuses_an_unknown_one(tmp_path, monkeypatch):
    import papermill

    from lecture_utils.instructor import course

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
