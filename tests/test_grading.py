"""Grading runs real notebooks headless: tiny fixture submissions of ours, plus the kit's notebooks (slow)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest

from lecture_utils.ask.diversity import diversity_stats
from lecture_utils.curate.decisions import decisions_that_count, is_judge
from lecture_utils.instructor.grading import NOTEBOOKS, GradeError, grade, grade_main
from lecture_utils.instructor.nbrun import scan_notebook
from lecture_utils.instructor.report import changed_prompts, run_dir_metrics
from lecture_utils.records import Decision, QAPair, read_jsonl, write_jsonl

FIXTURES = Path(__file__).parent / "fixtures_grading"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 30  # seconds per notebook: a fixture notebook needs about 2 alone, but three kernels starting at once on 2 cores
# have taken over 12 (a grade of "timeout" instead of what the test checks); the looping student waits this long


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
    assert good["graded_from"] == "re-run" and pd.isna(good["reproduced"])  # no executed notebooks handed in
    assert (good["reviewed_by_person"], good["accept"], good["fix"], good["discard"], good["judge_decided"]) == (4, 1, 1, 2, 0)
    assert good["prompts_changed"] == "" and good["live_teacher"] == ""
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




# --- which decisions count, and which were a person's -----------------------------------------------------------

def test_one_rule_decides_which_decisions_count_and_the_judge_is_never_a_person():
    pairs = [QAPair(id=f"q{i}", instruction_id=f"i{i}", instruction="Ask?", category="c", answer=f"answer {i}")
             for i in (1, 2, 3)]
    made = [
        Decision("q1", "accept", original_answer="answer 1", reviewer="alice"),
        Decision("q1", "discard", reason="off topic", original_answer="answer 1", reviewer="alice"),  # the last counts
        Decision("q2", "accept", original_answer="answer 2", reviewer="alice"),
        Decision("q2", "fix", edited_answer="x", original_answer="an older answer", reviewer="alice"),  # stale: voids q2
        {"pair_id": "q3", "status": "accept", "reviewer": "llm-judge (headless)"},  # a dict, no original_answer
        {"pair_id": "q9", "status": "accept"},  # not one of the pairs
        {"no": "pair id"},
    ]
    counted = decisions_that_count(pairs, made)
    assert {pid: d.status for pid, d in counted.latest.items()} == {"q1": "discard", "q3": "accept"}
    assert (counted.stale, counted.orphans) == (1, 2)
    assert list(counted.by_person()) == ["q1"]
    assert counted.counts(people_only=True) == {"accept": 0, "fix": 0, "discard": 1}
    assert counted.counts() == {"accept": 1, "fix": 0, "discard": 1}
    assert [is_judge(r) for r in ("llm-judge (headless)", "judge:gpt-4o-mini", "Judge", "", "alice",
                                  "file:demo_decisions.jsonl", "judgement")] == [True, True, True] + [False] * 4


def test_the_report_shows_the_diversity_numbers_notebook_2_shows(tmp_path):
    texts = ["Describe the Netherfield ball.", "Describe the ball at Netherfield.", "Why does Lydia elope?",
             "Explain the entail on Longbourn."]
    write_jsonl(tmp_path / "instructions.jsonl", [{"id": f"i{k}", "instruction": t} for k, t in enumerate(texts)])
    stats = diversity_stats(texts)
    metrics = run_dir_metrics(tmp_path)
    assert metrics["distinct_verbs"] == stats["distinct_leading_verbs"] == 3
    assert metrics["mean_similarity"] == stats["mean_pairwise_rouge_l"] > 0
    write_jsonl(tmp_path / "instructions.jsonl", [{"id": "i0", "instruction": texts[0]}])
    assert run_dir_metrics(tmp_path)["mean_similarity"] is None  # one instruction: no pair to compare


def test_the_report_names_what_the_run_recorded_as_changed_from_the_kit(tmp_path):
    from lecture_utils import prompts
    from lecture_utils.notebook import nb

    assert run_dir_metrics(tmp_path)["recipe_changed"] == ""
    nb.record_prompts(tmp_path, stage=3, RAG_PROMPT=prompts.RAG_PROMPT + " Be brief.", RAG_SYSTEM=prompts.RAG_SYSTEM)
    nb.record_settings(tmp_path, 3, {"K": 3}, K=5)
    assert run_dir_metrics(tmp_path)["recipe_changed"] == "RAG_PROMPT K"
    (tmp_path / "settings.json").write_text("{not json", encoding="utf-8")
    assert run_dir_metrics(tmp_path)["recipe_changed"].startswith("unreadable:")


# --- prompts changed from the kit's -------------------------------------------------------------------------------

def edit_stage2_prompt(notebook: Path) -> str:
    """Change the prompt that the Stage 2 prompt cell assigns, as a student would; return its name."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        names = re.findall(r"^([A-Z_]*PROMPT[A-Z_]*)\s*=", cell.source, re.M) if cell.cell_type == "code" else []
        if names and "parameters" not in cell.metadata.get("tags", []):
            cell.source += f'\n{names[0]} = {names[0]} + "\\nAsk about Mr Collins and his garden, too."'
            nbformat.write(nb, notebook)
            return names[0]
    raise AssertionError(f"{notebook.name} has no cell that assigns a ..._PROMPT")


