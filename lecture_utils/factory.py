"""Stage 5: the data factory. Stage 3 over thousands of instructions: concurrent, within budgets, resumable.

    summary = run_factory("runs/demo/instructions.jsonl", index, "runs/demo/qa_pairs.jsonl", teacher=teacher)
    python -m lecture_utils factory runs/demo --concurrency 32

Every instruction ends in exactly one place: a QAPair line in the output file, or a line in the failures file that
says why (HTTP status, timeout, parse error, refusal, empty answer). Each line is written with one write() call, so a
run killed at any moment leaves whole lines; the next run skips every id already in either file and finishes the rest.
Instructions are read lazily and results written as they finish, so memory does not grow with the item count.

Inside: a producer reads instructions and retrieves their passages in batches; 2 x concurrency workers take them
from a bounded queue; a semaphore keeps `concurrency` requests in flight through one AsyncOpenAI client, within
optional requests- and tokens-per-minute budgets, retrying 429s (after their Retry-After), 5xx, timeouts, dropped
connections and unparseable replies. expand_instructions() does Stage 2 (more instructions) at scale as well.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator, Sequence

import openai

from .prompts import RAG_PROMPT, RAG_SYSTEM, prompt_sha
from .qa import (
    AnswerError,
    completion_parts,
    httpx,
    instruction_text,
    no_passages_pair,
    pair_from_text,
    post_chat,
    rag_request,
    with_source,
)
from .records import Instruction, from_dict, repair_tail, to_dict
from .retrieval import RetrievalError
from .teacher import (
    MODES,
    STRATEGY_CHAIN,
    ResponseCache,
    Teacher,
    TeacherConfig,
    MalformedReplyError,
    build_request,
    cache_key,
    classify_error,
    estimate_cost,
    is_format_rejection,
    make_client,
    prompt_start,
    retry_delay,
    schema_strategies,
)

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English; good enough for budgets and estimates
DEFAULT_ANSWER_TOKENS = 150  # a grounded answer of a few sentences, for the estimate before a first run


class FactoryError(RuntimeError):
    """The run cannot go on (bad input, a teacher that rejects every call); what was written so far is kept."""


# --- settings and results ---------------------------------------------------------------------------------------


@dataclass
class FactoryConfig:
    """How hard to push the teacher. The defaults suit a hosted API; a local llama.cpp server wants concurrency 1-4."""

    concurrency: int | None = None  # requests in flight at once (and connections); None: 8, or 2 for the local teacher
    rpm: float | None = None  # requests per minute budget (None: no limit)
    tpm: float | None = None  # tokens per minute budget, prompt + max_tokens counted up front
    timeout_s: float | None = None  # per attempt; None: the teacher's timeout
    max_attempts: int = 5  # per item, for 429s, 5xx, timeouts, dropped connections and unparseable replies
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    k: int = 3  # passages per instruction (its own passage first, for passage-first instructions)
    temperature: float = 0.0
    max_tokens: int = 200
    prompt: str = RAG_PROMPT
    system: str | None = RAG_SYSTEM
    keep_not_in_text: bool = True  # False: "not in the passages" answers go to the failures file
    retry_failures: bool = False  # True: items in the failures file are tried again
    window: int | None = None  # items held in memory at once (default 2 x concurrency)
    retrieval_batch: int = 64  # instructions retrieved together
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.concurrency is not None and self.concurrency < 1) or self.max_attempts < 1 or self.k < 1:
            raise FactoryError(f"concurrency, max_attempts and k must be at least 1 (got {self.concurrency}, "
                               f"{self.max_attempts}, {self.k})")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise FactoryError(f"{name}={value}: give a positive budget, or None for no limit")


@dataclass
class Summary:
    """What a run did; str() gives the report printed at the end."""

    out: str
    failures: str
    seen: int = 0  # instructions read from the input
    skipped: int = 0  # already in the output or failures file from an earlier run
    duplicates: int = 0  # ids seen twice in the input (the first one counts)
    succeeded: int = 0
    failed: int = 0
    not_in_text: int = 0  # succeeded, but the passages did not hold the answer
    reasons: dict[str, int] = field(default_factory=dict)  # failure reason -> count
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    cached: int = 0  # answers served from the record/replay cache
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    model: str = ""
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def __str__(self) -> str:
        rate = self.done / self.elapsed_s if self.elapsed_s else 0.0
        lines = [
            f"factory {'interrupted' if self.interrupted else 'finished'} in {self.elapsed_s:.1f}s "
            f"({rate:.1f} items/s) with {self.model}",
            f"  {self.succeeded:,} answered ({self.not_in_text:,} not in the text) -> {self.out}",
            f"  {self.failed:,} failed -> {self.failures}"
            + (f": {', '.join(f'{r} {n}' for r, n in sorted(self.reasons.items(), key=lambda x: -x[1]))}" if self.reasons else ""),
            f"  {self.skipped:,} already done by an earlier run, {self.duplicates:,} duplicate ids skipped",
            f"  {self.requests:,} requests ({self.retries:,} retries, {self.cached:,} answers from the cache), "
            f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens, about ${self.cost_usd:.4f}",
        ]
        if self.interrupted:
            lines.append("  run the same command again to finish the remaining items")
        return "\n".join(lines)


@dataclass
class Estimate:
    """The cost of a run before it starts, from the sizes of its prompts."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    max_cost_usd: float  # if every answer used max_tokens
    model: str

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __str__(self) -> str:
        return (f"about {self.requests:,} requests, {self.tokens:,} tokens ({self.prompt_tokens:,} prompt + "
                f"{self.completion_tokens:,} completion), ${self.cost_usd:.2f} with {self.model} "
                f"(at most ${self.max_cost_usd:.2f} if every answer ran to max_tokens; retries not counted)")


