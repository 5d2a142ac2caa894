"""The teacher, as the notebooks use it: one call at a time, each one answered before the next line runs.

    teacher = connect()                      # TEACHER_BASE_URL, else OPENAI_API_KEY, else the embedded teacher
    teacher.chat("Say hi").text
    teacher.structured(prompt, schema).data  # parsed and checked against the JSON schema
    teacher.usage                            # calls, tokens and estimated cost so far

Teacher is a thin sync wrapper around engine.Engine, the one code path for every call the kit makes (cache,
replay, retries, structured output); it runs the engine on an event loop of its own, in a background thread, so it
works the same in a script, in Jupyter (which already has a loop) and from several threads at once.

TEACHER=classroom replays what the replay cache holds and sends only the prompts it does not hold (a student edited
one) to the live teacher the environment configures, started at the first such prompt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lecture_utils import settings
from lecture_utils.settings import CACHE_MODES, DEFAULT_CACHE_PATH, MODES, REPLAY_MODES
from lecture_utils.teacher.engine import Engine, Reply
from lecture_utils.teacher.json_reply import check_schema, valid_json
from lecture_utils.teacher.transport import PLACEHOLDER_KEY
from lecture_utils.teacher.wire import AnswerError, CallError, StructuredOutputError, TeacherError

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_LOCAL_ALIAS = "qwen2.5-coder-1.5b-instruct"  # what the embedded server calls its default model
CONNECTIONS = 32  # calls in flight at once through one Teacher (threads may share it)


# --- configuration ----------------------------------------------------------------------------------------------


@dataclass
class TeacherConfig:
    """Where the teacher lives and how to talk to it. The key is kept out of repr, logs and the cache."""

    mode: str = "local"  # local | openai | endpoint | replay | classroom
    base_url: str | None = None  # filled by connect() for "local"
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    cache: str = "off"  # off | record | replay
    cache_path: Path = DEFAULT_CACHE_PATH
    local_model: str | None = None  # recipe name or .gguf path for the embedded teacher
    server_kind: str | None = None  # "openai" | "llama.cpp" | None (unknown: structured output is probed)
    timeout_s: float = 120.0
    max_attempts: int = 6  # per call, for 429s, 5xx, timeouts and dropped connections
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0  # longest Retry-After we wait for
    structured_attempts: int = 3  # fresh tries when the JSON is invalid
    prices: dict[str, tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TeacherError(f"unknown teacher mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.cache not in CACHE_MODES:
            raise TeacherError(f"unknown TEACHER_CACHE {self.cache!r}: use one of {', '.join(CACHE_MODES)}")
        self.cache_path = Path(self.cache_path)

    @classmethod
    def from_env(cls, mode: str | None = None, **overrides: Any) -> "TeacherConfig":
        """Settings from arguments, then the environment, then .env in the repo root, then defaults.

        Without a mode: an explicit base URL means "endpoint", else an OpenAI key means "openai", else "local".
        """
        env = settings.environment()  # a real environment variable beats .env

        def get(name: str) -> str | None:
            return settings.get(name, env=env)

        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            known = [f.name for f in dataclasses.fields(cls)]
            raise TeacherError(f"unknown teacher setting(s) {sorted(unknown)}: known are {known}")
        given = {k: v for k, v in overrides.items() if v is not None}
        mode = mode or given.pop("mode", None) or get("TEACHER")
        if mode in ("auto", ""):
            mode = None
        explicit_url = given.pop("base_url", None)
        base_url = explicit_url or get("TEACHER_BASE_URL")
        teacher_key = given.pop("api_key", None) or get("TEACHER_API_KEY")
        openai_key = get("OPENAI_API_KEY")
        if mode is None:
            mode = "endpoint" if base_url else "openai" if (teacher_key or openai_key) else "local"
        cache = given.pop("cache", None) or get("TEACHER_CACHE") or "off"
        if mode in REPLAY_MODES:
            cache = "replay"
        # the same file whether run from notebooks/ or the repo root
        cache_path = settings.repo_path(given.pop("cache_path", None) or get("TEACHER_CACHE_PATH") or DEFAULT_CACHE_PATH)
        model = given.pop("model", None)
        local_model = given.pop("local_model", None)
        fields: dict[str, Any] = {"cache": cache, "cache_path": cache_path}
        if get("TEACHER_TIMEOUT"):
            try:
                fields["timeout_s"] = settings.get_float("TEACHER_TIMEOUT", env)
            except settings.SettingError as e:
                raise TeacherError(f"{e} of seconds") from None

        if mode == "openai":
            key = teacher_key or openai_key
            if not key and cache != "replay":
                raise TeacherError("TEACHER=openai needs a key: set OPENAI_API_KEY (or TEACHER_API_KEY) "
                                   "in the environment or in .env")
            fields.update(base_url=base_url or OPENAI_BASE_URL, api_key=key, server_kind="openai",
                            model=model or get("TEACHER_MODEL") or OPENAI_DEFAULT_MODEL)
        elif mode == "endpoint":
            if not base_url:
                raise TeacherError("TEACHER=endpoint needs TEACHER_BASE_URL, e.g. http://localhost:11434/v1 for Ollama")
            on_openai = "api.openai.com" in base_url
            # an OpenAI key only ever goes to OpenAI; other endpoints get TEACHER_API_KEY or a placeholder
            key = teacher_key or (openai_key if on_openai else None) or PLACEHOLDER_KEY
            fields.update(base_url=base_url, api_key=key, model=model or get("TEACHER_MODEL"),
                            server_kind="openai" if on_openai else None)
        elif mode == "local":
            # MODEL picks which local model to serve; the name it is served under comes from the server.
            # TEACHER_BASE_URL belongs to the endpoint mode: only an explicit base_url means "already running".
            fields.update(base_url=explicit_url, api_key=PLACEHOLDER_KEY, server_kind="llama.cpp",
                            local_model=local_model or model or get("TEACHER_LOCAL_MODEL"),
                            timeout_s=fields.get("timeout_s", 600.0))  # a 1.5B model on two cores is slow
        elif mode == "classroom":
            # look up under the model the shipped cache was recorded with; TEACHER_MODEL is for the live teacher
            fields.update(model=model or DEFAULT_LOCAL_ALIAS, local_model=local_model or get("TEACHER_LOCAL_MODEL"))
        else:  # replay
            fields.update(model=model or get("TEACHER_MODEL") or DEFAULT_LOCAL_ALIAS,
                            local_model=local_model or get("TEACHER_LOCAL_MODEL"))
        fields.update(given)
        return cls(mode=mode, **fields)


def as_messages(messages_or_prompt: str | list[dict], system: str | None = None) -> list[dict]:
    """A prompt string or a message list, with the system prompt in front."""
    if isinstance(messages_or_prompt, str):
        messages = [{"role": "user", "content": messages_or_prompt}]
    else:
        messages = [dict(m) for m in messages_or_prompt]
    if not messages or not any(str(m.get("content") or "").strip() for m in messages):
        raise TeacherError("the prompt is empty: pass some text or a list of messages")
    if system:
        if messages[0].get("role") == "system":
            raise TeacherError("give the system prompt either as system= or as the first message, not both")
        messages.insert(0, {"role": "system", "content": system})
    return messages


class Teacher:
    """Talks to one OpenAI-compatible server (or only to the replay cache) and keeps the bill."""

    def __init__(self, config: TeacherConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if config.cache == "replay" and config.model is None:
            config = dataclasses.replace(config, model=DEFAULT_LOCAL_ALIAS)
        live = _live_engine(config) if config.mode == "classroom" else None
        # tests pass a recorder as `sleep` to see the waits; the real waits are the event loop's
        self.engine = Engine(config, concurrency=CONNECTIONS, sleep=None if sleep is time.sleep else sleep, live=live)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="teacher-loop", daemon=True)
        self._thread.start()
        try:
            self.run(self.engine.start())
        except BaseException:
            self.close()
            raise

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the teacher's event loop and return its result (qa.answer_item on one item, say).
        A failed call raises wire.CallError (a TeacherError) with its reason kept as `.reason`."""
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()
        except CallError as e:
            raise e.with_traceback(None) from None

    # the engine's state, read through: config, usage (calls, tokens, cost), cache, client (None on replay), and in
    # classroom mode how many answers were replayed and how many came from the live teacher
    config = property(lambda self: self.engine.config)
    usage = property(lambda self: self.engine.usage)
    cache = property(lambda self: self.engine.cache)
    client = property(lambda self: self.engine.client)
    replayed = property(lambda self: self.engine.replayed)
    live_calls = property(lambda self: self.engine.live_calls)

    # --- public API ---
    def chat(self, messages_or_prompt: str | list[dict], *, system: str | None = None, temperature: float = 0.7,
             max_tokens: int = 512, seed: int | None = None, **params: Any) -> Reply:
        """A text reply."""
        messages = as_messages(messages_or_prompt, system)
        return self.run(self.engine.complete(messages, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                              **params))

    def structured(self, messages_or_prompt: str | list[dict], schema: dict, *, system: str | None = None,
                   temperature: float = 0.7, max_tokens: int = 1024, seed: int | None = None,
                   attempts: int | None = None, accept: Callable[[Reply], Any] | None = None,
                   **params: Any) -> Reply:
        """A reply whose `.data` is parsed JSON valid against `schema`; invalid output is asked for again
        (with another seed), then raises StructuredOutputError with the last raw text.

        `accept(reply)`, when given, turns a reply into `.data` instead (notebook 3's grounded answer makes its QAPair
        there): an AnswerError it raises is asked for again when `.retryable`, and raised at once when not (a
        refusal). The loop is the engine's (Engine.complete's tries), the one the factory uses too."""
        check_schema(schema)  # a broken schema fails now, before any call
        messages = as_messages(messages_or_prompt, system)
        attempts = attempts or self.config.structured_attempts
        try:
            return self.run(self.engine.complete(messages, schema=schema, temperature=temperature,
                                                 max_tokens=max_tokens, seed=seed, tries=attempts,
                                                 accept=accept or (lambda reply: valid_json(reply.text, schema)),
                                                 **params))
        except AnswerError as e:
            if not e.retryable:
                raise
            problem, reply = e.detail or e.reason, e.reply
            if reply is not None and reply.finish_reason == "length":
                problem = f"the reply was cut off at max_tokens={max_tokens} ({problem}); raise max_tokens"
            raise StructuredOutputError(
                f"no valid JSON for the schema after {attempts} tries from {self.config.model}: {problem} (the raw "
                "reply is in .raw; try a stronger teacher or a simpler schema)", raw=reply.text if reply else "") from None

    def describe(self) -> str:
        """Which model answers, and where; a warning when it is the tiny SmolLM2."""
        return self.engine.describe()

    def __repr__(self) -> str:
        return f"Teacher({self.describe()})"

    def __enter__(self) -> "Teacher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self.run(self.engine.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()