def kit_copy(dest: Path) -> Path:
    real = REPO / "notebooks"
    if not all((real / n).exists() for n in NOTEBOOKS):
        pytest.skip("notebooks/ does not hold the five stage notebooks yet")
    shutil.copytree(real, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return dest


def test_changed_prompts_are_named_and_layout_does_not_count(tmp_path):
    kit = kit_copy(tmp_path / "kit")
    paths = [kit / n for n in NOTEBOOKS]
    assert changed_prompts(paths) == []
    nb = nbformat.read(paths[2], as_version=4)
    for cell in nb.cells:  # re-spacing code changes nothing that is sent
        if cell.cell_type == "code":
            cell.source = cell.source.replace(" = ", "  =  ") + "\n\n# my notes"
    nbformat.write(nb, paths[2])
    assert changed_prompts(paths) == []
    name = edit_stage2_prompt(paths[1])
    assert changed_prompts(paths) == [f"02:{name}"]


# --- the classroom teacher: a live teacher only for what was not recorded -------------------------------------------

def asking_notebook(path: Path) -> None:
    """A one-stage submission whose prompt is not in the replay cache (the student wrote it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('TEACHER = None\nRUN_DIR = "../runs/demo"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("from lecture_utils.teacher import connect\n"
                                  "teacher = connect(TEACHER)\n"
                                  'MY_PROMPT = "Which sister of Elizabeth plays the pianoforte? (a student asks)"\n'
                                  "print(teacher.chat(MY_PROMPT, max_tokens=20, seed=1).text)"),
        nbformat.v4.new_code_cell('import json\nprint("CHECK " + json.dumps({"live": teacher.live_calls}))',
                                  metadata={"tags": ["check"]}),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                 "language_info": {"name": "python"}}), path)


def test_an_unrecorded_prompt_goes_to_the_live_teacher_or_needs_one(tmp_path, monkeypatch, fake_openai):
    if not (REPO / "data" / "replay_cache.jsonl").exists():
        pytest.skip("no data/replay_cache.jsonl")
    subs = tmp_path / "subs"
    asking_notebook(subs / "mary" / NOTEBOOKS[0])
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(tmp_path / "no-models"))  # never the embedded model of this machine
    monkeypatch.setenv("TEACHER_BASE_URL", fake_openai.base_url)
    row = grade(subs, tmp_path / "with" / "report.csv", timeout=TIMEOUT, jobs=1).iloc[0]
    assert row["status"] == "ok", row["reason"]
    assert row["live_teacher"] == "01" and row["prompts_changed"] == "01:MY_PROMPT"
    assert json.loads(row["check_data"]) == {"01": {"live": 1}}
    assert "pianoforte" in fake_openai.chat_requests[0].body["messages"][-1]["content"]

    monkeypatch.delenv("TEACHER_BASE_URL")  # no URL, no key, no embedded model: nobody to ask
    out = tmp_path / "without" / "report.csv"
    row = grade(subs, out, timeout=TIMEOUT, jobs=1).iloc[0]
    assert row["status"] == "needs a live teacher"
    assert row["reason"].startswith("needs a live teacher in 01_gather_knowledge.ipynb cell 2 "
                                    "(prompts changed: 01:MY_PROMPT): the prompt \"Which sister")
    assert "teacher install" in row["reason"]
    assert row["error"].startswith("CallError: needs a live teacher:")  # a TeacherError that keeps its reason
    assert "needs a live teacher" in (out.parent / "report.html").read_text()


# --- the student's own work ---------------------------------------------------------------------------------------

def test_handed_in_work_is_graded_and_the_rerun_only_checks_it(tmp_path):
    first = tmp_path / "first"
    shutil.copytree(FIXTURES / "class" / "good", first / "subs" / "good")
    grade(first / "subs", first / "report.csv", timeout=TIMEOUT, jobs=1)
    done = first / "report_runs" / "good"  # what a student who ran everything in Jupyter would hand in

    subs = tmp_path / "subs"
    for name in ("own", "tampered", "judged", "failed_at_home"):
        shutil.copytree(done / "executed", subs / name, ignore=shutil.ignore_patterns("*.log"))
        shutil.copytree(done / "run", subs / name / "runs" / "demo")
    with (subs / "tampered" / "runs" / "demo" / "passages.jsonl").open("a") as f:
        f.write(json.dumps({"id": "ch09-p001", "text": "A passage the notebooks never wrote."}) + "\n")
    judged = subs / "judged" / "runs" / "demo" / "decisions.jsonl"
    write_jsonl(judged, [{**d, "reviewer": "llm-judge (headless)"} for d in read_jsonl(judged)])
    nb = nbformat.read(subs / "failed_at_home" / NOTEBOOKS[2], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("tags")]
    code[0].outputs.append(nbformat.v4.new_output("error", ename="KeyError", evalue="'ch01-p009'", traceback=[]))
    nbformat.write(nb, subs / "failed_at_home" / NOTEBOOKS[2])

    rows = grade(subs, tmp_path / "report.csv", timeout=TIMEOUT, jobs=2).set_index("student")
    assert set(rows["graded_from"]) == {"submission"}

    own = rows.loc["own"]
    assert own["status"] == "ok" and own["reproduced"] == "yes", own["reason"]
    assert own["n_passages"] == 3 and own["n_dataset"] == 2 and own["decisions_from"] == "decisions.jsonl"
    assert (own["reviewed_by_person"], own["accept"], own["fix"], own["discard"]) == (4, 1, 1, 2)

    tampered = rows.loc["tampered"]  # graded on what was handed in; the re-run says it does not reproduce
    assert tampered["status"] == "ok" and tampered["n_passages"] == 4
    assert tampered["reproduced"] == "no: n_passages 4 handed in, 3 on re-run"

    judged = rows.loc["judged"]
    assert judged["status"] == "not reviewed" and judged["reproduced"] == "yes"
    assert (judged["reviewed_by_person"], judged["judge_decided"]) == (0, 4)
    assert "no Stage 4 decision was made by a person" in judged["reason"]

    failed = rows.loc["failed_at_home"]  # the error in the student's own outputs counts, though the re-run passed
    assert failed["status"] == "error" and failed["reproduced"] == "yes"
    assert (failed["failed_notebook"], failed["failed_cell"], failed["error"]) == (NOTEBOOKS[2], 3, "KeyError: 'ch01-p009'")


# --- a class on the kit's own notebooks (slow) ----------------------------------------------------------------------

LOOP_TIMEOUT = 90  # seconds per notebook: a kit notebook takes 7-15 s alone, under 30 s with three students on 2 cores


def insert_cell(notebook: Path, source: str) -> int:
    """Put a code cell right after the parameters cell; return its 1-based position."""
    nb = nbformat.read(notebook, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    nbformat.write(nb, notebook)
    return at + 1


@pytest.mark.slow
def test_a_class_of_five_on_the_kits_notebooks_without_key_or_model_server(tmp_path, monkeypatch):
    if not (REPO / "data" / "replay_cache.jsonl").exists():
        pytest.skip("no data/replay_cache.jsonl: the classroom teacher has nothing to replay")
    book = next((p for p in (REPO / "data" / "pg1342.txt", REPO.parent / "shared" / "data" / "pg1342.txt")
                 if p.exists()), None)
    if book is None:
        pytest.skip("no copy of pg1342.txt in data/ or ../shared/data/")
    monkeypatch.setenv("BOOK_PATH", str(book))
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(tmp_path / "no-models"))  # no key, no URL (conftest), no model
    subs = tmp_path / "subs"
    review = [{**d, "reviewer": "alice"} for d in read_jsonl(REPO / "data" / "demo_decisions.jsonl")]

    kit = kit_copy(subs / "a_kit")  # the kit's notebooks as they are, and a person's Stage 4 decisions
    write_jsonl(kit / "runs" / "demo" / "decisions.jsonl", review)
    prompt = kit_copy(subs / "b_prompt")  # an edited Stage 2 prompt: the replay cache cannot answer it
    name = edit_stage2_prompt(prompt / NOTEBOOKS[1])
    write_jsonl(prompt / "runs" / "demo" / "decisions.jsonl", review)
    kit_copy(subs / "c_unreviewed")  # nobody reviewed: Stage 4 takes the LLM judge's suggestions
    crash_cell = insert_cell(kit_copy(subs / "d_crash") / NOTEBOOKS[0], 'raise RuntimeError("my bug")')
    loop_cell = insert_cell(kit_copy(subs / "e_loop") / NOTEBOOKS[0], "while True:\n    pass")

    out = tmp_path / "grades" / "report.csv"
    assert grade_main([str(subs), "--out", str(out), "--timeout", str(LOOP_TIMEOUT), "--jobs", "3"]) == 0
    rows = pd.read_csv(out).set_index("student")
    assert rows.loc["a_kit", "status"] == "ok", f"the unchanged kit does not grade clean: {rows.loc['a_kit', 'reason']}"
    assert list(rows["status"]) == ["ok", "needs a live teacher", "not reviewed", "error", "timeout"]

    kit = rows.loc["a_kit"]
    assert kit["notebooks_ran"] == "01 02 03 04 05" and kit["graded_from"] == "re-run"
    assert kit["n_passages"] > 0 and kit["n_instructions"] > 0 and kit["n_qa_pairs"] > 0 and kit["n_dataset"] > 0
    assert 0 <= kit["grounding_rate"] <= 1
    assert kit["reviewed_by_person"] == kit["n_qa_pairs"] == kit["accept"] + kit["fix"] + kit["discard"]
    assert pd.isna(kit["prompts_changed"]) and pd.isna(kit["live_teacher"])  # everything replayed
    assert all(kit[f"check_{n[:2]}"] == "pass" for n in NOTEBOOKS)

    prompt = rows.loc["b_prompt"]
    assert prompt["prompts_changed"] == f"02:{name}" and prompt["notebooks_ran"] == "01"
    assert prompt["reason"].startswith("needs a live teacher in 02_seed_taxonomy.ipynb")
    assert f"(prompts changed: 02:{name}): " in prompt["reason"]

    unreviewed = rows.loc["c_unreviewed"]
    assert unreviewed["notebooks_ran"] == "01 02 03 04 05" and unreviewed["decisions_from"] == "judge"
    assert unreviewed["reviewed_by_person"] == 0 and unreviewed["judge_decided"] > 0

    crash = rows.loc["d_crash"]
    assert (crash["failed_notebook"], crash["failed_cell"]) == (NOTEBOOKS[0], crash_cell)
    assert crash["error"] == "RuntimeError: my bug"

    loop = rows.loc["e_loop"]
    assert (loop["failed_notebook"], loop["failed_cell"]) == (NOTEBOOKS[0], loop_cell)
    assert "infinite loop" in loop["reason"]
    assert kernels_under(tmp_path) == []
    page = (out.parent / "report.html").read_text()
    assert all(s in page for s in ("needs a live teacher", "not reviewed", f"02:{name}"))