# --- files: lazy input, whole-line output, resume ---------------------------------------------------------------


def iter_instructions(source: str | Path | Iterable[Instruction | dict]) -> Iterator[Instruction]:
    """Instructions one at a time, from a JSONL file or any iterable, without reading everything first."""
    if not isinstance(source, (str, Path)):
        for item in source:
            yield item if isinstance(item, Instruction) else from_dict(Instruction, item)
        return
    path = Path(source)
    if not path.exists():
        raise FactoryError(f"{path} does not exist: write the instructions first (notebook 2), or pass another file")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    return  # a half-written last line: its writer was killed
                raise FactoryError(f"{path}:{n}: not valid JSON ({e.msg}); fix or delete that line") from None
            if not isinstance(data, dict) or "id" not in data or "instruction" not in data:
                raise FactoryError(f"{path}:{n}: an instruction needs 'id' and 'instruction' fields")
            yield from_dict(Instruction, {"category": "", **data})


def finished_ids(path: str | Path, key: str) -> set[str]:
    """Ids recorded in an output or failures file (whole lines only)."""
    path = Path(path)
    ids: set[str] = set()
    if not path.exists():
        return ids
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ids.add(json.loads(line)[key])
            except (json.JSONDecodeError, KeyError, TypeError):
                if not line.endswith("\n"):
                    break
                raise FactoryError(f"{path}:{n}: not a record with '{key}'; fix or delete that line, then run again") from None
    return ids


