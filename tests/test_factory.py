"""The data factory against real local HTTP servers: faults, resume after SIGKILL, budgets, replay, estimates."""

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import error, rate_limit, reply_json

from lecture_utils.records import Instruction, Passage, repair_tail, write_jsonl
from lecture_utils.scale.estimate import estimate_run
from lecture_utils.scale.factory import FactoryConfig, FactoryError, run_factory
from lecture_utils.scale.runs import finished_ids
from lecture_utils.teacher.budgets import TokenBucket
from lecture_utils.teacher.client import TeacherConfig

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "bench" / "fake_latency_server.py"
WORDS = ("lighthouse harbour baker storm fleet lamp oil market rye loaf boat keeper winter quarrel village cliff "
         "gull net sail tide").split()
REASONS = {"HTTP 429", "HTTP 500", "timeout", "connection error", "malformed reply", "parse error", "refusal",
           "empty answer"}


def make_passages(n=60, seed=1):
    rng = random.Random(seed)
    return [Passage(f"ch{i // 10 + 1}-p{i % 10:03d}", "village.txt", " ".join(rng.choice(WORDS) for _ in range(40)),
                    0, 1, i // 10 + 1) for i in range(n)]


def make_instructions(n, seed=2):
    """Invented questions; every 25th is one the fake server refuses, answers emptily or says is not in the text."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = f"Why does the {rng.choice(WORDS)} matter to the {rng.choice(WORDS)} in winter?"
        if i % 25 == 3:
            text += " REFUSE"
        elif i % 25 == 7:
            text += " EMPTY"
        elif i % 25 == 11:
            text += " NOTINTEXT"
        out.append(Instruction(f"inst-{i:04d}", text, "plot"))
    return out


@pytest.fixture(scope="module")
def index():
    from lecture_utils.answer.retrieval import FastBM25Index

    return FastBM25Index(make_passages())


class LatencyServer:
    """bench/fake_latency_server.py in its own process."""

    def __init__(self, **options):
        args = [sys.executable, str(SERVER)]
        for k, v in options.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture
def server_factory():
    servers = []

    def start(**options):
        servers.append(LatencyServer(**options))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def teacher_for(base_url, **kw):
    return TeacherConfig(mode="endpoint", base_url=base_url, model="gpt-4o-mini", server_kind="openai", **kw)


def lines(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_every_item_is_accounted_for_under_faults(tmp_path, index, server_factory):
    server = server_factory(latency=0.01, cap=32, fault_rate=0.2, retry_after=0.05, hang=30, seed=7)
    insts = make_instructions(200)
    summary = run_factory(insts, index, tmp_path / "qa.jsonl", teacher=teacher_for(server.base_url),
                          concurrency=32, timeout_s=0.5, backoff_base_s=0.02, max_attempts=6, progress=False)
    out, failed = lines(tmp_path / "qa.jsonl"), lines(tmp_path / "qa.failures.jsonl")
    out_ids, failed_ids = [p["instruction_id"] for p in out], [f["id"] for f in failed]
    assert len(out_ids) == len(set(out_ids)) and len(failed_ids) == len(set(failed_ids))
    assert not set(out_ids) & set(failed_ids)
    assert set(out_ids) | set(failed_ids) == {i.id for i in insts}
    assert summary.succeeded == len(out_ids) and summary.failed == len(failed_ids)
    assert summary.retries > 0 and summary.requests > 200  # faults happened and were retried
    assert {f["reason"] for f in failed} <= REASONS
    refused = {i.id for i in insts if "REFUSE" in i.instruction}
    empty = {i.id for i in insts if "EMPTY" in i.instruction}
    assert {f["id"] for f in failed if f["reason"] == "refusal"} == refused
    assert {f["id"] for f in failed if f["reason"] == "empty answer"} == empty
    assert all(f["attempts"] >= 1 and f["detail"] for f in failed)
    not_in_text = {p["instruction_id"] for p in out if p["not_in_text"]}
    assert {i.id for i in insts if "NOTINTEXT" in i.instruction} <= not_in_text
    good = [p for p in out if not p["not_in_text"]]
    assert good and all(p["cited"] and set(p["cited"]) <= {r["id"] for r in p["retrieved"]} for p in good)


def test_a_second_run_only_does_what_is_left(tmp_path, index, server_factory):
    server = server_factory(latency=0.0, cap=16)
    insts = make_instructions(60)
    teacher = teacher_for(server.base_url)
    first = run_factory(insts[:25], index, tmp_path / "qa.jsonl", teacher=teacher, progress=False)
    second = run_factory(insts + insts[30:35], index, tmp_path / "qa.jsonl", teacher=teacher, progress=False)
    assert first.done == 25
    assert second.skipped == 25 and second.duplicates == 5 and second.done == 35
    ids = [p["instruction_id"] for p in lines(tmp_path / "qa.jsonl")] + \
          [f["id"] for f in lines(tmp_path / "qa.failures.jsonl")]
    assert sorted(ids) == sorted(i.id for i in insts)


def test_retry_failures_gives_failed_items_another_go(tmp_path, index, server_factory):
    down = server_factory(latency=0.0, cap=8, fault_rate=1.0, retry_after=0.01, hang=30)
    insts = [i for i in make_instructions(30) if not any(w in i.instruction for w in ("REFUSE", "EMPTY", "NOTINTEXT"))]
    run_factory(insts, index, tmp_path / "qa.jsonl", teacher=teacher_for(down.base_url), max_attempts=2,
                timeout_s=0.3, backoff_base_s=0.01, progress=False)
    assert len(lines(tmp_path / "qa.failures.jsonl")) == len(insts)
    up = server_factory(latency=0.0, cap=8)
    again = run_factory(insts, index, tmp_path / "qa.jsonl", teacher=teacher_for(up.base_url), progress=False,
                        retry_failures=True)
    assert again.succeeded == len(insts) and again.skipped == 0
    assert lines(tmp_path / "qa.failures.jsonl") == []
    assert len(lines(tmp_path / "qa.failures.jsonl.retried")) == len(insts)  # the old reasons are kept aside


def _run_dir(path, insts):
    path.mkdir()
    write_jsonl(path / "instructions.jsonl", insts)
    write_jsonl(path / "passages.jsonl", make_passages())
    return path


def _cli(run_dir, base_url, *extra):
    env = {**os.environ, "TEACHER": "endpoint", "TEACHER_BASE_URL": base_url, "TEACHER_MODEL": "gpt-4o-mini",
           "TEACHER_CACHE": "off", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "lecture_utils", "factory", str(run_dir), "--no-progress", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_same_ids_with_no_torn_lines(tmp_path, server_factory):
    server = server_factory(latency=0.03, cap=8)
    insts = make_instructions(300)
    whole = _run_dir(tmp_path / "whole", insts)
    killed = _run_dir(tmp_path / "killed", insts)

    full = _cli(whole, server.base_url, "--concurrency", "4")  # the uninterrupted run, alongside
    proc = _cli(killed, server.base_url, "--concurrency", "4")
    out = killed / "qa_pairs.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 40):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = out.read_text().count("\n")
    assert 40 <= partial < 300, "the run should have been killed mid-way"
    with out.open("a") as f:  # what a kill in the middle of a write would leave behind
        f.write('{"id": "qa-inst-9999", "instruction_id": "inst-99')

    resumed = _cli(killed, server.base_url, "--concurrency", "4")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "half-written" in err
    _, err = full.communicate(timeout=120)
    assert full.returncode == 0, err

    def ids(run_dir):
        text = (run_dir / "qa_pairs.jsonl").read_text()
        assert text.endswith("\n")
        out_ids = [json.loads(line)["instruction_id"] for line in text.splitlines()]
        failed = [json.loads(line)["id"] for line in (run_dir / "qa_pairs.failures.jsonl").read_text().splitlines()]
        assert len(set(out_ids)) == len(out_ids) and len(set(failed)) == len(failed)
        return set(out_ids), set(failed)

    assert ids(killed) == ids(whole)
    assert ids(killed)[0] | ids(killed)[1] == {i.id for i in insts}


def test_repair_tail_cuts_only_a_torn_last_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a"')
    assert repair_tail(path) and path.read_text() == '{"a": 1}\n{"a": 2}\n'
    assert not repair_tail(path) and path.read_text() == '{"a": 1}\n{"a": 2}\n'
    path.write_text('{"half')
    assert repair_tail(path) and path.read_text() == ""
    assert finished_ids(tmp_path / "missing.jsonl", "id") == set()


def test_retry_after_is_honoured(tmp_path, index, fake_openai):
    fake_openai.enqueue(rate_limit(retry_after=0.4), reply_json({"answer": "Marla.", "cited": []}))
    start = time.perf_counter()
    summary = run_factory(make_instructions(1), index, tmp_path / "qa.jsonl", progress=False,
                          teacher=teacher_for(fake_openai.base_url))
    assert time.perf_counter() - start >= 0.4
    assert summary.succeeded == 1 and summary.requests == 2 and summary.retries == 1


def test_a_rejected_key_stops_the_run_instead_of_failing_every_item(tmp_path, index, fake_openai):
    fake_openai.default = error(401, "Incorrect API key provided")
    with pytest.raises(FactoryError, match="key rejected.*run again"):
        run_factory(make_instructions(20), index, tmp_path / "qa.jsonl", progress=False,
                    teacher=teacher_for(fake_openai.base_url))
    assert not (tmp_path / "qa.failures.jsonl").read_text()  # nothing wrongly marked as failed


def test_requests_per_minute_budget_spaces_requests():
    async def take(n):
        bucket = TokenBucket(per_minute=1200, burst_s=0.25)  # 20 a second, 5 at once
        start = time.perf_counter()
        for _ in range(n):
            await bucket.take(1)
        return time.perf_counter() - start

    assert asyncio.run(take(15)) >= 0.45  # 10 beyond the burst at 20/s


def test_a_recorded_run_replays_without_a_server(tmp_path, index, server_factory):
    server = server_factory(latency=0.0, cap=8)
    insts = [i for i in make_instructions(40) if "REFUSE" not in i.instruction and "EMPTY" not in i.instruction]
    cache = tmp_path / "cache.jsonl"
    recorded = run_factory(insts, index, tmp_path / "live.jsonl", progress=False,
                           teacher=teacher_for(server.base_url, cache="record", cache_path=cache))
    server.stop()
    replay = TeacherConfig(mode="replay", model="gpt-4o-mini", cache="replay", cache_path=cache)
    replayed = run_factory(insts, index, tmp_path / "replay.jsonl", progress=False, teacher=replay)
    asked = [p for p in lines(tmp_path / "live.jsonl") if p["finish_reason"] != "no_passages"]
    assert recorded.succeeded == len(insts) and replayed.failed == 0
    assert replayed.cached == len(asked) > 0 and replayed.requests == 0
    by_id = lambda path: {p["id"]: p for p in lines(path)}  # noqa: E731
    assert by_id(tmp_path / "replay.jsonl") == by_id(tmp_path / "live.jsonl")


def test_estimate_counts_the_remaining_requests(tmp_path, index):
    insts = make_instructions(50)
    paid = estimate_run(insts, index, teacher_for("http://unused/v1"), FactoryConfig(max_tokens=300))
    assert paid.requests == 50 and paid.prompt_tokens > 50 * 100
    assert 0 < paid.cost_usd < paid.max_cost_usd
    assert "about 50 requests" in str(paid) and "gpt-4o-mini" in str(paid)
    write_jsonl(tmp_path / "qa.jsonl", [{"instruction_id": i.id} for i in insts[:20]])
    assert estimate_run(insts, index, teacher_for("http://unused/v1"), out=tmp_path / "qa.jsonl").requests == 30
    local = TeacherConfig(mode="local", base_url="http://unused/v1", model="qwen")
    assert estimate_run(insts, index, local).cost_usd == 0


def test_run_factory_works_inside_a_running_event_loop(tmp_path, index, server_factory):
    server = server_factory(latency=0.0, cap=4)

    async def notebook_cell():  # Jupyter runs cells inside a loop; run_factory must still work there
        return run_factory(make_instructions(10), index, tmp_path / "qa.jsonl", progress=False,
                           teacher=teacher_for(server.base_url))

    assert asyncio.run(notebook_cell()).done == 10


def test_bad_input_lines_get_a_one_line_error(tmp_path, index):
    bad = tmp_path / "instructions.jsonl"
    bad.write_text('{"id": "a", "instruction": "Why the storm?"}\nnot json\n{"id": "b", "instruction": "x"}\n')
    with pytest.raises(FactoryError, match=r"instructions.jsonl:2: not valid JSON"):
        run_factory(bad, index, tmp_path / "qa.jsonl", progress=False, teacher=teacher_for("http://127.0.0.1:9/v1"))
    with pytest.raises(FactoryError, match="concurrency"):
        FactoryConfig(concurrency=0)


@pytest.mark.slow
def test_factory_with_the_embedded_llama_cpp_teacher(tmp_path, index):
    """A real round trip: llama.cpp's json_object + schema, our parsing, every item in exactly one file."""
    from lecture_utils.teacher.client import connect
    from lecture_utils.teacher.gguf import best_installed_model

    if best_installed_model() is None:
        pytest.skip("no local model installed: make lab installs one")
    teacher = connect("local", local_model="smollm2-135m")
    insts = make_instructions(2)
    summary = run_factory(insts, index, tmp_path / "qa.jsonl", teacher=teacher, max_tokens=160, progress=False)
    ids = [p["instruction_id"] for p in lines(tmp_path / "qa.jsonl")] + [f["id"] for f in lines(tmp_path / "qa.failures.jsonl")]
    assert sorted(ids) == [i.id for i in insts] and summary.requests >= 2
    assert all(p["teacher"] == "smollm2-135m-instruct" for p in lines(tmp_path / "qa.jsonl"))


def test_stage2_expansion_runs_in_parallel_and_resumes(tmp_path, fake_openai):
    from fake_openai import reply_json as rj

    from lecture_utils.scale.expand import expand_instructions
    from lecture_utils.teacher.client import Teacher

    def invent(body):
        seed = body.get("seed", 0)
        if seed == 3:
            return error(400, "this run is rejected")
        items = [{"category": "plot and events", "instruction": f"Describe what happens at the harbour in scene {seed}-{k}."}
                 for k in range(4)]
        return rj({"instructions": items})

    fake_openai.default = invent
    teacher = Teacher(teacher_for(fake_openai.base_url))
    out = tmp_path / "instructions.jsonl"
    first = expand_instructions(teacher, out, runs=5, n_per_run=4, concurrency=3, progress=False)
    assert (first.asked - first.failed, first.failed, first.kept) == (4, 1, 16)
    rows = lines(out)
    assert sorted({r["run"] for r in rows}) == [1, 2, 4, 5] and len({r["id"] for r in rows}) == 16
    assert [f["job"] for f in lines(tmp_path / "instructions.failures.jsonl")] == ["run-3"]
    seen = len(fake_openai.chat_requests)
    again = expand_instructions(teacher, out, runs=7, n_per_run=4, progress=False)
    assert again.skipped == 5 and again.asked == 2  # only runs 6 and 7 are new
    assert len(fake_openai.chat_requests) == seen + 2


def test_an_unreachable_server_stops_the_run_with_its_url(tmp_path, index):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FactoryError, match=f"cannot reach the teacher at http://127.0.0.1:{port}"):
        run_factory(make_instructions(5), index, tmp_path / "qa.jsonl", progress=False,
                    teacher=teacher_for(f"http://127.0.0.1:{port}/v1"))


def spent(path):
    return sum(float(x) for x in Path(path).read_text(encoding="utf-8").split())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_spend_cap_stops_before_it_is_passed_and_a_higher_cap_resumes_with_nothing_done_twice(
        tmp_path, index, server_factory, concurrency):
    server = server_factory(latency=0.01, cap=16)
    insts = make_instructions(30)
    teacher = teacher_for(server.base_url, prices={"gpt-4o-mini": (1000.0, 1000.0)})  # about $0.3 a request
    out = tmp_path / "qa.jsonl"
    with pytest.raises(FactoryError, match=r"spend cap reached: \$\d.*raise --max-cost"):
        run_factory(insts, index, out, teacher=teacher, concurrency=concurrency, max_cost_usd=3.0, progress=False)
    first = spent(out.with_suffix(".spend.txt"))
    done = [p["instruction_id"] for p in lines(out)] + [f["id"] for f in lines(out.with_name("qa.failures.jsonl"))]
    assert 0 < len(done) < 30 and first <= 3.0
    per_request = first / len(done)
    if concurrency == 1:  # within one request's cost of the cap (the worst case is reserved before each request)
        assert first >= 3.0 - 2.5 * per_request
    summary = run_factory(insts, index, out, teacher=teacher, concurrency=concurrency, max_cost_usd=100.0,
                          progress=False)
    ids = [p["instruction_id"] for p in lines(out)] + [f["id"] for f in lines(out.with_name("qa.failures.jsonl"))]
    assert sorted(ids) == sorted(i.id for i in insts) and len(ids) == len(set(ids))
    assert summary.skipped == len(done) and summary.spent_usd == pytest.approx(spent(out.with_suffix(".spend.txt")))
    assert summary.spent_usd > first  # spend is kept across resumes


def test_a_spend_cap_without_a_price_is_refused(tmp_path, index, server_factory):
    server = server_factory(latency=0.0, cap=4)
    teacher = TeacherConfig(mode="endpoint", base_url=server.base_url, model="my-own-model", server_kind="openai")
    with pytest.raises(FactoryError, match="--price-in and --price-out"):
        run_factory(make_instructions(3), index, tmp_path / "qa.jsonl", teacher=teacher, max_cost_usd=1.0,
                    progress=False)


def test_target_kept_stops_asking_once_enough_answers_pass_and_a_later_run_counts_them(tmp_path, index,
                                                                                       fake_openai):
    def from_the_passage(body):  # a teacher that answers with its first passage's first words, cited
        prompt = body["messages"][-1]["content"]
        pid, text = re.search(r"\[([\w-]+)\] ([^\n]+)", prompt).groups()
        return reply_json({"answer": " ".join(text.split()[:12]) + ".", "cited": [pid]})

    fake_openai.default = from_the_passage
    insts = make_instructions(40)
    out = tmp_path / "qa.jsonl"
    teacher = TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake-model", server_kind="openai")
    first = run_factory(insts, index, out, teacher=teacher, concurrency=1, target_kept=5, progress=False)
    assert 5 <= first.kept == first.done <= 6 and len(lines(out)) == first.done  # two workers: one may finish after the fifth
    asked = len(fake_openai.chat_requests)
    again = run_factory(insts, index, out, teacher=teacher, concurrency=1, target_kept=5, progress=False)
    assert again.done == 0 and again.kept == first.kept and len(fake_openai.chat_requests) == asked  # enough: nothing asked
    more = run_factory(insts, index, out, teacher=teacher, concurrency=1, target_kept=8, progress=False)
    assert 8 <= more.kept <= 9 and more.done == more.kept - first.kept
