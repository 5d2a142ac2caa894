"""The Batch API path end to end against a fake files + batches server: write, upload, create, poll, merge, resume."""

import json

import pytest
from fake_batch_server import FakeBatchServer

from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.records import Instruction, Passage
from lecture_utils.scale.batch import BatchError, run_batch
from lecture_utils.scale.factory import FactoryConfig, run_factory
from lecture_utils.teacher.client import TeacherConfig

PASSAGES = [
    Passage("ch1-p001", "v.txt", "Marla keeps the lighthouse at Fenwick and trims its lamp every evening.", 0, 70, 1),
    Passage("ch1-p002", "v.txt", "The baker Tobin sells rye loaves at the harbour market on Tuesdays.", 70, 140, 1),
    Passage("ch2-p001", "v.txt", "A storm wrecked the fishing fleet, and Marla guided the last boat home.", 140, 210, 2),
]


@pytest.fixture
def index():
    return FastBM25Index(PASSAGES)


def instructions():
    texts = ["Who keeps the lighthouse?", "What does Tobin sell at the market?", "Who guided the boat home?",
             "Why did the storm FAIL the fleet?", "Describe the lighthouse REFUSE", "What does the baker BADJSON bake?",
             "What is it about?"]  # the last one shares no word with any passage
    return [Instruction(f"i{n}", t, "plot") for n, t in enumerate(texts)]


def teacher(base_url):
    return TeacherConfig(mode="endpoint", base_url=base_url, model="gpt-4o-mini", server_kind="openai", api_key="sk-test")


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_end_to_end_merges_into_the_factory_files(tmp_path, index):
    waits = []
    with FakeBatchServer() as fake:
        summary = run_batch(instructions(), index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url),
                            poll_s=0.5, sleep=waits.append)
        uploaded = next(f for f in fake.files.values() if f["purpose"] == "batch")
        lines = [json.loads(line) for line in uploaded["data"].decode().splitlines()]
    assert [line["custom_id"] for line in lines] == ["i0", "i1", "i2", "i3", "i4", "i5"]  # i6 needs no request
    assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)
    body = lines[0]["body"]
    assert body["model"] == "gpt-4o-mini" and body["response_format"]["type"] == "json_schema"
    assert "[ch1-p001]" in body["messages"][-1]["content"] and "api_key" not in json.dumps(lines)
    assert waits == [0.5, 0.75]  # polled until done, each wait 1.5x the last

    out, failed = read(tmp_path / "qa.jsonl"), read(tmp_path / "qa.failures.jsonl")
    assert {p["instruction_id"] for p in out} == {"i0", "i1", "i2", "i6"}
    assert {f["id"]: f["reason"] for f in failed} == {"i3": "HTTP 500", "i4": "refusal", "i5": "parse error"}
    first = next(p for p in out if p["instruction_id"] == "i0")
    assert first["id"] == "qa-i0" and first["cited"] == ["ch1-p001"] and first["retrieved"][0]["id"] == "ch1-p001"
    assert first["teacher"] == "gpt-4o-mini" and first["prompt_version"]
    assert next(p for p in out if p["instruction_id"] == "i6")["not_in_text"]
    assert summary.succeeded == 4 and summary.failed == 3 and summary.pending == 0
    assert summary.cost_usd > 0 and summary.parts[0].status == "merged"
    state = json.loads((tmp_path / "batch" / "batch_state.json").read_text())
    assert state["parts"][0]["batch_id"] == "batch_1" and state["parts"][0]["status"] == "merged"


def test_running_again_sends_nothing_and_duplicates_nothing(tmp_path, index):
    with FakeBatchServer() as fake:
        run_batch(instructions(), index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), sleep=lambda s: None)
        before = (tmp_path / "qa.jsonl").read_text(), (tmp_path / "qa.failures.jsonl").read_text()
        posts = len([m for m, _ in fake.log if m == "POST"])
        again = run_batch(instructions(), index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url),
                          sleep=lambda s: None)
        assert len([m for m, _ in fake.log if m == "POST"]) == posts  # no upload, no new batch
    assert again.queued == 0 and again.skipped == 7
    assert ((tmp_path / "qa.jsonl").read_text(), (tmp_path / "qa.failures.jsonl").read_text()) == before


