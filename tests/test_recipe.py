"""What the student edits is what runs at scale: Stage 5 takes the prompts and K a run's notebooks recorded."""

from __future__ import annotations

import json

from fake_openai import reply_json

from lecture_utils import prompts
from lecture_utils.notebook import nb
from lecture_utils.records import Instruction, Passage, write_jsonl
from lecture_utils.scale.factory_cli import factory_main
from lecture_utils.scale.runs import read_recipe

TEXTS = ["The mill on the river ground corn for the whole valley until the dam broke in the spring flood.",
         "After the flood the miller's daughter rebuilt the dam with stones carried from the old quarry.",
         "The quarry lay two miles north of the mill, and its stones were grey and very hard."]


def make_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "passages.jsonl", [Passage(f"ch0{i + 1}-p001", "b.txt", t, 0, len(t), chapter=i + 1)
                                         for i, t in enumerate(TEXTS)])
    write_jsonl(run / "instructions.jsonl", [
        Instruction("q1", "Who rebuilt the dam after the flood?", "recall a fact", passage_id="ch02-p001",
                    span="the miller's daughter rebuilt the dam"),
        Instruction("q2", "Where did the stones for the dam come from?", "recall a fact")])
    return run


def answers(fake, n):
    fake.enqueue(*[reply_json({"answer": "The miller's daughter did.", "cited": []}) for _ in range(n)])


def test_factory_sends_the_prompt_and_k_the_run_recorded(fake_openai, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHER_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("TEACHER_MODEL", "fake-model")
    run = make_run(tmp_path)
    edited = prompts.RAG_PROMPT.replace("Answer the instruction using ONLY", "As a careful archivist, answer using ONLY")
    nb.record_prompts(run, stage=3, RAG_PROMPT=edited, RAG_SYSTEM=prompts.RAG_SYSTEM)
    nb.record_settings(run, 3, {"K": 3}, K=1)
    assert read_recipe(run).changed == ["RAG_PROMPT", "K"]

    answers(fake_openai, 2)
    assert factory_main([str(run), "--teacher", "endpoint", "--no-progress", "--concurrency", "1"]) == 0
    sent = [r.body["messages"][-1]["content"] for r in fake_openai.chat_requests if "Passages" in str(r.body)]
    assert len(sent) == 2 and all("As a careful archivist" in s for s in sent)
    assert all(s.count("\n[ch0") == 1 for s in sent)  # K=1: one passage each
    assert "RAG_PROMPT, K differ from the kit's defaults" in capsys.readouterr().err

    # a run without a recipe uses the kit's prompt and K
    (run / "prompts.json").unlink()
    (run / "settings.json").unlink()
    (run / "qa_pairs.jsonl").unlink()
    answers(fake_openai, 2)
    factory_main([str(run), "--teacher", "endpoint", "--no-progress", "--concurrency", "1"])
    sent = [r.body["messages"][-1]["content"] for r in fake_openai.chat_requests if "Passages" in str(r.body)][2:]
    assert len(sent) == 2 and all("Answer the instruction using ONLY" in s for s in sent)
    assert max(s.count("\n[ch0") for s in sent) > 1  # K=3 again


def test_a_broken_recipe_file_names_itself(tmp_path):
    run = make_run(tmp_path)
    (run / "prompts.json").write_text("{not json", encoding="utf-8")
    try:
        read_recipe(run)
    except Exception as e:  # FactoryError
        assert "prompts.json is not valid JSON" in str(e) and "delete it" in str(e)
    else:
        raise AssertionError("a broken prompts.json must be an error")
    assert json.loads((run / "passages.jsonl").read_text().splitlines()[0])["id"] == "ch01-p001"


def test_the_command_prices_the_model_as_told_and_stops_at_the_cap_then_resumes(fake_openai, tmp_path, monkeypatch,
                                                                                capsys):
    from lecture_utils.__main__ import main

    monkeypatch.setenv("TEACHER_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("TEACHER_MODEL", "my-own-model")  # not in the kit's price table
    run = make_run(tmp_path)
    extra = [str(tmp_path / "run"), "--teacher", "endpoint", "--no-progress", "--concurrency", "1"]
    assert main(["factory", *extra, "--estimate"]) == 0
    assert "cost unknown: no price for my-own-model" in capsys.readouterr().err  # unknown, not $0.00
    assert main(["factory", *extra, "--max-cost", "1"]) == 2
    assert "--price-in and --price-out" in capsys.readouterr().err
    # each request: about 300 prompt tokens + 200 max at $2000 per million, ~$1 at worst: a $0.50 cap sends nothing
    assert main(["factory", *extra, "--max-cost", "0.5", "--price-in", "2000", "--price-out", "2000"]) == 2
    err = capsys.readouterr().err
    assert "spend cap reached: $0.0000 spent of $0.5000" in err and "raise --max-cost" in err
    assert not (run / "qa_pairs.jsonl").exists() or not (run / "qa_pairs.jsonl").read_text().strip()
    answers(fake_openai, 2)
    assert main(["factory", *extra, "--max-cost", "5", "--price-in", "2000", "--price-out", "2000"]) == 0
    ids = [json.loads(x)["instruction_id"] for x in (run / "qa_pairs.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["q1", "q2"]
    assert main(["factory", *extra, "--batch", "--max-cost", "5"]) == 2
