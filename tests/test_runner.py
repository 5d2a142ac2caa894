"""The one loop over many items (teacher/task.run_many) and the Task's own errors."""

from __future__ import annotations

import json
import threading
import time

import pytest

from lecture_utils.teacher.task import Task, TaskError, run_many
from lecture_utils.teacher.wire import CallError


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_a_failure_every_item_shares_stops_a_concurrent_run_without_starting_the_rest(tmp_path):
    started = []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        if i == 0:
            raise CallError("the key was rejected (HTTP 401): set OPENAI_API_KEY", "HTTP 401", fatal=True)
        time.sleep(0.05)
        return [{"job": str(i)}], []

    with pytest.raises(CallError, match="HTTP 401"):
        run_many(list(range(40)), str, work, tmp_path / "out.jsonl", tmp_path / "drops.jsonl", concurrency=4)
    assert len(started) < 40  # the queued items were cancelled, not worked on
    again = run_many(list(range(40)), str, lambda i: ([{"job": str(i)}], []), tmp_path / "out.jsonl",
                     tmp_path / "drops.jsonl", concurrency=4)
    assert again.asked + len(lines(tmp_path / "out.jsonl")) - again.kept == 40  # the rest is done by the next run
    assert sorted(r["job"] for r in lines(tmp_path / "out.jsonl")) == sorted(str(i) for i in range(40))


def test_a_failed_item_is_kept_with_its_reason_and_asked_again_only_when_told(tmp_path):
    calls = []

    def flaky(i):
        calls.append(i)
        if i == 1 and calls.count(1) == 1:
            raise CallError("no reply within 60s", "timeout")
        return [{"job": str(i)}], []

    out, drops = tmp_path / "out.jsonl", tmp_path / "drops.jsonl"
    first = run_many([0, 1, 2], str, flaky, out, drops)
    assert (first.kept, first.failed) == (2, 1)
    assert lines(drops) == [{"job": "1", "reason": "timeout: no reply within 60s", "failed": True}]
    assert run_many([0, 1, 2], str, flaky, out, drops).asked == 0  # a resume skips it, like the factory
    retried = run_many([0, 1, 2], str, flaky, out, drops, retry_failed=True)
    assert (retried.asked, retried.kept) == (1, 1) and calls == [0, 1, 2, 1]


def test_a_prompt_with_a_stray_brace_or_a_misspelt_placeholder_says_what_it_can_use():
    task = Task("summary", "Summarise {passage} for {title}.", None)
    with pytest.raises(TaskError, match=r"unknown placeholder 'titel'.*\{passage\}, \{title\}") as e:
        Task("summary", "Summarise {passage} for {titel}.", None).render(passage="p", title="t")
    assert e.value.reason == "bad prompt"
    with pytest.raises(TaskError, match=r"stray brace.*literal brace as \{\{ or \}\}"):
        Task("json", "Reply with the answer } and nothing else: {passage}", None).render(passage="p")
    with pytest.raises(TaskError, match=r"unknown placeholder '\"answer\"'.*literal brace"):
        Task("json", 'Reply with {"answer": ...} for {passage}', None).render(passage="p")
    assert task.render(passage="p", title="t") == "Summarise p for t."


def test_send_takes_a_system_prompt_and_tries_for_this_call(fake_openai):
    from fake_openai import reply_json

    from lecture_utils.teacher.client import Teacher, TeacherConfig

    fake_openai.enqueue(reply_json({"verdict": "YES"}))
    teacher = Teacher(TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake-model",
                                    server_kind="openai", cache="off"))
    task = Task("verdict", "Is it {x}?", {"type": "object", "properties": {"verdict": {"type": "string"}},
                                          "required": ["verdict"]}, system="Be strict.")
    reply = task.send(teacher, "Is it so?", system="Be kind.", attempts=1)
    assert reply.data == {"verdict": "YES"}
    assert fake_openai.chat_requests[-1].body["messages"][0] == {"role": "system", "content": "Be kind."}
    teacher.close()
