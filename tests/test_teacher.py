"""The teacher against a real HTTP server on 127.0.0.1 (tests/fake_openai.py) that misbehaves on cue."""

from __future__ import annotations

import json
import socket

import pytest
from fake_openai import FakeOpenAI, drop, error, malformed, rate_limit, reply, reply_json, slow

from lecture_utils import settings
from lecture_utils.teacher import client as t
from lecture_utils.teacher import engine, transport, wire
from lecture_utils.teacher.cache import ResponseCache
from lecture_utils.teacher.client import Teacher, TeacherConfig, connect
from lecture_utils.teacher.json_reply import parse_json_loose, validate
from lecture_utils.teacher.prices import estimate_cost
from lecture_utils.teacher.wire import StructuredOutputError, TeacherError, build_request, cache_key

ENV_NAMES = ("TEACHER", "TEACHER_BASE_URL", "TEACHER_MODEL", "TEACHER_API_KEY", "OPENAI_API_KEY", "TEACHER_CACHE",
             "TEACHER_CACHE_PATH", "TEACHER_LOCAL_MODEL", "TEACHER_PRICES", "TEACHER_TIMEOUT", "OPENAI_BASE_URL")
SECRET = "sk-" + "test-SECRET-0123456789"  # assembled, so no key-shaped literal sits in the repo
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "cited": {"type": "array", "items": {"type": "string", "enum": ["ch01-p001", "ch01-p002"]}, "minItems": 1},
    },
    "required": ["answer", "cited"],
    "additionalProperties": False,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No real keys, settings or .env file leak into these tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings, "ENV_FILE", tmp_path / "absent.env")


def make_teacher(fake: FakeOpenAI, waits: list | None = None, **overrides) -> Teacher:
    mode = overrides.pop("mode", "endpoint")
    # a known kind of server unless a test says otherwise: an unknown one is asked at connect how it takes a schema
    settings = dict(base_url=fake.base_url, model="fake-model", cache="off", backoff_base_s=0.001,
                    backoff_max_s=0.01, timeout_s=5.0, server_kind="llama.cpp")
    settings.update(overrides)
    config = TeacherConfig.from_env(mode, **settings)
    return Teacher(config, sleep=waits.append) if waits is not None else Teacher(config)


def dead_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --- plain chat ---------------------------------------------------------------------------------------------------

def test_chat_round_trip_sends_system_prompt_and_key_and_counts_tokens(fake_openai):
    teacher = make_teacher(fake_openai, api_key=SECRET)
    fake_openai.enqueue(reply("Elizabeth is the second Bennet daughter."))
    r = teacher.chat("Who is Elizabeth?", system="Be brief.", temperature=0.2, max_tokens=50, seed=7)
    assert r.text == "Elizabeth is the second Bennet daughter."
    assert (r.model, r.finish_reason, r.cached) == ("fake-model", "stop", False)
    assert r.usage == {"prompt_tokens": 5, "completion_tokens": 6}
    sent = fake_openai.chat_requests[-1]
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is Elizabeth?"}]
    assert (sent.body["temperature"], sent.body["max_tokens"], sent.body["seed"]) == (0.2, 50, 7)
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert teacher.usage.calls == 1 and teacher.usage.prompt_tokens == 5 and teacher.usage.completion_tokens == 6


def test_empty_prompt_and_double_system_prompt_are_clear_errors(fake_openai):
    teacher = make_teacher(fake_openai)
    with pytest.raises(TeacherError, match="prompt is empty"):
        teacher.chat("   ")
    with pytest.raises(TeacherError, match="not both"):
        teacher.chat([{"role": "system", "content": "a"}, {"role": "user", "content": "b"}], system="c")
    assert fake_openai.chat_requests == []


# --- retries ------------------------------------------------------------------------------------------------------

def test_429_waits_as_long_as_retry_after_says(fake_openai):
    waits: list[float] = []
    teacher = make_teacher(fake_openai, waits)
    fake_openai.enqueue(rate_limit(retry_after=0.25), rate_limit(retry_after_ms=40), reply("ok"))
    assert teacher.chat("hi").text == "ok"
    assert len(fake_openai.chat_requests) == 3
    assert 0.25 <= waits[0] <= 0.25 * 1.1  # the server's wait, not our tiny backoff cap of 0.01 s
    assert 0.04 <= waits[1] <= 0.04 * 1.1


