"""Stage 5 grows the pool again from Stage 2's Tasks (the lecture's loop): new passages, the run's own prompts."""

from __future__ import annotations

import json

from fake_openai import reply_json
from test_tasks_by_type import passages, teacher_for

from lecture_utils.notebook import nb
from lecture_utils.records import Instruction, write_jsonl
from lecture_utils.scale import grow

MARK = "Write it for a reader who has just finished the chapter."


def test_grow_writes_tasks_on_unused_passages_with_the_runs_prompts_and_resumes(fake_openai, tmp_path):
    book = passages()[:2]  # two chapters of a made-up novel; Stage 2 used the second
    write_jsonl(tmp_path / "passages.jsonl", book)
    write_jsonl(tmp_path / "instructions.jsonl", [Instruction(
        "t1", "Why do the fishermen agree to mend the harbour wall?", "explain why", origin="task",
        passage_id="ch02-p001")])
    edited = grow.grounded.WRITE.prompt + "\n" + MARK
    nb.record_prompts(tmp_path, stage=2, TASK_PROMPT=edited)
    nb.record_settings(tmp_path, 2, {}, TAXONOMY="novel")
    fake_openai.enqueue(
        reply_json({"evidence": ["Penhale sent him oil for nothing"]}),
        reply_json({"instruction": "Why does Mr. Penhale send Captain Marlow oil for nothing?",
                    "answer": "Penhale gives Marlow the oil free because Marlow kept the lamp lit for three nights "
                              "during the storm."}),
        reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}))
    teacher = teacher_for(fake_openai)
    new = grow.grow(teacher, tmp_path, book, 2, title="The Lighthouse")
    assert [t.passage_id for t in new] == ["ch01-p001"]  # the one passage Stage 2 had not used
    assert new[0].origin == "task" and new[0].checks["faithful"] == "YES"
    sent = [r.body["messages"][-1]["content"] for r in fake_openai.chat_requests]
    assert sum(MARK in s for s in sent) == 1  # the student's task prompt, read back from prompts.json
    asked = len(fake_openai.chat_requests)
    assert [t.id for t in grow.grow(teacher, tmp_path, book, 2, title="The Lighthouse")] == [new[0].id]
    assert len(fake_openai.chat_requests) == asked  # resumed: nothing asked twice
    assert grow.used_passages(tmp_path) == {"ch02-p001"}
    teacher.close()


def test_a_grown_task_that_repeats_an_instruction_of_the_pool_is_left_out(fake_openai, tmp_path):
    book = passages()[:2]
    same = "Why does Mr. Penhale send Captain Marlow oil for nothing?"
    write_jsonl(tmp_path / "instructions.jsonl", [Instruction("s1", same, "explain why", passage_id="ch02-p001")])
    fake_openai.enqueue(
        reply_json({"evidence": ["Penhale sent him oil for nothing"]}),
        reply_json({"instruction": same, "answer": "Penhale gives Marlow the oil free because Marlow kept the lamp "
                                                   "lit for three nights during the storm."}),
        reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}))
    teacher = teacher_for(fake_openai)
    assert grow.grow(teacher, tmp_path, book, 1, title="The Lighthouse") == []
    kept = [json.loads(x) for x in (tmp_path / grow.GROWN).read_text().splitlines()]
    assert len(kept) == 1  # written and checked, then left out as a repeat of the pool
    teacher.close()