class LineWriter:
    """Appends one JSON record per line with a single write() on an O_APPEND file: a kill never tears a line
    in the middle of the file. No fsync per line: the OS keeps written lines when a process dies."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.written = 0

    def write(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self.written += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1


class TokenBucket:
    """A budget that refills `per_minute / 60` units a second; take() waits until enough units are there."""

    def __init__(self, per_minute: float, burst_s: float = 10.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)  # short bursts are fine; the provider counts per minute
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a request bigger than the bucket would otherwise wait forever
        while True:
            self._refill()
            if self.level >= amount:
                self.level -= amount
                return
            await asyncio.sleep((amount - self.level) / self.rate)

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + max(0.0, amount))


# --- the connection pool ----------------------------------------------------------------------------------------

POOL_SHARD = 8  # connections per pool


class _Release(httpx.AsyncByteStream):
    """A response body that tells its shard when it is done with the connection."""

    def __init__(self, stream: Any, release: Any) -> None:
        self.stream, self.release = stream, release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            if self.release is not None:
                self.release()
                self.release = None


class ShardedTransport(httpx.AsyncBaseTransport):
    """One client's connections, kept in several small pools instead of one big one.

    httpcore's pool checks every idle connection (a poll() on its socket) each time a request starts or ends, so one
    pool of C connections costs O(C) per request: at C = 128 that was half the factory's CPU. Pools of 8, each request
    sent through the least busy one, keep that cost small and fixed.
    """

    def __init__(self, connections: int, shard: int = POOL_SHARD) -> None:
        n = max(1, -(-connections // shard))
        size = -(-connections // n)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0)
        ssl_context = httpx.create_ssl_context()  # loading the CA bundle once, not once per pool
        self.pools = [httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits) for _ in range(n)]
        self.busy = [0] * n

    async def handle_async_request(self, request: Any) -> Any:
        i = self.busy.index(min(self.busy))
        self.busy[i] += 1

        def release() -> None:
            self.busy[i] -= 1

        try:
            response = await self.pools[i].handle_async_request(request)
        except BaseException:
            release()
            raise
        response.stream = _Release(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


class RawChat:
    """POST /chat/completions with the client's URL, key, headers and connection pool, minus the SDK's per-request
    work (typed options, copies, header merging), which was a third of the factory's CPU per request at C = 128.
    Failures are raised as the SDK's own exception types, so classify_error() reads them as usual."""

    def __init__(self, client: openai.AsyncOpenAI, http: Any) -> None:
        self.http = http
        self.url = str(client.base_url).rstrip("/") + "/chat/completions"
        headers = {k: v for k, v in client.default_headers.items() if isinstance(v, str)}
        headers["Authorization"] = f"Bearer {client.api_key}"
        self.headers = httpx.Headers(headers)

    async def __call__(self, request: dict, timeout: float | None = None) -> dict:
        try:
            response = await self.http.post(self.url, content=json.dumps(request).encode(), headers=self.headers,
                                            timeout=timeout)
        except httpx.TimeoutException as e:
            raise openai.APITimeoutError(request=e.request) from e
        except httpx.TransportError as e:
            raise openai.APIConnectionError(request=e.request) from e
        if response.status_code >= 400:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = None
            error = body.get("error", body) if isinstance(body, dict) else body
            message = error.get("message") if isinstance(error, dict) else response.text[:200]
            raise openai.APIStatusError(f"Error code: {response.status_code} - {message}", response=response,
                                        body=error)
        try:
            return json.loads(response.content)
        except ValueError as e:
            raise MalformedReplyError(f"the reply is not JSON ({e})") from None


# --- the factory ------------------------------------------------------------------------------------------------


class _Abort(Exception):
    """A failure that every item would share (bad key, wrong URL, no credit): stop instead of failing them all."""


def _resolve_teacher(teacher: Teacher | TeacherConfig | str | None) -> tuple[TeacherConfig, ResponseCache | None]:
    if isinstance(teacher, Teacher):
        return teacher.config, teacher.cache
    if isinstance(teacher, TeacherConfig):
        config = teacher
    else:
        from .teacher import connect

        config = connect(teacher).config  # starts the embedded teacher when that is what the environment says
    return config, (ResponseCache(config.cache_path) if config.cache != "off" else None)


def _affects_every_item(exc: BaseException, retryable: bool, message: str) -> bool:
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (401, 403, 404):
        return True
    if isinstance(exc, openai.APIConnectionError) and not retryable:  # nothing listens at that URL
        return True
    return "insufficient_quota" in message


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
        return "timeout"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "connection error"
    return "malformed reply"