def _live_engine(config: TeacherConfig) -> Callable[[], Engine]:
    """Classroom: how to build the live teacher, from TEACHER_BASE_URL or the keys whatever TEACHER says; nothing
    it answers is recorded. Called at the first prompt the replay cache does not hold."""
    def make() -> Engine:
        live = resolve("auto", cache="off", local_model=config.local_model,
                       model=None if config.model == DEFAULT_LOCAL_ALIAS else config.model)
        return Engine(live, concurrency=CONNECTIONS)

    return make


def resolve(mode: str | None = None, **overrides: Any) -> TeacherConfig:
    """The TeacherConfig from the environment and `overrides`; mode "local" starts the embedded llama.cpp server."""
    config = TeacherConfig.from_env(mode, **overrides)
    if config.mode == "local" and not config.base_url and config.cache != "replay":
        try:
            from lecture_utils.teacher import embedded
        except ImportError as e:
            raise TeacherError(f"the embedded teacher is not available ({e}): run `make lab` to set it up, "
                               "or set TEACHER_BASE_URL or OPENAI_API_KEY") from None
        server = embedded.ensure_server(model=config.local_model)
        config = dataclasses.replace(config, base_url=server.base_url, model=config.model or server.model_alias)
    return config


def connect(mode: str | None = None, **overrides: Any) -> Teacher:
    """A Teacher from the environment and `overrides`; mode "local" starts the embedded llama.cpp server."""
    return Teacher(resolve(mode, **overrides))


def check(mode: str | None = None, prompt: str = "In one sentence: what is an instruction dataset?",
          **overrides: Any) -> dict:
    """One real round trip to the configured teacher (the CLI's `teacher check`): where, which model, the reply."""
    if (mode or overrides.get("mode")) != "replay":
        overrides.setdefault("cache", "off")  # a check must reach the server, not the cache
    teacher = connect(mode, **overrides)
    reply = teacher.chat(prompt, max_tokens=80, temperature=0)
    return {"teacher": teacher.describe(), "mode": teacher.config.mode, "base_url": teacher.config.base_url,
            "model": reply.model, "reply": reply.text.strip(), "latency_s": round(reply.latency_s, 2),
            "usage": reply.usage, "cached": reply.cached}