def test_5xx_is_retried_with_capped_exponential_backoff(fake_openai):
    waits: list[float] = []
    teacher = make_teacher(fake_openai, waits, backoff_base_s=0.004, backoff_max_s=0.01)
    fake_openai.enqueue(error(500), error(502), error(503), reply("finally"))
    assert teacher.chat("hi").text == "finally"
    assert len(waits) == 3
    assert 0.002 <= waits[0] <= 0.004 and 0.004 <= waits[1] <= 0.008 and 0.005 <= waits[2] <= 0.01


def test_timeouts_dropped_connections_and_malformed_bodies_are_retried(fake_openai):
    teacher = make_teacher(fake_openai, timeout_s=0.3)
    fake_openai.enqueue(slow(1.5, reply("too late")), drop(), malformed(), reply("made it"))
    r = teacher.chat("hi")
    assert r.text == "made it"
    assert len(fake_openai.chat_requests) == 4
    assert teacher.usage.calls == 1


def test_retries_give_up_with_one_line_error(fake_openai):
    teacher = make_teacher(fake_openai, max_attempts=3)
    fake_openai.enqueue(error(500, "boom"), error(500, "boom"), error(500, "boom\nsecond line"), reply("never"))
    with pytest.raises(TeacherError) as info:
        teacher.chat("hi")
    message = str(info.value)
    assert "\n" not in message and "500" in message and "gave up after 3 attempts" in message
    assert fake_openai.base_url in message
    assert len(fake_openai.chat_requests) == 3


def test_rejected_key_is_not_retried_and_says_which_settings_to_check(fake_openai):
    teacher = make_teacher(fake_openai, api_key=SECRET)
    fake_openai.enqueue(error(401, "Incorrect API key provided"))
    with pytest.raises(TeacherError, match=r"key rejected by http://127\.0\.0\.1:\d+/v1/chat/completions .*TEACHER_API_KEY/OPENAI_API_KEY") as info:
        teacher.chat("hi")
    assert SECRET not in str(info.value)
    assert len(fake_openai.chat_requests) == 1


def test_exhausted_quota_is_not_retried(fake_openai):
    teacher = make_teacher(fake_openai)
    fake_openai.enqueue(rate_limit(retry_after=0.01, code="insufficient_quota"))
    with pytest.raises(TeacherError, match="no credit left"):
        teacher.chat("hi")
    assert len(fake_openai.chat_requests) == 1


def test_unreachable_server_names_the_url_and_the_setting():
    url = dead_url()
    with pytest.raises(TeacherError, match="TEACHER_BASE_URL") as info:
        connect("endpoint", base_url=url)  # connecting asks the server for its models: fails fast
    assert url in str(info.value) and "\n" not in str(info.value)
    teacher = connect("endpoint", base_url=url, model="m", server_kind="llama.cpp")  # nothing to probe
    with pytest.raises(TeacherError, match=f"cannot reach the teacher at {url}/chat/completions: .*TEACHER=local"):
        teacher.chat("hi")


# --- configuration ------------------------------------------------------------------------------------------------

def test_openai_mode_without_key_says_to_set_it():
    with pytest.raises(TeacherError, match="set OPENAI_API_KEY"):
        TeacherConfig.from_env("openai")


def test_precedence_base_url_then_openai_key_then_local(monkeypatch):
    assert TeacherConfig.from_env().mode == "local"
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    c = TeacherConfig.from_env()
    assert (c.mode, c.base_url, c.model, c.server_kind) == ("openai", t.OPENAI_BASE_URL, "gpt-4o-mini", "openai")
    assert c.api_key == SECRET
    monkeypatch.setenv("TEACHER_BASE_URL", "http://localhost:11434/v1")
    c = TeacherConfig.from_env()
    assert (c.mode, c.base_url) == ("endpoint", "http://localhost:11434/v1")
    assert c.api_key == transport.PLACEHOLDER_KEY  # an OpenAI key is never sent to another host
    monkeypatch.setenv("TEACHER_API_KEY", "endpoint-key")
    assert TeacherConfig.from_env().api_key == "endpoint-key"
    monkeypatch.setenv("TEACHER", "replay")
    c = TeacherConfig.from_env()
    assert (c.mode, c.cache, c.model) == ("replay", "replay", t.DEFAULT_LOCAL_ALIAS)
    assert TeacherConfig.from_env("openai", model="gpt-4.1-mini").model == "gpt-4.1-mini"  # arguments beat env