class Factory:
    """One run: a producer reads and retrieves, workers ask the teacher, every finished item is written at once."""

    def __init__(self, teacher_config: TeacherConfig, cache: ResponseCache | None, index: Any, out: str | Path,
                 failures: str | Path, config: FactoryConfig) -> None:
        if config.concurrency is None:  # llama.cpp on two cores answers one request at a time anyway
            config = dataclasses.replace(config, concurrency=2 if teacher_config.mode == "local" else 8)
        self.tc, self.cache, self.index, self.cfg = teacher_config, cache, index, config
        self.prompt_sha = prompt_sha(config.system, config.prompt)
        self.replay = teacher_config.cache == "replay"
        self.timeout_s = config.timeout_s or teacher_config.timeout_s
        self.summary = Summary(out=str(out), failures=str(failures), model=teacher_config.model or "")
        self.out_path, self.failures_path = Path(out), Path(failures)
        self.strategy: str | None = None
        self.client: Any = None
        self.chat: Any = None
        self.bar: Any = None
        self._postfix_at = 0.0

    # --- the run ---
    async def run(self, instructions: Iterable[Instruction | dict] | str | Path) -> Summary:
        start = time.perf_counter()
        if self.cfg.retry_failures and self.failures_path.exists():
            self.failures_path.replace(self.failures_path.with_name(self.failures_path.name + ".retried"))
        for path in (self.out_path, self.failures_path):
            if repair_tail(path):
                print(f"removed a half-written last line from {path} (that item will be done again)", file=sys.stderr)
        done = finished_ids(self.out_path, "instruction_id") | finished_ids(self.failures_path, "id")
        countable = isinstance(instructions, (str, Path, list, tuple))  # a generator can only be read once
        total = _count_remaining(instructions, done) if countable else None
        self.out, self.fail = LineWriter(self.out_path), LineWriter(self.failures_path)
        window = self.cfg.window or 2 * self.cfg.concurrency
        queue: asyncio.Queue = asyncio.Queue(maxsize=window)
        self.sem = asyncio.Semaphore(self.cfg.concurrency)
        self.rpm = TokenBucket(self.cfg.rpm) if self.cfg.rpm else None
        self.tpm = TokenBucket(self.cfg.tpm) if self.cfg.tpm else None
        self.bar = _progress_bar(total, self.cfg.progress)
        tasks: list[asyncio.Task] = []
        try:
            if not self.replay:  # one client for the whole run; its pools hold `concurrency` connections
                http = openai.DefaultAsyncHttpxClient(transport=ShardedTransport(self.cfg.concurrency))
                self.client = make_client(self.tc, async_=True, http_client=http)
                self.chat = RawChat(self.client, http)
            self.strategy = await self._pick_strategy()
            tasks = [asyncio.create_task(self._worker(queue)) for _ in range(window)]
            tasks.append(asyncio.create_task(self._produce(instructions, done, queue, window)))
            await asyncio.gather(*tasks)
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.summary.interrupted = True
            raise
        except _Abort as e:
            self.summary.interrupted = True
            raise FactoryError(f"stopped: {e} ({self.summary.done} items finished are saved; fix it and run again "
                               "to resume)") from None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.out.close()
            self.fail.close()
            if self.client is not None:
                await self.client.close()
            self.summary.elapsed_s = time.perf_counter() - start
            if self.bar is not None:
                self._set_postfix(force=True)
                self.bar.close()
                if self.summary.interrupted:
                    print(self.summary, file=sys.stderr)
        return self.summary

    async def _pick_strategy(self) -> str | None:
        """How this server takes a JSON schema; an unknown endpoint is probed once with a tiny request."""
        if self.replay:
            return "json_object"  # the cache key treats json_schema and json_object alike
        strategies = schema_strategies(self.tc.server_kind)
        if len(strategies) == 1:
            return strategies[0]
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        messages = [{"role": "user", "content": 'Reply with the JSON {"ok": true}.'}]
        for strategy in STRATEGY_CHAIN[:-1]:
            request = build_request(self.tc, messages, temperature=0.0, max_tokens=20, schema=schema, strategy=strategy)
            try:
                await post_chat(self.client, request, self.timeout_s)
                return strategy
            except Exception as exc:  # noqa: BLE001 - anything but a format rejection is the items' business
                if not is_format_rejection(exc):
                    return strategy
        return STRATEGY_CHAIN[-1]

    async def _produce(self, instructions: Any, done: set[str], queue: asyncio.Queue, n_workers: int) -> None:
        s = self.summary
        items = iter_instructions(instructions)
        started: set[str] = set()
        exhausted = False
        while not exhausted:
            chunk: list[Instruction] = []
            read = 0
            for inst in itertools.islice(items, self.cfg.retrieval_batch):
                read += 1
                if inst.id in done:
                    s.skipped += 1
                elif inst.id in started:
                    s.duplicates += 1  # a second copy of an id is never answered twice
                else:
                    started.add(inst.id)
                    chunk.append(inst)
            s.seen += read
            exhausted = read < self.cfg.retrieval_batch
            for inst, hits in zip(chunk, retrieve_batch(self.index, chunk, self.cfg.k)):
                await queue.put((inst, hits))
        for _ in range(n_workers):
            await queue.put(None)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            await self._answer(*job)

    # --- one item ---
    async def _answer(self, inst: Instruction, hits: list) -> None:
        s, cfg = self.summary, self.cfg
        if not hits:
            self._succeed(no_passages_pair(inst))
            return
        request, _ = rag_request(self.tc, inst, hits, prompt=cfg.prompt, system=cfg.system,
                                 temperature=cfg.temperature, max_tokens=cfg.max_tokens, strategy=self.strategy)
        key = cache_key(request) if self.cache is not None else None
        if key is not None:
            entry = self.cache.get(key, request)
            if entry is not None:
                s.cached += 1
                self._finish(inst, hits, request, entry.get("text") or "", entry.get("finish_reason") or "",
                             None, entry.get("usage") or {}, attempts=0, final=True, key=None)
                return
            if self.replay:
                self._fail(inst, "replay miss", f'no recorded reply for "{prompt_start(request["messages"])}": '
                                                "record it with TEACHER_CACHE=record", 0)
                return
        budget = sum(len(m["content"]) for m in request["messages"]) / CHARS_PER_TOKEN + cfg.max_tokens
        reason, detail = "", ""
        for attempt in range(1, cfg.max_attempts + 1):
            wait_s = None
            try:
                if self.rpm is not None:
                    await self.rpm.take(1)
                if self.tpm is not None:
                    await self.tpm.take(budget)
                async with self.sem:
                    s.requests += 1
                    s.retries += attempt > 1
                    async with asyncio.timeout(self.timeout_s):
                        completion = await self.chat(request, self.timeout_s + 5)
                text, finish_reason, refusal, usage, _ = completion_parts(completion)
            except TimeoutError:
                reason, detail = "timeout", f"no reply within {self.timeout_s:g}s"
            except (openai.APIError, MalformedReplyError) as exc:
                retryable, wait_s, message = classify_error(exc)
                if _affects_every_item(exc, retryable, message):
                    raise _Abort(message) from None
                reason, detail = _reason(exc), message
                if not retryable:
                    break
            else:
                if self.tpm is not None:
                    self.tpm.give_back(budget - usage["prompt_tokens"] - usage["completion_tokens"])
                final = attempt == cfg.max_attempts
                retry = self._finish(inst, hits, request, text, finish_reason, refusal, usage, attempt, final,
                                     key)
                if retry is None:
                    return
                reason, detail = retry.reason, retry.detail
            if attempt < cfg.max_attempts:
                await asyncio.sleep(retry_delay(attempt, wait_s, cfg.backoff_base_s, cfg.backoff_max_s,
                                                self.tc.max_retry_after_s))
        self._fail(inst, reason, detail, attempt)

    def _finish(self, inst: Instruction, hits: list, request: dict, text: str, finish_reason: str,
                refusal: str | None, usage: dict, attempts: int, final: bool, key: str | None) -> AnswerError | None:
        """Count the reply and write its pair or its failure (None), or return the error if another try is due."""
        s = self.summary
        s.prompt_tokens += usage.get("prompt_tokens", 0)
        s.completion_tokens += usage.get("completion_tokens", 0)
        if attempts and self.tc.mode != "local":  # cached replies and the embedded teacher cost nothing
            s.cost_usd += estimate_cost(request["model"], usage.get("prompt_tokens", 0),
                                        usage.get("completion_tokens", 0), self.tc.prices)
        try:
            pair = pair_from_text(inst, hits, text, model=request["model"], finish_reason=finish_reason,
                                  prompt_sha=self.prompt_sha,
                                  refusal=refusal)
        except AnswerError as e:
            if e.retryable and not final:
                return e
            self._fail(inst, e.reason, e.detail, attempts)
            return None
        if key is not None and self.tc.cache == "record":  # only good replies: a replay should not fail again
            self.cache.put(key, request, text, finish_reason, usage)
        self._succeed(pair)
        return None

    def _succeed(self, pair: Any) -> None:
        s = self.summary
        if pair.not_in_text and not self.cfg.keep_not_in_text:
            self._fail_record({"id": pair.instruction_id, "instruction": pair.instruction, "category": pair.category,
                               "reason": "not in text", "detail": "the passages do not hold the answer",
                               "attempts": 1})
            return
        self.out.write(pair_record(pair))
        s.succeeded += 1
        s.not_in_text += pair.not_in_text
        self._tick()

    def _fail(self, inst: Instruction, reason: str, detail: str, attempts: int) -> None:
        self._fail_record({"id": inst.id, "instruction": inst.instruction, "category": inst.category,
                           "reason": reason, "detail": detail, "attempts": attempts})

    def _fail_record(self, record: dict) -> None:
        self.fail.write(record)
        s = self.summary
        s.failed += 1
        s.reasons[record["reason"]] = s.reasons.get(record["reason"], 0) + 1
        self._tick()

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self._set_postfix()

    def _set_postfix(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._postfix_at > 1.0:  # formatting the postfix on every item would cost real CPU
            self._postfix_at = now
            s = self.summary
            self.bar.set_postfix_str(f"ok={s.succeeded} failed={s.failed} tokens={s.prompt_tokens + s.completion_tokens:,} "
                                     f"${s.cost_usd:.3f}", refresh=False)


def retrieve_batch(index: Any, chunk: list[Instruction], k: int) -> list[list]:
    """Passages for a chunk of instructions in one go (BM25 as one sparse product is fast in bulk)."""
    queries = [instruction_text(i) for i in chunk]
    if not queries:
        return []
    batch = getattr(index, "search_batch", None)
    results = None
    if batch is not None:
        try:
            results = batch(queries, k=k + 1)
        except RetrievalError:
            pass  # some query has no searchable word: do this chunk one by one
    if results is None:
        results = []
        for q in queries:
            try:
                results.append(index.search(q, k=k + 1))
            except RetrievalError:
                results.append([])
    return [with_source(index, inst, hits, k) for inst, hits in zip(chunk, results)]


def pair_record(pair: Any) -> dict:
    """to_dict(pair) without dataclasses.asdict's deep copies (it showed up in profiles at hundreds of pairs/s)."""
    record = dict(vars(pair))
    record["retrieved"] = [{"id": r.id, "score": r.score} for r in pair.retrieved]
    record["cited"] = list(pair.cited)
    return record


def _progress_bar(total: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="item", desc="factory", mininterval=0.5, smoothing=0.1, dynamic_ncols=True)


def _count_remaining(source: Any, done: set[str]) -> int:
    return len({inst.id for inst in iter_instructions(source)} - done)


# --- Stage 2 at scale -------------------------------------------------------------------------------------------


@dataclass
class ExpandSummary:
    out: str
    failures: str
    runs_done: int = 0
    runs_skipped: int = 0  # already in the output or failures file
    runs_failed: int = 0
    instructions: int = 0

    def __str__(self) -> str:
        return (f"expansion: {self.runs_done} runs gave {self.instructions:,} instructions -> {self.out}; "
                f"{self.runs_failed} failed -> {self.failures}; {self.runs_skipped} done before")


def expand_instructions(teacher: Teacher, out: str | Path, runs: int = 10, n_per_run: int = 20, *, first_run: int = 1,
                        temperatures: Sequence[float] = (0.7, 0.9, 1.0), concurrency: int = 4,
                        failures: str | Path | None = None, progress: bool = True, **run_options: Any) -> ExpandSummary:
    """Stage 2 at scale: `runs` meta-prompt calls (taxonomy.generate_run, run r uses seed r and its own examples),
    several at a time, each run's instructions appended to `out` in one write. Runs already in `out` or in the
    failures file are skipped, so it resumes; deduplicate afterwards with taxonomy.merge_and_dedup."""
    from .taxonomy import generate_run

    out = Path(out)
    failures = Path(failures) if failures is not None else out.with_name(out.stem + ".failures.jsonl")
    summary = ExpandSummary(str(out), str(failures))
    for path in (out, failures):
        repair_tail(path)
    done = {rec.run for rec in iter_instructions(out)} if out.exists() else set()
    done |= {int(str(r)[4:]) for r in finished_ids(failures, "id") if str(r).startswith("run-")}
    todo = [r for r in range(first_run, first_run + runs) if r not in done]
    summary.runs_skipped = runs - len(todo)
    writer, fail = LineWriter(out), LineWriter(failures)
    bar = _progress_bar(len(todo), progress)
    try:
        # The sync Teacher does the structured output, retries and caching; Stage 2 needs hundreds of calls, not
        # tens of thousands, so a few threads are plenty.
        with concurrent.futures.ThreadPoolExecutor(max(1, concurrency)) as pool:
            futures = {pool.submit(generate_run, teacher, n_per_run, r, temperatures[r % len(temperatures)], r,
                                   **run_options): r for r in todo}
            for future in concurrent.futures.as_completed(futures):
                r = futures[future]
                try:
                    batch = future.result()
                except (ValueError, RuntimeError) as e:
                    fail.write({"id": f"run-{r}", "reason": type(e).__name__, "detail": str(e)[:300], "attempts": 1})
                    summary.runs_failed += 1
                else:  # one write for the whole run: a killed process leaves the run complete or absent
                    os.write(writer.fd, "".join(json.dumps(to_dict(i), ensure_ascii=False) + "\n"
                                                for i in batch).encode("utf-8"))
                    summary.runs_done += 1
                    summary.instructions += len(batch)
                if bar is not None:
                    bar.update(1)
    finally:
        writer.close()
        fail.close()
        if bar is not None:
            bar.close()
    if progress:
        print(summary)
    return summary


# --- estimate, entry points -------------------------------------------------------------------------------------


def estimate_run(instructions: Iterable[Instruction | dict] | str | Path, index: Any,
                 teacher: Teacher | TeacherConfig | None = None, config: FactoryConfig | None = None, *,
                 out: str | Path | None = None, failures: str | Path | None = None, sample: int = 200) -> Estimate:
    """Requests, tokens and dollars for the items not done yet, from the prompts of a sample of them."""
    config = config or FactoryConfig()
    tc = teacher.config if isinstance(teacher, Teacher) else teacher or TeacherConfig.from_env()
    done = set()
    if out is not None:
        done |= finished_ids(out, "instruction_id")
    if failures is not None and not config.retry_failures:
        done |= finished_ids(failures, "id")
    n, sample_items = 0, []
    for inst in iter_instructions(instructions):
        if inst.id in done:
            continue
        n += 1
        if len(sample_items) < sample:
            sample_items.append(inst)
    prompt_chars, asked = 0, 0
    if sample_items:
        for inst, hits in zip(sample_items, retrieve_batch(index, sample_items, config.k)):
            if hits:
                request, _ = rag_request(tc, inst, hits, prompt=config.prompt, system=config.system,
                                         temperature=config.temperature, max_tokens=config.max_tokens)
                prompt_chars += len(json.dumps(request["messages"], ensure_ascii=False))
                asked += 1
    share = asked / len(sample_items) if sample_items else 0.0
    requests = round(n * share)
    prompt_tokens = round(prompt_chars / CHARS_PER_TOKEN / max(asked, 1) * requests)
    answer_tokens = min(DEFAULT_ANSWER_TOKENS, config.max_tokens)
    model = tc.model or "the configured model"
    priced = tc.mode != "local"
    cost = estimate_cost(model, prompt_tokens, answer_tokens * requests, tc.prices) if priced else 0.0
    worst = estimate_cost(model, prompt_tokens, config.max_tokens * requests, tc.prices) if priced else 0.0
    return Estimate(requests, prompt_tokens, answer_tokens * requests, cost, worst, model)


async def run_factory_async(instructions: Iterable[Instruction | dict] | str | Path, index: Any, out: str | Path,
                            failures: str | Path | None = None, *, teacher: Teacher | TeacherConfig | str | None = None,
                            config: FactoryConfig | None = None, **options: Any) -> Summary:
    """The factory on the running event loop; see run_factory."""
    config = dataclasses.replace(config or FactoryConfig(), **options)
    out = Path(out)
    failures = Path(failures) if failures is not None else out.with_name(out.stem + ".failures.jsonl")
    tc, cache = _resolve_teacher(teacher)
    return await Factory(tc, cache, index, out, failures, config).run(instructions)


def run_factory(instructions: Iterable[Instruction | dict] | str | Path, index: Any, out: str | Path,
                failures: str | Path | None = None, *, teacher: Teacher | TeacherConfig | str | None = None,
                config: FactoryConfig | None = None, **options: Any) -> Summary:
    """Answer every instruction not yet in `out` or `failures`; returns the Summary (also printed with progress on).

    `teacher` is a Teacher, a TeacherConfig, a mode name or None (the environment); `options` override
    FactoryConfig fields, e.g. concurrency=32, rpm=500. Works in scripts and in Jupyter (which has a loop running).
    """
    def go() -> Summary:
        return asyncio.run(run_factory_async(instructions, index, out, failures, teacher=teacher, config=config,
                                             **options))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        summary = go()
    else:  # inside Jupyter: run on a fresh loop in a helper thread
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            summary = pool.submit(go).result()
    if (config.progress if config else options.get("progress", True)):
        print(summary)
    return summary


def factory_main(argv: list[str] | None = None) -> int:
    """`python -m lecture_utils factory RUN_DIR ...`: Stage 3 at scale over RUN_DIR/instructions.jsonl."""
    p = argparse.ArgumentParser(prog="python -m lecture_utils factory", description=factory_main.__doc__)
    p.add_argument("run_dir", help="the run directory, e.g. runs/demo")
    p.add_argument("--instructions", help="default RUN_DIR/instructions.jsonl")
    p.add_argument("--passages", help="default RUN_DIR/passages.jsonl; or give --corpus")
    p.add_argument("--corpus", help="a book file or a folder of documents to load passages from instead")
    p.add_argument("--out", help="default RUN_DIR/qa_pairs.jsonl")
    p.add_argument("--failures", help="default RUN_DIR/qa_pairs.failures.jsonl")
    p.add_argument("--teacher", choices=MODES, help="default: from the environment")
    p.add_argument("--model", help="the teacher model (default: TEACHER_MODEL)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default 8; 2 for the embedded teacher)")
    p.add_argument("--rpm", type=float, help="requests per minute budget")
    p.add_argument("--tpm", type=float, help="tokens per minute budget")
    p.add_argument("--timeout", type=float, help="seconds per attempt")
    p.add_argument("--attempts", type=int, default=FactoryConfig.max_attempts)
    p.add_argument("--k", type=int, default=FactoryConfig.k, help="passages per instruction")
    p.add_argument("--max-tokens", type=int, default=FactoryConfig.max_tokens)
    p.add_argument("--temperature", type=float, default=FactoryConfig.temperature)
    p.add_argument("--limit", type=int, help="only the first N instructions")
    p.add_argument("--retry-failures", action="store_true", help="try the items in the failures file again")
    p.add_argument("--drop-not-in-text", action="store_true", help="send 'not in the passages' answers to failures")
    p.add_argument("--estimate", action="store_true", help="print the estimate and stop")
    p.add_argument("--batch", action="store_true", help="use the OpenAI Batch API (half price, within 24 hours)")
    p.add_argument("--no-wait", action="store_true", help="with --batch: submit (or check) and return at once")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    run_dir = Path(args.run_dir)
    instructions_path = Path(args.instructions or run_dir / "instructions.jsonl")
    if not instructions_path.exists():
        raise FactoryError(f"{instructions_path} does not exist: run notebook 2 for this run directory, or pass --instructions")
    from .records import Passage, iter_jsonl
    from .retrieval import FastBM25Index

    if args.corpus:
        from .corpus import load_corpus

        passages = load_corpus(args.corpus)
    else:
        passages_path = Path(args.passages or run_dir / "passages.jsonl")
        if not passages_path.exists():
            raise FactoryError(f"{passages_path} does not exist: run notebook 1 for this run directory, or pass --corpus BOOK_OR_FOLDER")
        passages = list(iter_jsonl(passages_path, Passage))
    index = FastBM25Index(passages)
    overrides = {"model": args.model} if args.model else {}
    teacher: Any = TeacherConfig.from_env(args.teacher, **overrides) if args.estimate else None
    if teacher is None:
        from .teacher import connect

        teacher = connect(args.teacher, **overrides)
    config = FactoryConfig(concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm, timeout_s=args.timeout,
                           max_attempts=args.attempts, k=args.k, max_tokens=args.max_tokens,
                           temperature=args.temperature, retry_failures=args.retry_failures,
                           keep_not_in_text=not args.drop_not_in_text, progress=not args.no_progress)
    out = Path(args.out or run_dir / "qa_pairs.jsonl")
    failures = Path(args.failures or out.with_name(out.stem + ".failures.jsonl"))
    items: Any = instructions_path
    if args.limit is not None:
        items = list(itertools.islice(iter_instructions(instructions_path), args.limit))
    estimate = estimate_run(items, index, teacher, config, out=out, failures=failures)
    print(f"estimate: {estimate}" + (" (the Batch API charges half)" if args.batch else ""), file=sys.stderr)
    if args.estimate:
        return 0
    if args.batch:
        from .batch import run_batch

        print(run_batch(items, index, out, failures, teacher=teacher, config=config, wait=not args.no_wait))
        return 0
    run_factory(items, index, out, failures, teacher=teacher, config=config)
    return 0
