"""`evaluate`: a model answers the held-out questions and is scored against the references (fake server)."""

import json

import pytest
from fake_openai import Behaviour, reply

from lecture_utils.records import Passage, QAPair, write_jsonl
from lecture_utils.scale import evaluate as ev
from lecture_utils.scale import hub
from lecture_utils.teacher.client import Teacher, TeacherConfig

LAMPS = {c: f"The keeper of the north light trims lamp number {c} every evening with a brass {tool} before the storm."
         for c, tool in zip(range(1, 11), "knife scissors file hook comb brush rasp tongs pick awl".split())}


def run_dir(tmp_path):
    passages = [Passage(f"ch{c:02d}-p001", "lamps.txt", text, 0, len(text), chapter=c) for c, text in LAMPS.items()]
    tools = "knife scissors file hook comb brush rasp tongs pick awl".split()
    pairs = [QAPair(id=f"qa-{c}", instruction_id=f"i{c}", instruction=f"What does the keeper trim lamp number {c} with?",
                    category="recall a fact" if c % 2 else "explain why", cited=[f"ch{c:02d}-p001"], teacher="t",
                    answer=f"The keeper trims lamp number {c} with a brass {tools[c - 1]}.",
                    checks={"answer": f"a brass {tools[c - 1]}"}, review="checks") for c in LAMPS]
    write_jsonl(tmp_path / "passages.jsonl", passages)
    hub.write_hf(pairs, passages, tmp_path / "export" / "hf", test_size=0.5, seed=0, source="Lamps (test)")
    return tmp_path, passages


def teacher_for(fake):
    return Teacher(TeacherConfig(mode="endpoint", base_url=fake.base_url, model="fake-model", server_kind="openai",
                                 cache="off"))


def answers_from_the_reference(body):
    """A model that knows the book: it answers with the brass tool its passage names, and its judge says YES."""
    if body.get("response_format"):
        return reply(json.dumps({"verdict": "YES"}))
    question = body["messages"][-1]["content"]
    number = int(question.rsplit("number ", 1)[1].split()[0])
    tool = LAMPS[number].split("brass ")[1].split()[0]
    return reply(f"Lamp number {number} is trimmed with a brass {tool}.")


def test_a_model_that_answers_nonsense_scores_near_zero(fake_openai, tmp_path):
    run, passages = run_dir(tmp_path)
    fake_openai.default = reply("Purple whales negotiate tariffs on the moon; bananas vote twice.")
    rows = ev.test_split(run)
    with teacher_for(fake_openai) as t:
        records = ev.evaluate(t, rows, passages, run / "eval" / "nonsense.jsonl", mode="closed", judge=t)
    s = ev.summary(records)
    assert s["n"] == len(rows) >= 4 and s["accuracy"] == 0.0 and s["holds_answer"] == 0.0 and s["supported"] == 0.0


def test_a_model_that_knows_the_answers_scores_high_and_open_book_shows_it_the_passages(fake_openai, tmp_path):
    run, passages = run_dir(tmp_path)
    fake_openai.default = answers_from_the_reference
    rows = ev.test_split(run)
    with teacher_for(fake_openai) as t:
        records = ev.evaluate(t, rows, passages, run / "eval" / "good.jsonl", mode="open", title="Lamps", judge=t)
    s = ev.summary(records)
    assert s["accuracy"] == 1.0 and s["supported"] == 1.0 and s["refusals"] == 0.0
    assert set(s["by_task_type"]) <= {"recall a fact", "explain why"}
    asked = [r.body for r in fake_openai.chat_requests if not r.body.get("response_format")]
    assert all("Passages from Lamps" in b["messages"][-1]["content"] for b in asked)
    assert all(b["messages"][0]["content"].startswith("You are an expert on Lamps") for b in asked)