def test_dotenv_file_is_read_but_real_environment_wins(monkeypatch, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"OPENAI_API_KEY={SECRET}\nTEACHER_MODEL=gpt-4.1-nano\nTEACHER_CACHE=record\n", encoding="utf-8")
    monkeypatch.setattr(settings, "ENV_FILE", env_file)
    c = TeacherConfig.from_env()
    assert (c.mode, c.model, c.cache, c.api_key) == ("openai", "gpt-4.1-nano", "record", SECRET)
    monkeypatch.setenv("TEACHER_MODEL", "gpt-4o")
    assert TeacherConfig.from_env().model == "gpt-4o"


def test_settings_validation_and_paths(monkeypatch):
    with pytest.raises(TeacherError, match="unknown teacher mode"):
        TeacherConfig.from_env("cloud")
    with pytest.raises(TeacherError, match="TEACHER_CACHE"):
        TeacherConfig.from_env("local", cache="sometimes")
    with pytest.raises(TeacherError, match="TEACHER_BASE_URL"):
        TeacherConfig.from_env("endpoint")
    monkeypatch.setenv("TEACHER_CACHE_PATH", "runs/x/cache.jsonl")
    assert TeacherConfig.from_env("replay").cache_path == settings.REPO_ROOT / "runs/x/cache.jsonl"
    monkeypatch.setenv("TEACHER_BASE_URL", "http://localhost:11434/v1")  # for the endpoint mode, not for local
    local = TeacherConfig.from_env("local", model="smollm2-135m")
    assert (local.local_model, local.model, local.server_kind, local.base_url) == ("smollm2-135m", None, "llama.cpp", None)
    with pytest.raises(TeacherError, match="no replay cache at .*missing.jsonl: record one with TEACHER=local TEACHER_CACHE=record"):
        connect("replay", cache_path="/nonexistent/missing.jsonl")


def test_key_never_in_repr_str_or_description(fake_openai):
    config = TeacherConfig.from_env("endpoint", base_url=fake_openai.base_url, model="m", api_key=SECRET)
    teacher = Teacher(config)
    for text in (repr(config), str(config), repr(teacher), teacher.describe()):
        assert SECRET not in text


# --- structured output --------------------------------------------------------------------------------------------