def test_submit_now_collect_later(tmp_path, index):
    with FakeBatchServer() as fake:
        first = run_batch(instructions(), index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), wait=False)
        assert first.pending == 6 and first.queued == 6 and len(fake.batches) == 1
        assert [p["instruction_id"] for p in read(tmp_path / "qa.jsonl")] == ["i6"]
        later = run_batch(instructions(), index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url),
                          sleep=lambda s: None)
        assert len(fake.batches) == 1  # the same batch was polled, not a new one created
    assert later.pending == 0 and later.queued == 0 and later.succeeded == 3 and later.failed == 3
    ids = [p["instruction_id"] for p in read(tmp_path / "qa.jsonl")] + [f["id"] for f in read(tmp_path / "qa.failures.jsonl")]
    assert sorted(ids) == [f"i{n}" for n in range(7)]


def test_an_expired_batch_accounts_for_every_item_and_can_be_retried(tmp_path, index):
    insts = [i for i in instructions() if i.id in ("i0", "i1", "i2")]
    with FakeBatchServer(expire_after=1) as fake:
        run_batch(insts, index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), sleep=lambda s: None)
    assert [p["instruction_id"] for p in read(tmp_path / "qa.jsonl")] == ["i0"]
    assert {f["id"]: f["reason"] for f in read(tmp_path / "qa.failures.jsonl")} == {"i1": "batch expired", "i2": "batch expired"}
    with FakeBatchServer() as fake:
        retried = run_batch(insts, index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), sleep=lambda s: None,
                            config=FactoryConfig(retry_failures=True))
    assert retried.queued == 2 and retried.succeeded == 2 and retried.skipped == 1
    assert sorted(p["instruction_id"] for p in read(tmp_path / "qa.jsonl")) == ["i0", "i1", "i2"]
    assert read(tmp_path / "qa.failures.jsonl") == []


def test_large_runs_are_split_into_several_batches(tmp_path, index):
    many = [Instruction(f"m{n}", f"Who keeps the lighthouse lamp, question {n}?", "plot") for n in range(10)]
    with FakeBatchServer() as fake:
        summary = run_batch(many, index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), max_requests=4,
                            sleep=lambda s: None)
        assert len(fake.batches) == 3
    assert [p.requests for p in summary.parts] == [4, 4, 2] and summary.succeeded == 10


def test_batch_and_factory_share_their_files(tmp_path, index):
    """Items the live factory already answered are not sent again by the batch path."""
    from fake_openai import FakeOpenAI

    insts = instructions()[:3]
    with FakeOpenAI() as live:
        run_factory(insts[:2], index, tmp_path / "qa.jsonl", teacher=teacher(live.base_url), progress=False)
    with FakeBatchServer() as fake:
        summary = run_batch(insts, index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), sleep=lambda s: None)
    assert summary.skipped == 2 and summary.queued == 1
    assert sorted(p["instruction_id"] for p in read(tmp_path / "qa.jsonl")) == ["i0", "i1", "i2"]


def test_replay_cannot_use_the_batch_api(tmp_path, index):
    replay = TeacherConfig(mode="replay", model="gpt-4o-mini", cache="replay", cache_path=tmp_path / "c.jsonl")
    with pytest.raises(BatchError, match="needs a live server"):
        run_batch(instructions(), index, tmp_path / "qa.jsonl", teacher=replay)


def test_batch_pairs_keep_the_passage_first_fields_like_the_factorys(tmp_path, index):
    from lecture_utils.prompts import RAG_PROMPT, RAG_SYSTEM, prompt_sha

    inst = Instruction("p1", "What does Tobin sell at the market?", "plot", origin="passage", passage_id="ch1-p002",
                       span="sells rye loaves at the harbour market", checks={"span": True, "round_trip": 0.9},
                       evidence=["Tobin sells rye loaves at the harbour market."], related=["ch1-p001"],
                       reference="Rye loaves, at the harbour market.", prompt_sha="stage2sha")
    with FakeBatchServer() as fake:
        run_batch([inst], index, tmp_path / "qa.jsonl", teacher=teacher(fake.base_url), poll_s=0.5,
                  sleep=lambda s: None)
    (pair,) = read(tmp_path / "qa.jsonl")
    assert (pair["passage_id"], pair["span"], pair["checks"]) == (inst.passage_id, inst.span, inst.checks)
    # what the held-out split and the evaluation read: the evidence, the related passages, the reference answer
    assert (pair["evidence"], pair["related"], pair["reference"]) == (inst.evidence, inst.related, inst.reference)
    assert pair["retrieved"][0]["id"] == "ch1-p002" and pair["prompt_sha"] == prompt_sha(RAG_SYSTEM, RAG_PROMPT)
