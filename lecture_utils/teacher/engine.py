"""The engine: every call the kit makes to the teacher goes through Engine.complete().

    engine = Engine(config, concurrency=32)
    await engine.start()                                     # asks an unknown endpoint for its model and kind
    reply = await engine.complete(messages, schema=schema)   # cache, replay, retries, structured output
    await engine.aclose()

In order, one call: the record/replay cache (TEACHER=classroom sends what it does not hold to the live teacher),
the requests- and tokens-per-minute budgets, at most `concurrency` requests in flight, then retries for 429s (after
their Retry-After), 5xx, timeouts, dropped connections and malformed bodies. A structured call asks in the server's
way of taking a JSON schema (json_schema, json_object+schema, or the schema in the prompt), settled once.
`accept(reply)` lets the caller check a reply: an AnswerError marked retryable asks again, with another seed, while
`tries` are left.

teacher.client.Teacher wraps an Engine for notebooks (one call at a time, sync); the factory runs one for thousands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import openai

from lecture_utils.teacher.budgets import SpendCap, TokenBucket
from lecture_utils.teacher.cache import ResponseCache
from lecture_utils.teacher.prices import cost_in, price_table
from lecture_utils.teacher.transport import RawChat, ShardedTransport, make_client
from lecture_utils.teacher.wire import (
    STRATEGY_CHAIN,
    AnswerError,
    CallError,
    TeacherError,
    affects_every_item,
    build_request,
    cache_key,
    classify_error,
    failure_reason,
    is_format_rejection,
    prompt_start,
    reply_parts,
    retry_delay,
    schema_strategies,
)

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English; good enough for budgets and estimates
# What a classroom teacher says at its first unrecorded prompt, and how its error starts when no live teacher is there
# (the grader looks for both in a student's notebook outputs).
CLASSROOM_LIVE = "classroom: a prompt was not recorded (edited?), asking the live teacher"
NEEDS_LIVE = "needs a live teacher:"


@dataclass
class Reply:
    """One answer from the teacher; `.data` is what structured() parsed, or what `accept` returned."""

    text: str
    model: str
    finish_reason: str
    usage: dict  # prompt_tokens, completion_tokens of this call
    cached: bool = False
    latency_s: float = 0.0
    cost_usd: float = 0.0  # 0 when it came from the cache
    data: Any = None
    refusal: str | None = None  # the server declined (OpenAI's message.refusal); the text then repeats it


@dataclass
class Usage:
    """Running totals for one engine."""

    calls: int = 0  # replies, from the server or the cache
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    seconds: float = 0.0  # the teacher's time: each live call's latency, or what a replayed call took when recorded
    untimed: int = 0  # replayed calls recorded before their time was kept (so `seconds` is a lower bound)

    def __str__(self) -> str:
        return (f"{self.calls} calls ({self.cached_calls} from cache), {self.prompt_tokens:,} prompt + "
                f"{self.completion_tokens:,} completion tokens, about ${self.cost_usd:.4f}")


def _timed(reply: Reply) -> dict:
    """The usage a recording keeps: the tokens, and how long the call took (so a replay can report teacher time)."""
    return {**reply.usage, "seconds": round(reply.latency_s, 2)}


class Engine:
    """One teacher (a TeacherConfig), its cache, its connections and its budgets, for any number of calls."""

    def __init__(self, config: Any, *, concurrency: int = 8, timeout_s: float | None = None,
                 max_attempts: int | None = None, backoff: tuple[float, float] | None = None,
                 rpm: float | None = None, tpm: float | None = None,
                 sleep: Callable[[float], Any] | None = None, live: Callable[[], "Engine"] | None = None,
                 cap: SpendCap | None = None) -> None:
        self.config = config
        self.cap = cap
        self.replay = config.cache == "replay"
        self.cache = ResponseCache(config.cache_path) if config.cache != "off" else None
        self.usage = Usage()
        self.prices = price_table(config.prices)
        self.timeout_s = timeout_s or config.timeout_s
        self.max_attempts = max(1, max_attempts or config.max_attempts)
        self.backoff = backoff or (config.backoff_base_s, config.backoff_max_s)
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self.sem = asyncio.Semaphore(concurrency)
        self._sleep = sleep or asyncio.sleep
        self._make_live = live  # classroom: builds the live engine for prompts the cache does not hold
        self._live: Engine | None = None
        self._live_problem = ""
        self._live_lock = asyncio.Lock()
        self.replayed = 0  # classroom: answers that came from the replay cache
        self.live_calls = 0  # classroom: answers from the live teacher
        self.client: Any = None
        self.chat: Any = None
        if self.replay:
            if not config.cache_path.exists():
                raise TeacherError(f"no replay cache at {config.cache_path}: record one with TEACHER=local "
                                   "TEACHER_CACHE=record, or point TEACHER_CACHE_PATH at one")
        else:  # one client for the engine's life; its pools hold `concurrency` connections
            http = openai.DefaultAsyncHttpxClient(transport=ShardedTransport(concurrency))
            self.client = make_client(config, async_=True, http_client=http)
            self.chat = RawChat(self.client, http)
        self.strategy: str | None = None  # how the server takes a schema: settled once (start or probe_strategy)
        self._probe_lock = asyncio.Lock()
        self._set_strategy()

    def _set_strategy(self) -> None:
        # replay has no server to ask; the cache key treats json_schema and json_object alike
        strategies = schema_strategies(self.config.server_kind or ("llama.cpp" if self.replay else None))
        self.strategy = strategies[0] if len(strategies) == 1 else None

    async def start(self) -> "Engine":
        """Ask an unknown endpoint for its models: fills in the model name and spots llama.cpp servers."""
        c = self.config
        if self.client is not None and (c.model is None or c.server_kind is None):
            try:
                models = list((await self.client.models.list()).data)
            except Exception as exc:  # noqa: BLE001 - reported below, or left for the first call
                retryable, _, message = classify_error(exc)
                unreachable = isinstance(exc, openai.APIConnectionError) and not retryable
                if unreachable or isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
                    raise TeacherError(message) from None
                if c.model is None:
                    raise TeacherError(f"could not list the models at {c.base_url} ({message}): "
                                       "set TEACHER_MODEL") from None
                models = None
            if models is not None:
                changes: dict[str, Any] = {}
                if c.model is None:
                    if not models:
                        raise TeacherError(f"{c.base_url} lists no models: set TEACHER_MODEL")
                    changes["model"] = models[0].id
                if c.server_kind is None and {getattr(m, "owned_by", "") for m in models} & {"llamacpp", "me"}:
                    changes["server_kind"] = "llama.cpp"  # llama.cpp's server and llama-cpp-python's say so
                self.config = dataclasses.replace(c, **changes)
                self._set_strategy()
        if self.config.model is None:
            raise TeacherError(f"no model name for {self.config.base_url}: set TEACHER_MODEL")
        return self

    async def probe_strategy(self) -> str:
        """How this server takes a JSON schema: known from its kind (OpenAI, llama.cpp, a replay), or settled once,
        before the first structured call, with a tiny request to a server of unknown kind (an Ollama, vLLM or LM
        Studio endpoint): json_schema, else json_object, else the schema in the prompt. `strategy` never changes
        after that, and describe() says which it is."""
        async with self._probe_lock:
            if self.strategy is None:
                schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
                messages = [{"role": "user", "content": 'Reply with the JSON {"ok": true}.'}]
                found = STRATEGY_CHAIN[-1]
                for strategy in STRATEGY_CHAIN[:-1]:
                    request = build_request(self.config, messages, temperature=0.0, max_tokens=20, schema=schema,
                                            strategy=strategy)
                    try:
                        await self.chat(request, self.timeout_s)
                    except Exception as exc:  # noqa: BLE001 - anything but a format rejection is the items' business
                        if is_format_rejection(exc):
                            continue
                    found = strategy
                    break
                self.strategy = found  # set once, when settled: a call waiting on the lock never sees a guess
        return self.strategy

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self._live is not None:
            await self._live.aclose()

    def describe(self) -> str:
        """Which model answers, and where; a warning when it is the tiny SmolLM2."""
        c = self.config
        if c.mode == "classroom":
            text = (f"model {c.model} replayed from {c.cache_path} (classroom: a prompt that was not recorded goes to "
                    "the live teacher)")
        elif c.cache == "replay":
            text = f"model {c.model} replayed from {c.cache_path} (replay: no calls)"
        else:
            label = {"local": "embedded llama.cpp", "openai": "OpenAI"}.get(c.mode, "endpoint")
            if c.mode == "endpoint" and c.server_kind:
                label += f", {c.server_kind}"
            elif c.mode == "endpoint" and self.strategy:
                label += f", JSON asked for as {self.strategy}"
            text = f"model {c.model} at {c.base_url} ({label})"
            if c.cache == "record":
                text += f"; recording replies to {c.cache_path}"
        if "smollm" in (c.model or "").lower():
            text += (". Note: SmolLM2-135M is tiny and its content is weak; for better data set TEACHER_LOCAL_MODEL="
                     "qwen2.5-coder-1.5b, or TEACHER_BASE_URL / OPENAI_API_KEY for a stronger teacher")
        return text

    # --- one call ---
    async def complete(self, messages: list[dict], *, schema: dict | None = None, temperature: float = 0.7,
                       max_tokens: int = 512, seed: int | None = None,
                       accept: Callable[[Reply], Any] | None = None, tries: int = 1, **params: Any) -> Reply:
        """One reply to `messages` (with `schema`: asked for JSON in this server's way). With `accept`, the reply
        is passed to it and its result kept in `.data`; an AnswerError it raises is raised, unless it is retryable
        and tries are left: then the request goes again with another seed (seed+1, seed+2; no seed: 1, 2). This is
        the kit's one loop for a reply that came back but cannot be used (Teacher.structured, notebook 3's answer
        and the factory all use it; a failed call is retried inside each try). Every reply is recorded under its own
        request, and a recorded reply that fails is asked again only when the next seed's reply was recorded too:
        a replay (or a classroom run, for what was recorded) goes exactly as far as the recording went, and
        otherwise fails the way the recording did."""
        strategy = None if schema is None else self.strategy or await self.probe_strategy()

        def request_for(try_seed: int | None) -> dict:
            return build_request(self.config, messages, temperature=temperature, max_tokens=max_tokens,
                                 seed=try_seed, schema=schema, strategy=strategy, **params)

        try_seed, request = seed, request_for(seed)
        for t in range(tries):
            ask_live = None
            if self.config.mode == "classroom":  # the same call, on the live teacher, for what the cache does not hold
                spec = dict(schema=schema, temperature=temperature, max_tokens=max_tokens, seed=try_seed,
                            accept=accept, **params)

                async def ask_live(live: Engine, spec: dict = spec) -> Reply:
                    return await live.complete(messages, **spec)

            try:
                return await self._send(request, ask_live, accept)
            except AnswerError as e:
                if not e.retryable or t == tries - 1:
                    raise
                try_seed = seed + t + 1 if seed is not None else t + 1
                request = request_for(try_seed)
                # a recorded reply that failed goes on only as far as the recording did (record mode asks live)
                if self.replay and e.reply is not None and e.reply.cached and self.cache.get(cache_key(request),
                                                                                            request) is None:
                    raise
        raise AssertionError("unreachable: the last try returns or raises")

    async def _send(self, request: dict, ask_live: Callable[["Engine"], Awaitable[Reply]] | None,
                    accept: Callable[[Reply], Any] | None) -> Reply:
        key = cache_key(request) if self.cache is not None else None
        if key is not None:
            entry = self.cache.get(key, request)
            if entry is not None:
                self.replayed += self.config.mode == "classroom"
                usage = dict(entry.get("usage") or {})
                reply = self._account(Reply(entry["text"], request["model"], entry.get("finish_reason") or "",
                                            usage, cached=True, latency_s=float(usage.get("seconds") or 0.0)))
                if accept is not None:
                    try:
                        reply.data = accept(reply)  # a recorded reply is what it is
                    except AnswerError as e:
                        e.reply = reply
                        raise
                return reply
            if self.config.mode == "classroom":
                reply = await ask_live(await self._live_engine(request))
                self.live_calls += 1
                return self._account(reply)
            if self.replay:
                message = (f"no recorded reply in {self.cache.path.name} for model {request['model']} and the prompt "
                           f"\"{prompt_start(request['messages'])}\": record it with TEACHER=local TEACHER_CACHE=record")
                raise CallError(message, "replay miss")
        try:
            reply = await self._call(request, accept)
        except AnswerError as e:
            # the reply that failed is recorded too, so a replay fails it for the same reason instead of "replay miss"
            if key is not None and getattr(e, "reply", None) is not None:
                self.cache.put(key, request, e.reply.text, e.reply.finish_reason, _timed(e.reply))
            raise
        if key is not None:  # record mode
            self.cache.put(key, request, reply.text, reply.finish_reason, _timed(reply))
        return reply

    async def _call(self, request: dict, accept: Callable[[Reply], Any] | None) -> Reply:
        """The request sent until a reply comes back (429s, 5xx, timeouts and dropped connections are retried),
        within the budgets and the attempts; `accept` then judges the reply once."""
        budget = 0.0  # tokens counted up front against the tokens-per-minute budget
        out_max = request.get("max_tokens") or request.get("max_completion_tokens") or 0
        prompt_guess = (sum(len(str(m.get("content") or "")) for m in request["messages"]) / CHARS_PER_TOKEN
                        if self.tpm is not None or self.cap is not None else 0.0)  # only the budgets need it
        if self.tpm is not None:
            budget = prompt_guess + out_max
        worst = cost_in(self.prices, request["model"], int(prompt_guess), out_max) if self.cap else 0.0
        start = time.perf_counter()
        error: CallError | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait_s = None
            try:
                if self.rpm is not None:
                    await self.rpm.take(1)
                if self.tpm is not None:
                    await self.tpm.take(budget)
                cost = None
                async with self.sem:  # reserved only when it is this request's turn, so waiting ones hold nothing
                    if self.cap is not None:
                        self.cap.reserve(worst)
                    try:
                        self.usage.requests += 1
                        self.usage.retries += attempt > 1
                        async with asyncio.timeout(self.timeout_s):
                            completion = await self.chat(request, self.timeout_s + 5)
                        text, finish_reason, refusal, usage = reply_parts(completion)
                        cost = 0.0 if self.config.mode == "local" else cost_in(
                            self.prices, request["model"], usage["prompt_tokens"], usage["completion_tokens"])
                    finally:
                        if self.cap is not None:
                            self.cap.settle(worst, cost)
            except CallError:  # the spend cap: every item would meet it
                raise
            except TimeoutError:
                error = CallError(f"no reply from {self.chat.url} within {self.timeout_s:g}s (raise TEACHER_TIMEOUT "
                                  "for a slow local model)", "timeout")
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                retryable, wait_s, message = classify_error(exc)
                fatal = affects_every_item(exc, retryable, message)
                error = CallError(message, failure_reason(exc), attempts=attempt, fatal=fatal)
                if fatal or not retryable:
                    raise error from None
            else:
                if self.tpm is not None:
                    self.tpm.give_back(budget - usage["prompt_tokens"] - usage["completion_tokens"])
                reply = self._account(Reply(text, request["model"], finish_reason, usage, cached=False,
                                            latency_s=time.perf_counter() - start, cost_usd=cost, refusal=refusal))
                if accept is None:
                    return reply
                try:
                    reply.data = accept(reply)
                    return reply
                except AnswerError as e:
                    e.attempts, e.reply = attempt, reply
                    raise
            if attempt < self.max_attempts:
                c = self.config
                pause = self._sleep(retry_delay(attempt, wait_s, *self.backoff, c.max_retry_after_s))
                if inspect.isawaitable(pause):
                    await pause
        raise CallError(f"{error.detail} (gave up after {self.max_attempts} attempts)", error.reason,
                        detail=error.detail, attempts=self.max_attempts) from None

    def _account(self, reply: Reply) -> Reply:
        u = self.usage
        u.calls += 1
        u.cached_calls += reply.cached
        u.prompt_tokens += int(reply.usage.get("prompt_tokens", 0))
        u.completion_tokens += int(reply.usage.get("completion_tokens", 0))
        u.cost_usd += reply.cost_usd
        u.seconds += reply.latency_s
        u.untimed += reply.cached and "seconds" not in reply.usage
        return reply

    async def _live_engine(self, request: dict) -> "Engine":
        """The teacher the environment configures, connected at the first prompt the cache does not hold."""
        async with self._live_lock:
            if self._live is None and not self._live_problem and self._make_live is not None:
                try:
                    self._live = await self._make_live().start()
                except (RuntimeError, OSError) as e:  # TeacherError, the embedded model or llama.cpp missing
                    self._live_problem = " ".join(str(e).split()) or type(e).__name__
                else:
                    print(f"{CLASSROOM_LIVE}: {self._live.describe()}", file=sys.stderr, flush=True)
            if self._live is None:
                raise CallError(
                    f"{NEEDS_LIVE} the prompt \"{prompt_start(request['messages'])}\" is not in the replay cache "
                    "(edited?); set TEACHER_BASE_URL or OPENAI_API_KEY, or install the embedded teacher with "
                    "`python -m lecture_utils teacher install qwen2.5-coder-1.5b` "
                    f"(no live teacher now: {self._live_problem or 'none configured'})", "replay miss",
                    fatal=True)  # every prompt the recording lacks would fail the same way: stop, say how to fix
            return self._live