def test_openai_server_gets_json_schema_strict_when_the_schema_allows(fake_openai):
    teacher = make_teacher(fake_openai, server_kind="openai")
    fake_openai.enqueue(reply_json({"answer": "Yes.", "cited": ["ch01-p001"]}))
    r = teacher.structured("Q?", SCHEMA, max_tokens=99)
    assert r.data == {"answer": "Yes.", "cited": ["ch01-p001"]}
    body = fake_openai.chat_requests[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["max_completion_tokens"] == 99 and "max_tokens" not in body
    open_schema = {"type": "object", "properties": {"answer": {"type": "string"}}}  # not closed: strict would reject it
    teacher.structured("Q?", open_schema)
    assert fake_openai.chat_requests[-1].body["response_format"]["json_schema"]["strict"] is False


def test_llama_cpp_server_is_detected_and_gets_json_object_with_schema():
    with FakeOpenAI(owned_by="llamacpp") as fake:
        fake.json_schema_status = 500  # what llama.cpp does with json_schema: never sent here
        teacher = connect("endpoint", base_url=fake.base_url)  # model and kind come from GET /v1/models
        assert teacher.config.server_kind == "llama.cpp" and teacher.config.model == "fake-model"
        r = teacher.structured("Q?", SCHEMA)
        assert r.data == {"answer": "echo 1", "cited": ["ch01-p001"]}
        assert fake.chat_requests[0].body["response_format"] == {"type": "json_object", "schema": SCHEMA}
        assert len(fake.chat_requests) == 1


@pytest.mark.parametrize("status", [400, 422, 500])
def test_unknown_endpoint_is_asked_once_how_it_takes_a_schema_and_json_object_is_used_from_then_on(fake_openai, status):
    fake_openai.json_schema_status = status
    teacher = make_teacher(fake_openai, waits=[], server_kind=None)
    assert teacher.chat("hi").text and teacher.engine.strategy is None  # plain text needs no probe
    assert teacher.structured("Q1?", SCHEMA).data["cited"] == ["ch01-p001"]
    kinds = [r.body.get("response_format", {}).get("type") for r in fake_openai.chat_requests]
    assert kinds == [None, "json_schema", "json_object", "json_object"]  # the chat, the probe's two, the call
    teacher.structured("Q2?", SCHEMA)
    assert fake_openai.chat_requests[-1].body["response_format"]["type"] == "json_object"
    assert len(fake_openai.chat_requests) == 5 and teacher.engine.strategy == "json_object"  # no second probe
    assert "JSON asked for as json_object" in teacher.describe()


def test_unknown_endpoint_without_any_json_mode_gets_the_schema_in_the_prompt(fake_openai):
    fake_openai.json_schema_status = 400
    fake_openai.enqueue(error(400, "unsupported response_format type json_object"),  # the probe's second try
                        reply('Here you go: {"answer": "No.", "cited": ["ch01-p002"]}'))
    teacher = make_teacher(fake_openai, server_kind=None)
    r = teacher.structured("Q?", SCHEMA)
    assert r.data == {"answer": "No.", "cited": ["ch01-p002"]}
    last = fake_openai.chat_requests[-1].body
    assert "response_format" not in last
    assert last["messages"][-1]["content"].startswith("Q?\n\nReply with only a JSON value")
    assert '"minItems": 1' in last["messages"][-1]["content"]


def test_an_ordinary_400_is_not_mistaken_for_a_format_problem(fake_openai):
    teacher = make_teacher(fake_openai, server_kind=None)
    fake_openai.enqueue(reply("{}"), error(400, "context length exceeded"))  # the probe is answered: json_schema
    with pytest.raises(TeacherError, match="rejected the request \\(400\\): context length exceeded"):
        teacher.structured("Q?", SCHEMA)
    assert len(fake_openai.chat_requests) == 2  # the probe, then the one real request: not tried in another format


@pytest.mark.parametrize("text", [
    '```json\n{"answer": "A", "cited": ["ch01-p001"]}\n```',
    'Sure! Here is the JSON you asked for:\n{"answer": "A", "cited": ["ch01-p001"]}\nLet me know if you need more.',
    '{"answer": "A", "cited": ["ch01-p001",],}',
    '{"answer": "A\tB\nC", "cited": ["ch01-p001"]}',  # raw control characters, as small models write them
])
def test_loose_json_is_parsed(fake_openai, text):
    fake_openai.enqueue(reply(text))
    r = make_teacher(fake_openai, server_kind="llama.cpp").structured("Q?", SCHEMA)
    assert r.data["cited"] == ["ch01-p001"] and r.data["answer"].startswith("A")
    assert len(fake_openai.chat_requests) == 1


def test_invalid_output_is_asked_again_with_another_seed(fake_openai):
    fake_openai.enqueue(reply_json({"answer": "A", "cited": []}), reply_json({"answer": "A", "cited": ["ch01-p002"]}))
    r = make_teacher(fake_openai, server_kind="llama.cpp").structured("Q?", SCHEMA, seed=11)
    assert r.data["cited"] == ["ch01-p002"]
    assert [q.body["seed"] for q in fake_openai.chat_requests] == [11, 12]


def test_output_that_stays_invalid_raises_with_the_raw_reply(fake_openai):
    bad = ['{"answer": 3}', "I cannot answer that.", '{"answer": "A", "cited": ["ch09-p999"]}']
    fake_openai.enqueue(*(reply(b) for b in bad))
    with pytest.raises(StructuredOutputError) as info:
        make_teacher(fake_openai, server_kind="llama.cpp").structured("Q?", SCHEMA)
    err = info.value
    assert err.raw == bad[-1]
    assert "after 3 tries" in str(err) and "ch09-p999" in str(err) and "\n" not in str(err)
    assert len(fake_openai.chat_requests) == 3


def test_cut_off_json_says_to_raise_max_tokens(fake_openai):
    fake_openai.enqueue(*[reply('{"answer": "A long ans', finish_reason="length")] * 2)
    with pytest.raises(StructuredOutputError, match="cut off at max_tokens=20"):
        make_teacher(fake_openai, server_kind="llama.cpp").structured("Q?", SCHEMA, max_tokens=20, attempts=2)


def test_a_broken_schema_fails_before_any_call(fake_openai):
    with pytest.raises(ValueError, match="not valid JSON Schema"):
        make_teacher(fake_openai).structured("Q?", {"type": "object", "properties": {"a": {"type": "text"}}})
    assert fake_openai.chat_requests == []


# --- record and replay --------------------------------------------------------------------------------------------

def test_record_then_replay_with_the_server_gone(tmp_path):
    cache_path = tmp_path / "replay.jsonl"
    with FakeOpenAI(models=(t.DEFAULT_LOCAL_ALIAS,), owned_by="llamacpp") as fake:
        recorder = connect("endpoint", base_url=fake.base_url, api_key=SECRET, cache="record", cache_path=cache_path)
        fake.enqueue(reply("Mr. Bennet."), reply_json({"answer": "B", "cited": ["ch01-p002"]}))
        first = recorder.chat("Who is Jane's father?", seed=1)
        second = recorder.structured("Q?", SCHEMA, seed=1)
        again = recorder.chat("Who is Jane's father?", seed=1)  # record mode serves hits from the cache
        assert again.cached and again.text == "Mr. Bennet." and len(fake.chat_requests) == 2
        assert fake.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"
    lines = cache_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert SECRET not in cache_path.read_text(encoding="utf-8") and "127.0.0.1" not in cache_path.read_text(encoding="utf-8")
    entry = json.loads(lines[0])
    assert set(entry) == {"key", "model", "messages", "text", "finish_reason", "usage"}

    player = connect("replay", cache_path=cache_path)
    assert player.client is None
    r1 = player.chat("Who is Jane's father?", seed=1)
    r2 = player.structured("Q?", SCHEMA, seed=1)
    assert (r1.text, r1.cached, r1.model) == (first.text, True, t.DEFAULT_LOCAL_ALIAS)
    assert r2.data == second.data and r2.cached
    assert player.usage.calls == 2 and player.usage.cached_calls == 2 and player.usage.cost_usd == 0
    with pytest.raises(TeacherError, match=r"for model qwen2.5-coder-1.5b-instruct and the prompt \"Who is Jane's mother\?\": record it with TEACHER=local TEACHER_CACHE=record"):
        player.chat("Who is Jane's mother?", seed=1)
    with pytest.raises(TeacherError, match="no recorded reply"):
        player.chat("Who is Jane's father?", seed=2)  # another seed is another request


def test_replay_matches_whichever_json_mode_was_recorded(tmp_path, fake_openai):
    cache_path = tmp_path / "c.jsonl"
    recorder = make_teacher(fake_openai, server_kind="openai", model=t.DEFAULT_LOCAL_ALIAS, cache="record", cache_path=cache_path)
    recorded = recorder.structured("Q?", SCHEMA)
    assert fake_openai.chat_requests[-1].body["response_format"]["type"] == "json_schema"
    player = connect("replay", cache_path=cache_path)  # would ask llama.cpp-style, with json_object
    assert player.structured("Q?", SCHEMA).data == recorded.data


def test_cache_file_keeps_the_last_of_duplicate_keys_and_no_prompt_text(tmp_path):
    path = tmp_path / "c.jsonl"
    request = {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}], "temperature": 0.7}
    key = cache_key(request)
    ResponseCache(path).put(key, request, "first", "stop", {"prompt_tokens": 1, "completion_tokens": 1})
    ResponseCache(path).put(key, request, "second", "stop", {"prompt_tokens": 1, "completion_tokens": 1})
    with path.open("a", encoding="utf-8") as f:
        f.write('{"key": "torn')  # a writer killed mid-line
    cache = ResponseCache(path)
    assert cache.get(key)["text"] == "second" and len(cache) == 1
    stored = json.loads(path.read_text(encoding="utf-8").splitlines()[0])["messages"][0]
    assert "content" not in stored and stored["chars"] == 5000 and "x" * 20 not in path.read_text(encoding="utf-8")


