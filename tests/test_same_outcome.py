"""One reply, two ways in: notebook 3 (qa.answer_instruction on one item) and Stage 5 (the factory) must turn the
same teacher reply into the same pair record, or fail it with the same reason."""

from __future__ import annotations

import json

import pytest
from fake_openai import Behaviour, reply, reply_json

from lecture_utils.answer.qa import answer_instruction
from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.records import Instruction, Passage, to_dict
from lecture_utils.scale.factory import run_factory
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.teacher.wire import AnswerError

PASSAGES = [
    Passage("ch1-p001", "village.txt", "Marla keeps the lighthouse at Fenwick and trims its lamp every evening.", 0, 70, 1),
    Passage("ch1-p002", "village.txt", "The baker Tobin sells rye loaves at the harbour market on Tuesdays.", 70, 140, 1),
]
INSTRUCTION = Instruction("i1", "What does Tobin sell at the harbour?", "plot", origin="passage",
                          passage_id="ch1-p002", span="sells rye loaves at the harbour market")


def refusal(body: dict) -> Behaviour:
    """What OpenAI sends when the model declines: no content, a refusal message."""
    return Behaviour("reply", text="I can't help with that.")


@pytest.fixture
def index():
    return FastBM25Index(PASSAGES)


def config(fake) -> TeacherConfig:
    return TeacherConfig(mode="endpoint", base_url=fake.base_url, model="gpt-4o-mini", server_kind="openai",
                         backoff_base_s=0.001, backoff_max_s=0.001, max_attempts=3)


def both_ways(fake, index, tmp_path, script) -> tuple[dict | str, dict | str]:
    """(outcome in notebook 3, outcome in Stage 5): the pair's record, or the failure's reason."""
    fake.default = script
    teacher = Teacher(config(fake))
    try:
        notebook = to_dict(answer_instruction(teacher, INSTRUCTION, index))
    except AnswerError as e:
        notebook = e.reason
    finally:
        teacher.close()
    out = tmp_path / "qa.jsonl"
    run_factory([INSTRUCTION], index, out, teacher=config(fake), progress=False)
    failures = tmp_path / "qa.failures.jsonl"
    if failures.exists() and failures.read_text().strip():
        factory = json.loads(failures.read_text().splitlines()[0])["reason"]
    else:
        factory = json.loads(out.read_text().splitlines()[0])
    return notebook, factory


def test_a_refusal_fails_as_a_refusal_both_ways(fake_openai, index, tmp_path, monkeypatch):
    # the fake server has no refusal field of its own: patch its completion to send content None + refusal
    real = fake_openai.completion

    def declined(body, b):
        completion = real(body, b)
        completion["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": b.text}
        return completion

    monkeypatch.setattr(fake_openai, "completion", declined)
    assert both_ways(fake_openai, index, tmp_path, refusal) == ("refusal", "refusal")


def test_a_malformed_reply_fails_alike_and_a_good_one_after_it_gives_the_same_record(fake_openai, index, tmp_path):
    assert both_ways(fake_openai, index, tmp_path, reply("Tobin sells bread, I think.")) == ("parse error",
                                                                                              "parse error")
    answers = iter([reply("{not json"), reply_json({"answer": "Rye loaves.", "cited": ["ch1-p002"]})] * 2)
    notebook, factory = both_ways(fake_openai, index, tmp_path / "2", lambda body: next(answers))
    assert notebook == factory
    assert (notebook["answer"], notebook["passage_id"], notebook["span"]) == ("Rye loaves.", "ch1-p002",
                                                                             INSTRUCTION.span)


@pytest.mark.parametrize("bad", [reply('{"answer": "Tobin sells rye loaves at the harb', finish_reason="length"),
                                 reply("Tobin sells bread, I think.")], ids=["cut off", "not json"])
def test_a_reply_that_failed_while_recording_fails_for_the_same_reason_on_replay(fake_openai, index, tmp_path, bad):
    """The shipped demo is replayed in class: a pair that failed while it was recorded must fail there with the
    reason it had (a cut-off or malformed reply), not as 'replay miss', which tells the student to re-record."""
    fake_openai.default = bad
    cache = tmp_path / "cache.jsonl"
    recorded = TeacherConfig(**{**config(fake_openai).__dict__, "cache": "record", "cache_path": cache})
    run_factory([INSTRUCTION], index, tmp_path / "rec.jsonl", teacher=recorded, progress=False)
    fake_openai.default = reply_json({"answer": "Rye loaves.", "cited": ["ch1-p002"]})  # a replay must not ask it
    replayed = TeacherConfig(**{**recorded.__dict__, "cache": "replay"})
    run_factory([INSTRUCTION], index, tmp_path / "rep.jsonl", teacher=replayed, progress=False)
    # recorded with one try, replayed with three (as the demo was recorded before seeds were tried): a recorded
    # failure is not asked again with a seed whose reply was never recorded, so neither the replay nor the grader's
    # classroom mode (no live teacher here) stops for want of a live teacher
    once = TeacherConfig(**{**recorded.__dict__, "structured_attempts": 1, "cache_path": tmp_path / "once.jsonl"})
    fake_openai.default = bad
    run_factory([INSTRUCTION], index, tmp_path / "once.jsonl.out", teacher=once, progress=False)
    fake_openai.default = reply_json({"answer": "Rye loaves.", "cited": ["ch1-p002"]})
    for name, mode in (("rep1", "endpoint"), ("class", "classroom")):
        again = TeacherConfig(**{**once.__dict__, "mode": mode, "cache": "replay", "structured_attempts": 3})
        run_factory([INSTRUCTION], index, tmp_path / f"{name}.jsonl", teacher=again, progress=False)
    reasons = [json.loads((tmp_path / f"{name}.failures.jsonl").read_text().splitlines()[0])["reason"]
               for name in ("rec", "rep", "rep1", "class")]
    assert reasons[0] != "replay miss" and reasons[1] == reasons[2] == reasons[3] == reasons[0]


def test_a_refusal_is_not_asked_again_and_an_unreadable_reply_is(fake_openai, index):
    teacher = Teacher(config(fake_openai))
    fake_openai.enqueue(refusal_reply := reply("I can't help with that."))
    fake_openai.default = refusal_reply
    monkey = fake_openai.completion

    def declined(body, b):
        completion = monkey(body, b)
        completion["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": b.text}
        return completion

    fake_openai.completion = declined
    try:
        with pytest.raises(AnswerError, match="refusal"):
            answer_instruction(teacher, INSTRUCTION, index)
    finally:
        fake_openai.completion = monkey
    assert len(fake_openai.chat_requests) == 1  # asking again would not change a refusal
    fake_openai.enqueue(reply("{not json"), reply_json({"answer": "Rye loaves.", "cited": ["ch1-p002"]}))
    assert answer_instruction(teacher, INSTRUCTION, index).answer == "Rye loaves."
    assert [r.body.get("seed") for r in fake_openai.chat_requests[1:]] == [None, 1]
    teacher.close()