def test_a_wrong_tool_or_a_refusal_is_not_correct_even_when_the_judge_says_yes(fake_openai, tmp_path):
    run, passages = run_dir(tmp_path)
    rows = ev.test_split(run)
    row = rows[0]
    wrong = row["messages"][-1]["content"].rsplit(" ", 1)[0] + " spoon."
    assert not ev.score(wrong, row, passages, "YES")["correct"]  # the words Stage 2 expected are missing
    assert ev.score("The passages do not say.", row, passages, "YES")["refusal"]
    assert ev.score(row["messages"][-1]["content"], row, passages, "YES")["correct"]
    other = ev.score(row["messages"][-1]["content"] + " Captain Harrow helped.", row, passages, "YES")
    assert other["other_names"] == "Captain Harrow" and not other["correct"]  # a fluent answer naming someone else
    number = int(row["messages"][1]["content"].rsplit("number ", 1)[1].split()[0])
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"][number - 1]
    spelled = row["messages"][-1]["content"].replace(f"number {number}", f"number {words}")
    assert ev.score(spelled, row, passages, None)["holds_answer"]  # numbers compared as numbers
    assert not ev.score(row["messages"][-1]["content"], row, passages, "NO")["correct"]


def test_a_rerun_resumes_and_the_command_prints_its_summary_as_the_last_line(fake_openai, tmp_path, capsys,
                                                                            monkeypatch):
    run, _ = run_dir(tmp_path)
    fake_openai.default = answers_from_the_reference
    monkeypatch.setenv("TEACHER_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("TEACHER_MODEL", "fake-model")
    monkeypatch.setenv("TEACHER_CACHE", "off")
    from lecture_utils.__main__ import main

    assert main(["evaluate", str(run), "--closed-book", "--limit", "3"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["n"] == 3 and last["accuracy"] == 1.0 and last["mode"] == "closed"
    assert (run / "eval" / "fake-model-closed.csv").exists() and (run / "eval" / "fake-model-closed.png").exists()
    sent = len(fake_openai.chat_requests)
    assert main(["evaluate", str(run), "--closed-book", "--limit", "3"]) == 0
    assert len(fake_openai.chat_requests) == sent  # nothing asked twice


def test_no_test_split_is_a_clear_error(tmp_path):
    with pytest.raises(ev.EvalError, match="run notebook 5"):
        ev.test_split(tmp_path)
    with pytest.raises(ev.EvalError, match="not a run directory"):
        ev.test_split(tmp_path / "runs" / "typo")


def test_a_behaviour_can_be_scripted_for_a_refusing_model(fake_openai, tmp_path):
    run, passages = run_dir(tmp_path)
    fake_openai.default = lambda body: (reply('{"verdict": "NO"}') if body.get("response_format")
                                        else Behaviour("reply", text="I don't know."))
    with teacher_for(fake_openai) as t:
        s = ev.summary(ev.evaluate(t, ev.test_split(run), passages, run / "eval" / "shy.jsonl", judge=t))
    assert s["refusals"] == 1.0 and s["accuracy"] == 0.0 and s["judge_yes"] == 0.0


def test_when_no_question_is_answered_the_command_says_so_in_one_line(fake_openai, tmp_path, capsys, monkeypatch):
    from fake_openai import error

    run, _ = run_dir(tmp_path)
    fake_openai.default = error(400, "this model cannot take that request")  # fails each item, not the run
    monkeypatch.setenv("TEACHER_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("TEACHER_MODEL", "fake-model")
    monkeypatch.setenv("TEACHER_CACHE", "off")
    from lecture_utils.__main__ import main

    assert main(["evaluate", str(run), "--limit", "2", "--no-judge"]) == 2
    err = capsys.readouterr().err
    assert "no question of the test split was answered" in err and "teacher check" in err


def test_a_full_name_is_the_same_person_and_another_name_is_not():
    passage = Passage("ch46-p020", "novel.txt", "Elizabeth felt how improbable it was that they should meet again.", 0,
                      66, chapter=46)
    row = {"messages": [{"role": "user", "content": "Who felt how improbable it was that they should meet again?"},
                        {"role": "assistant", "content": "Elizabeth felt how improbable it was."}],
           "checks": json.dumps({"answer": "Elizabeth"})}
    full = ev.score("Elizabeth Bennet felt how improbable it was.", row, [passage], "YES")
    assert full["other_names"] == "" and full["correct"]  # "Bennet" completes the name the book gives
    wrong = ev.score("Elizabeth and Charlotte Lucas felt it.", row, [passage], "YES")
    assert "Charlotte" in wrong["other_names"] and not wrong["correct"]  # someone else is named