def test_words_a_reply_copied_from_its_prompt_are_stored_as_references_and_come_back(tmp_path):
    path = tmp_path / "c.jsonl"
    source = "The keeper of the lighthouse counted the ships each dawn, and his sister sold herring."
    request = {"model": "m", "messages": [{"role": "user", "content": f"Passage: {source}\nWho counted?"}]}
    reply = '{"answer": "The keeper of the lighthouse counted the ships each dawn."}'
    ResponseCache(path).put(cache_key(request), request, reply, "stop", {"prompt_tokens": 1, "completion_tokens": 1})
    assert "counted the ships" not in path.read_text(encoding="utf-8")
    assert ResponseCache(path).get(cache_key(request), request)["text"] == reply


def test_cache_key_covers_what_changes_the_reply_and_nothing_else():
    config = TeacherConfig(mode="endpoint", base_url="http://a/v1", model="m", api_key=SECRET)
    msgs = [{"role": "user", "content": "hi"}]
    base = cache_key(build_request(config, msgs, seed=1))
    assert cache_key(build_request(config, msgs, seed=1, timeout=3, extra_headers={"x": "y"})) == base
    assert cache_key(build_request(TeacherConfig(mode="endpoint", base_url="http://b/v1", model="m"), msgs, seed=1)) == base
    for changed in (dict(seed=2), dict(seed=1, temperature=0.1), dict(seed=1, max_tokens=9), dict(seed=1, top_p=0.5)):
        assert cache_key(build_request(config, msgs, **changed)) != base
    assert cache_key(build_request(config, msgs + [{"role": "user", "content": "more"}], seed=1)) != base
    assert cache_key(build_request(config, msgs, seed=1, schema=SCHEMA, strategy="json_schema")) == \
        cache_key(build_request(config, msgs, seed=1, schema=SCHEMA, strategy="json_object")) != base


