"""The requests the kit builds, pinned: their cache keys and bodies must never drift, or data/replay_cache.jsonl
(keyed by a hash of the whole request) stops replaying. Bodies are compared as JSON content (keys sorted).

The literals below were computed with the code as it stood before the engine refactor (issue 12). A change that
moves one of them changes what a replay finds: re-record the cache instead of updating the numbers.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from fake_openai import FakeOpenAI

from lecture_utils.answer import verify
from lecture_utils.answer.qa import answer_instruction, answer_schema, build_rag_messages
from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.ask import checks as question_checks
from lecture_utils.curate import judge
from lecture_utils.records import Instruction, Passage, QAPair, Retrieved
from lecture_utils.scale.factory import run_factory
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.teacher.wire import build_request, cache_key

ALIAS = "qwen2.5-coder-1.5b-instruct"  # the model the shipped replay cache was recorded under
PASSAGES = [
    Passage("ch1-p001", "village.txt", "Marla keeps the lighthouse at Fenwick and trims its lamp every evening.", 0, 70, 1),
    Passage("ch1-p002", "village.txt", "The baker Tobin sells rye loaves at the harbour market on Tuesdays.", 70, 140, 1),
    Passage("ch2-p001", "village.txt", "A storm wrecked the fishing fleet, and Marla guided the last boat home.", 140, 210, 2),
]
INSTRUCTIONS = [
    Instruction("i1", "Who keeps the lighthouse at Fenwick?", "plot"),
    Instruction("i2", "What does Tobin sell at the harbour?", "plot", origin="passage", passage_id="ch1-p002",
                span="sells rye loaves at the harbour market"),
]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
          "required": ["name", "count"], "additionalProperties": False}
LOOSE_SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}, "required": ["name"]}
PAIR = QAPair(id="qa-i1", instruction_id="i1", instruction="Who keeps the lighthouse at Fenwick?", category="plot",
              answer="Marla keeps it.", retrieved=[Retrieved("ch1-p001", 1.5)], cited=["ch1-p001"])


def body_sha(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def keys_in(path) -> list[str]:
    return [json.loads(line)["key"][:16] for line in path.read_text(encoding="utf-8").splitlines()]


def notebook_calls(teacher: Teacher, index: FastBM25Index) -> None:
    """One of each kind of call the notebooks make."""
    teacher.chat("Say hello in five words.", system="Be brief.", seed=7, max_tokens=50)
    teacher.chat([{"role": "user", "content": "Name a lighthouse."}], temperature=0.2)
    teacher.structured("Give a name and a count.", SCHEMA, temperature=0.0, max_tokens=60)
    teacher.structured("Give a name.", LOOSE_SCHEMA, system="Reply in JSON.", seed=3)
    answer_instruction(teacher, INSTRUCTIONS[0], index)  # Stage 3
    answer_instruction(teacher, INSTRUCTIONS[1], index)  # Stage 3, passage-first: own passage first
    question_checks.round_trip(teacher, INSTRUCTIONS[1], PASSAGES[1])
    verify.faithful(teacher, PAIR, PASSAGES[:1])
    judge.judge_pair(teacher, PAIR, PASSAGES)


@pytest.fixture
def index():
    return FastBM25Index(PASSAGES)


def live(fake: FakeOpenAI, path, **settings) -> Teacher:
    return Teacher(TeacherConfig(mode="endpoint", base_url=fake.base_url, cache="record", cache_path=path, **settings))


NOTEBOOK_OPENAI_KEYS = [
    "a7ffbe4d7a30b242",
    "500b556b3719f580",
    "2fd0b3fa3d4505e5",
    "16cc510ff5c3f778",
    "f5a5dcddfb2a3c3a",
    "2b79bae303d3b18f",
    "555d5baf83e92a2c",
    "cc0de844715b56fa",
    "cef289f639598c50",
]
NOTEBOOK_OPENAI_BODIES = [
    "467dad8b090684d8",
    "4de704818a6bdffa",
    "fa6627150ea12d26",
    "1e21aef76d07d1e2",
    "ffa4865d870176fc",
    "3df22137f2be84d7",
    "da4a33a792241a87",
    "f9bbd701aa5f2c8c",
    "3ef9853e91e9aa9e",
]
NOTEBOOK_LLAMA_KEYS = [
    "26f9164a447d0d8f",
    "aa0a1ce9ecbe8ffa",
    "0d8d07ecf65bb761",
    "54c11839cd60aa96",
    "9a55ca51d1665ad5",
    "051f71e8dbc44a4b",
    "0fda276e7deac4f4",
    "1f107952e2ea2c53",
    "276d36197132bdf6",
]
NOTEBOOK_LLAMA_BODIES = [
    "29028d2eadd8a17a",
    "0c98dd07d1bcb54e",
    "6778d3a51f181aee",
    "ba796d3387b4718c",
    "d10e740eaf3494c8",
    "2bdae26e28a7d394",
    "2398407643f6d6fa",
    "462542e48f104251",
    "67ad8f466e1ad533",
]


def test_notebook_requests_on_openai_json_schema(fake_openai, tmp_path, index):
    teacher = live(fake_openai, tmp_path / "c.jsonl", model="gpt-4o-mini", server_kind="openai")
    notebook_calls(teacher, index)
    teacher.close()
    assert keys_in(tmp_path / "c.jsonl") == NOTEBOOK_OPENAI_KEYS
    assert [body_sha(r.body) for r in fake_openai.chat_requests] == NOTEBOOK_OPENAI_BODIES


def test_notebook_requests_on_llama_cpp_json_object_and_their_replay(fake_openai, tmp_path, index):
    path = tmp_path / "c.jsonl"
    teacher = live(fake_openai, path, model=ALIAS, server_kind="llama.cpp")
    notebook_calls(teacher, index)
    teacher.close()
    assert keys_in(path) == NOTEBOOK_LLAMA_KEYS
    assert [body_sha(r.body) for r in fake_openai.chat_requests] == NOTEBOOK_LLAMA_BODIES
    sent = len(fake_openai.requests)
    for mode in ("replay", "classroom"):  # both look up under the same keys, and find every one
        player = Teacher(TeacherConfig.from_env(mode, cache_path=path))
        notebook_calls(player, index)
        assert player.usage.calls == player.usage.cached_calls == len(NOTEBOOK_LLAMA_KEYS)
        player.close()
    assert len(fake_openai.requests) == sent


STRATEGY_PROBE_BODIES = [  # asked once, before the first structured call: json_schema (refused), json_object
    "ead2c4c9d7fae9df",
    "e62727678c009a69",
]
STRATEGY_CHAIN_BODIES = [  # the two real calls, both json_object: nothing is tried again on a real request
    "b0e5ed2f053436f9",
    "cae3c0ac2109132a",
]
STRATEGY_CHAIN_KEYS = [
    "8778bdf900f1c054",
    "cab10ca2c8a0f10f",
]


def test_unknown_server_is_asked_once_how_it_takes_a_schema(tmp_path):
    with FakeOpenAI() as fake:
        fake.json_schema_status = 500  # like llama.cpp: json_schema refused, json_object+schema taken
        teacher = live(fake, tmp_path / "c.jsonl", model="fake-model")
        teacher.structured("Give a name and a count.", SCHEMA)
        assert teacher.engine.strategy == "json_object"
        teacher.structured("Give a name.", LOOSE_SCHEMA, max_tokens=30)
        teacher.close()
        assert [body_sha(r.body) for r in fake.chat_requests] == STRATEGY_PROBE_BODIES + STRATEGY_CHAIN_BODIES
    assert keys_in(tmp_path / "c.jsonl") == STRATEGY_CHAIN_KEYS  # the probe is not recorded: a replay needs none


PROMPT_ONLY = [
    "76a4c0dd6733e4f2",
    "7c2921332625092c",
    "2899cbc3f53261d9",
    "2dabf9f01c6d134c",
]


def test_prompt_only_strategy_request():
    config = TeacherConfig(mode="endpoint", base_url="http://127.0.0.1:9/v1", model="fake-model")
    messages = [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Give a name and a count."}]
    request = build_request(config, messages, temperature=0.0, max_tokens=60, schema=SCHEMA, strategy="prompt")
    rag = build_request(config, build_rag_messages(INSTRUCTIONS[1], [(PASSAGES[1], 1.0)]), temperature=0.0,
                        max_tokens=200, schema=answer_schema(["ch1-p002"]), strategy="prompt")
    assert [cache_key(request)[:16], body_sha(request), cache_key(rag)[:16], body_sha(rag)] == PROMPT_ONLY


FACTORY_OPENAI = [
    "2b79bae303d3b18f",
    "f5a5dcddfb2a3c3a",
    "3df22137f2be84d7",
    "ffa4865d870176fc",
]
FACTORY_LLAMA = [
    "051f71e8dbc44a4b",
    "9a55ca51d1665ad5",
    "2bdae26e28a7d394",
    "d10e740eaf3494c8",
]


def test_factory_requests_and_their_replay(fake_openai, tmp_path, index):
    got = {}
    for name, model, kind in (("openai", "gpt-4o-mini", "openai"), ("llama", ALIAS, "llama.cpp")):
        path = tmp_path / f"{name}.jsonl"
        config = TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model=model, server_kind=kind,
                               cache="record", cache_path=path)
        before = len(fake_openai.chat_requests)
        run_factory(INSTRUCTIONS, index, tmp_path / f"{name}-qa.jsonl", teacher=config, progress=False)
        bodies = sorted(body_sha(r.body) for r in fake_openai.chat_requests[before:])
        got[name] = sorted(keys_in(path)) + bodies
    assert got["openai"] == FACTORY_OPENAI
    assert got["llama"] == FACTORY_LLAMA
    sent = len(fake_openai.requests)
    replay = TeacherConfig.from_env("replay", cache_path=tmp_path / "llama.jsonl")
    summary = run_factory(INSTRUCTIONS, index, tmp_path / "replayed-qa.jsonl", teacher=replay, progress=False)
    assert summary.cached == len(INSTRUCTIONS) and summary.failed == 0
    assert len(fake_openai.requests) == sent