# --- usage and cost -----------------------------------------------------------------------------------------------

def test_cost_per_call_and_run_totals(fake_openai, monkeypatch, tmp_path):
    fake_openai.enqueue(reply("one two three"), reply("four five"))
    teacher = make_teacher(fake_openai, server_kind="openai", model="gpt-4o-mini-2024-07-18",
                           cache="record", cache_path=tmp_path / "c.jsonl")
    a = teacher.chat("a b c d")
    b = teacher.chat("e f")
    assert a.cost_usd == pytest.approx((4 * 0.15 + 3 * 0.60) / 1e6)
    assert b.cost_usd == pytest.approx((2 * 0.15 + 2 * 0.60) / 1e6)
    cached = teacher.chat("a b c d")
    assert cached.cached and cached.cost_usd == 0
    u = teacher.usage
    assert (u.calls, u.cached_calls, u.prompt_tokens, u.completion_tokens) == (3, 1, 10, 8)
    assert u.cost_usd == pytest.approx(a.cost_usd + b.cost_usd)
    assert "3 calls (1 from cache)" in str(u)


def test_price_table_overrides():
    assert estimate_cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)
    assert estimate_cost("qwen2.5-coder-1.5b-instruct", 10**6, 10**6) == 0
    assert estimate_cost("my-model", 2_000_000, 0, prices={"my-model": (1.0, 2.0)}) == pytest.approx(2.0)


def test_price_table_from_environment(monkeypatch):
    monkeypatch.setenv("TEACHER_PRICES", '{"gpt-4o": {"input": 1, "output": 1}, "llama3": [0.5, 0.5]}')
    assert estimate_cost("gpt-4o", 10**6, 10**6) == pytest.approx(2.0)
    assert estimate_cost("llama3:8b", 10**6, 0) == pytest.approx(0.5)
    monkeypatch.setenv("TEACHER_PRICES", "cheap")
    with pytest.raises(TeacherError, match="TEACHER_PRICES must be JSON"):
        estimate_cost("gpt-4o", 1, 1)


def test_local_teacher_costs_nothing_and_smollm2_is_flagged(fake_openai):
    fake_openai.enqueue(reply("hello there"))
    teacher = Teacher(TeacherConfig(mode="local", base_url=fake_openai.base_url, model="gpt-4o", server_kind="llama.cpp"))
    assert teacher.chat("hi").cost_usd == 0
    assert "(embedded llama.cpp)" in teacher.describe()
    small = Teacher(TeacherConfig(mode="local", base_url=fake_openai.base_url, model="smollm2-135m-instruct"))
    assert "content is weak" in small.describe() and "TEACHER_LOCAL_MODEL" in small.describe()
    assert "content is weak" not in teacher.describe()


def test_check_reports_where_which_model_and_the_reply(fake_openai):
    fake_openai.enqueue(reply("Jane Austen wrote it."))
    result = t.check("endpoint", base_url=fake_openai.base_url)
    assert result["reply"] == "Jane Austen wrote it." and result["model"] == "fake-model"
    assert result["base_url"] == fake_openai.base_url and result["cached"] is False
    assert fake_openai.chat_requests[-1].body["temperature"] == 0


# --- pure helpers -------------------------------------------------------------------------------------------------

def test_retry_after_forms_and_backoff_bounds():
    import email.utils
    import time

    assert wire._retry_after({"retry-after-ms": "250"}) == pytest.approx(0.25)
    assert wire._retry_after({"retry-after": "3"}) == 3
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= wire._retry_after({"retry-after": in_a_minute}) <= 60
    assert wire._retry_after({}) is None
    assert wire.retry_delay(1, 500.0, max_retry_after_s=120) <= 120 * 1.1  # a silly Retry-After is capped
    assert all(wire.retry_delay(n, None, base_s=0.5, cap_s=4) <= 4 for n in range(1, 20))


def test_parse_json_loose_and_validate_edges():
    assert parse_json_loose('[1, 2,]') == [1, 2]
    assert parse_json_loose('Note [draft]: {"a": "x,]"}') == {"a": "x,]"}
    with pytest.raises(ValueError, match="no JSON object or array"):
        parse_json_loose("I'd rather not.")
    assert validate({"answer": "x", "cited": ["ch01-p001"]}, SCHEMA) == []
    problems = validate({"answer": "x", "cited": ["nope"], "extra": 1}, SCHEMA)
    assert any(p.startswith("$.cited[0]:") for p in problems) and any("extra" in p for p in problems)


# --- classroom: replay what was recorded, a live teacher for the rest ----------------------------------------------

def record_two(cache_path) -> None:
    """A replay cache holding one chat and one structured reply, recorded under the embedded teacher's model name."""
    with FakeOpenAI(models=(t.DEFAULT_LOCAL_ALIAS,), owned_by="llamacpp") as fake:
        recorder = connect("endpoint", base_url=fake.base_url, cache="record", cache_path=cache_path)
        fake.enqueue(reply("Mr. Bennet."), reply_json({"answer": "B", "cited": ["ch01-p002"]}))
        recorder.chat("Who is Jane's father?", seed=1)
        recorder.structured("Q?", SCHEMA, seed=1)


def test_classroom_is_a_mode_that_looks_up_the_recorded_model(monkeypatch, tmp_path):
    assert "classroom" in t.MODES
    monkeypatch.setenv("TEACHER", "classroom")
    monkeypatch.setenv("TEACHER_MODEL", "gpt-4o-mini")  # for the live teacher, not for the lookups
    c = TeacherConfig.from_env()
    assert (c.mode, c.cache, c.model) == ("classroom", "replay", t.DEFAULT_LOCAL_ALIAS)
    record_two(tmp_path / "c.jsonl")
    teacher = connect(cache_path=tmp_path / "c.jsonl")
    assert teacher.client is None and "classroom" in teacher.describe()
    assert (teacher.replayed, teacher.live_calls) == (0, 0)


def test_classroom_replays_what_was_recorded_and_asks_the_live_teacher_the_rest(monkeypatch, tmp_path, capfd):
    cache_path = tmp_path / "c.jsonl"
    record_two(cache_path)
    recorded = cache_path.read_bytes()
    with FakeOpenAI(models=("live-model",)) as live:
        monkeypatch.setenv("TEACHER_BASE_URL", live.base_url)
        teacher = connect("classroom", cache_path=cache_path)
        assert teacher.chat("Who is Jane's father?", seed=1).text == "Mr. Bennet."
        assert teacher.structured("Q?", SCHEMA, seed=1).data == {"answer": "B", "cited": ["ch01-p002"]}
        assert live.requests == [] and teacher.engine._live is None  # nothing missed: the live teacher is not even asked

        # the live teacher is a server of unknown kind: before its first structured call it is asked how it takes one
        live.enqueue(reply("Mrs. Bennet."), reply("{}"), reply_json({"answer": "C", "cited": ["ch01-p001"]}),
                     reply("Lydia."))
        edited = teacher.chat("Who is Jane's mother?", seed=1)  # a prompt the student changed
        assert (edited.text, edited.cached, edited.model) == ("Mrs. Bennet.", False, "live-model")
        assert teacher.structured("Q, edited?", SCHEMA, seed=1).data == {"answer": "C", "cited": ["ch01-p001"]}
        teacher.chat("Who is the youngest?")
        sent = [r.body for r in live.chat_requests]
        assert [m["content"] for m in sent[0]["messages"]] == ["Who is Jane's mother?"] and sent[0]["model"] == "live-model"
        assert (teacher.replayed, teacher.live_calls) == (2, 3) and len(sent) == 4  # 3 calls and the probe
        assert teacher.usage.calls == 5 and teacher.usage.cached_calls == 2
    said = [line for line in capfd.readouterr().err.splitlines() if line.startswith("classroom:")]
    assert said == [f"{engine.CLASSROOM_LIVE}: model live-model at {live.base_url} (endpoint)"]  # once, at the first miss
    assert cache_path.read_bytes() == recorded  # live replies are not written into the shared cache


def test_classroom_without_a_live_teacher_says_how_to_get_one(monkeypatch, tmp_path):
    from lecture_utils.teacher import embedded as local_teacher

    cache_path = tmp_path / "c.jsonl"
    record_two(cache_path)
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(tmp_path / "no-models"))  # no embedded model installed
    starts = []
    real = local_teacher.ensure_server
    monkeypatch.setattr(local_teacher, "ensure_server", lambda **kw: starts.append(kw) or real(**kw))
    teacher = connect("classroom", cache_path=cache_path)
    assert teacher.chat("Who is Jane's father?", seed=1).text == "Mr. Bennet."
    assert starts == []  # started lazily, only at the first miss
    for prompt in ("Who is Jane's mother?", "Who is Kitty?"):
        with pytest.raises(TeacherError) as e:
            teacher.chat(prompt, seed=1)
        message = str(e.value)
        assert message.startswith("needs a live teacher: the prompt \"" + prompt)
        assert "(no live teacher now: no local teacher model is installed" in message and "\n" not in message
        assert "TEACHER_BASE_URL" in message and "OPENAI_API_KEY" in message and "teacher install" in message
    assert len(starts) == 1  # the missing teacher is looked for once, not at every miss
    assert (teacher.replayed, teacher.live_calls) == (1, 0)


def test_classroom_live_teacher_that_cannot_be_reached_needs_a_live_teacher(monkeypatch, tmp_path):
    cache_path = tmp_path / "c.jsonl"
    record_two(cache_path)
    monkeypatch.setenv("TEACHER_BASE_URL", dead_url())
    teacher = connect("classroom", cache_path=cache_path)
    with pytest.raises(TeacherError, match=r"^needs a live teacher: .*cannot reach the teacher at"):
        teacher.structured("Q, edited?", SCHEMA, seed=1)


# --- the real embedded teacher ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_embedded_teacher_round_trip():
    pytest.importorskip("llama_cpp")
    from lecture_utils.teacher import gguf as models

    if "smollm2-135m" not in {name for name in models.RECIPES} or not models.model_path("smollm2-135m").exists():
        pytest.skip("SmolLM2 is not installed: python -m lecture_utils teacher install smollm2-135m")
    teacher = connect("local", model="smollm2-135m")
    assert "embedded llama.cpp" in teacher.describe() and "content is weak" in teacher.describe()
    r = teacher.chat("Say hello in one word.", max_tokens=8, temperature=0, seed=1)
    assert r.text.strip() and r.usage["completion_tokens"] > 0 and r.cost_usd == 0
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    s = teacher.structured("Name one colour. Reply in JSON.", schema, max_tokens=60, temperature=0, seed=1)
    assert isinstance(s.data["colour"], str)
    assert teacher.usage.calls == 2
    # llama-cpp-python refuses OpenAI's json_schema with a 500; an unknown endpoint must take that as "try json_object"
    request = build_request(teacher.config, [{"role": "user", "content": "hi"}], max_tokens=4, schema=schema,
                            strategy="json_schema")
    with pytest.raises(Exception) as info:
        transport.make_client(teacher.config).chat.completions.create(**request)
    assert wire.is_format_rejection(info.value)


def test_calls_that_start_together_on_an_unknown_server_all_wait_for_one_probe(fake_openai):
    import asyncio

    fake_openai.json_schema_status = 400  # json_schema refused: json_object is what this server takes
    config = TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake-model", cache="off")

    async def four_at_once():
        e = engine.Engine(config, concurrency=4)
        try:
            return await asyncio.gather(*(e.complete([{"role": "user", "content": f"Q{i}?"}], schema=SCHEMA,
                                                     max_tokens=50) for i in range(4)))
        finally:
            await e.aclose()

    asyncio.run(four_at_once())
    kinds = [r.body.get("response_format", {}).get("type", "prompt") for r in fake_openai.chat_requests]
    assert kinds == ["json_schema", "json_object"] + ["json_object"] * 4  # one probe; no call sent on a guess


def test_record_mode_asks_the_live_teacher_again_after_a_recorded_failure(fake_openai, tmp_path):
    path = tmp_path / "c.jsonl"
    fake_openai.enqueue(reply("not json"))
    once = make_teacher(fake_openai, cache="record", cache_path=path, structured_attempts=1)
    with pytest.raises(StructuredOutputError):
        once.structured("Q?", SCHEMA)  # recorded: an unusable reply for the first seed
    again = make_teacher(fake_openai, cache="record", cache_path=path)
    assert again.structured("Q?", SCHEMA).data["cited"] == ["ch01-p001"]  # seed 1, asked live and recorded
    assert [r.body.get("seed") for r in fake_openai.chat_requests] == [None, 1]
    replay = make_teacher(fake_openai, mode="replay", cache="replay", cache_path=path)
    assert replay.structured("Q?", SCHEMA).data["cited"] == ["ch01-p001"]  # and the replay finds both
    assert len(fake_openai.chat_requests) == 2
