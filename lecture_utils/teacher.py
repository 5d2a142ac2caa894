"""The teacher: the only code in the kit that talks to an LLM.

One OpenAI-compatible client for every server (OpenAI, the embedded llama.cpp teacher, Ollama, vLLM) with
structured output, retries, a record/replay cache and a running bill:

    teacher = connect()                      # TEACHER_BASE_URL, else OPENAI_API_KEY, else the embedded teacher
    teacher.chat("Say hi").text
    teacher.structured(prompt, schema).data  # parsed and checked against the JSON schema
    teacher.usage                            # calls, tokens and estimated cost so far

TEACHER=classroom replays what the replay cache holds and sends only the prompts it does not hold (a student edited
one) to the live teacher the environment configures, started at the first such prompt.

The pure helpers (build_request, cache_key, ResponseCache, parse_json_loose, validate, classify_error,
estimate_cost, make_client) are shared with the async factory, so both behave the same way.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import hashlib
import json
import random
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import openai

from . import settings
from .records import append_jsonl, iter_jsonl
from .settings import CACHE_MODES, DEFAULT_CACHE_PATH, MODES, REPLAY_MODES

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_LOCAL_ALIAS = "qwen2.5-coder-1.5b-instruct"  # what the embedded server calls its default model
PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the client insists on one
PREVIEW_CHARS = 400  # longest excerpt of a server's error text shown in a message
# What a classroom teacher says at its first unrecorded prompt, and how its error starts when no live teacher is there
# (the grader looks for both in a student's notebook outputs).
CLASSROOM_LIVE = "classroom: a prompt was not recorded (edited?), asking the live teacher"
NEEDS_LIVE = "needs a live teacher:"

# USD per 1M tokens (input, output), OpenAI list prices in 2025; check https://openai.com/api/pricing.
# Override with prices={...} or TEACHER_PRICES='{"my-model": [0.1, 0.4]}'. Unknown models cost 0.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


class TeacherError(RuntimeError):
    """Something went wrong talking to the teacher; the message is one line saying what and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class StructuredOutputError(TeacherError):
    """The teacher never produced JSON that matches the schema; `.raw` keeps its last reply."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class MalformedReplyError(TeacherError):
    """The server answered 200 but not with a chat completion (worth a retry)."""


class _FormatRejected(Exception):
    """Internal: the server refused our response_format, so the next strategy is tried."""


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


# --- prices -----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _env_prices(text: str) -> dict[str, tuple[float, float]]:
    try:
        raw = json.loads(text)
        return {m: (float(p["input"]), float(p["output"])) if isinstance(p, dict) else (float(p[0]), float(p[1]))
                for m, p in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise TeacherError('TEACHER_PRICES must be JSON like {"model": [input, output]} in USD per 1M tokens') from None


def price_table(prices: dict[str, tuple[float, float]] | None = None) -> dict[str, tuple[float, float]]:
    """The built-in table, then TEACHER_PRICES from the environment, then `prices`."""
    return {**PRICES, **_env_prices(settings.get("TEACHER_PRICES") or "{}"), **(prices or {})}


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int,
                  prices: dict[str, tuple[float, float]] | None = None) -> float:
    """Estimated USD for one call; dated snapshots ("gpt-4o-mini-2024-07-18") use their family's price."""
    table = price_table(prices)
    name = model if model in table else max((m for m in table if model.startswith(m)), key=len, default=None)
    if name is None:
        return 0.0
    price_in, price_out = table[name]
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


# --- requests and cache keys ------------------------------------------------------------------------------------

STRATEGY_CHAIN = ("json_schema", "json_object", "prompt")
_STRICT_KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "enum", "const",
                    "description", "title", "anyOf", "$defs", "$ref", "minItems", "maxItems", "minimum", "maximum",
                    "pattern", "format"}


def schema_strategies(server_kind: str | None) -> tuple[str, ...]:
    """How to ask for JSON: OpenAI's json_schema, llama.cpp's json_object+schema, or try them in turn."""
    return {"openai": ("json_schema",), "llama.cpp": ("json_object",)}.get(server_kind or "", STRATEGY_CHAIN)


def strict_ok(schema: Any) -> bool:
    """True if OpenAI's strict mode accepts the schema as it is (closed objects, every property required)."""
    if isinstance(schema, list):
        return all(strict_ok(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if set(schema) - _STRICT_KEYWORDS:
        return False
    if "properties" in schema or schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(props):
            return False
        if not all(strict_ok(s) for s in props.values()):
            return False
    return all(strict_ok(schema[k]) for k in ("items", "anyOf") if k in schema) and \
        all(strict_ok(s) for s in schema.get("$defs", {}).values())


def with_schema_hint(messages: list[dict], schema: dict) -> list[dict]:
    """For servers without structured output: describe the schema at the end of the last user message."""
    out = [dict(m) for m in messages]
    hint = ("\n\nReply with only a JSON value that matches this JSON Schema (no prose, no code fences):\n"
            + json.dumps(schema, ensure_ascii=False))
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{m.get('content') or ''}{hint}"
            break
    else:
        out.append({"role": "user", "content": hint.strip()})
    return out


def build_request(config: TeacherConfig, messages: list[dict], *, temperature: float = 0.7, max_tokens: int = 512,
                  seed: int | None = None, schema: dict | None = None, strategy: str | None = None,
                  **params: Any) -> dict:
    """The keyword arguments for client.chat.completions.create (no key, no URL: those live in the client)."""
    request: dict[str, Any] = {"model": config.model, "messages": messages, "temperature": temperature}
    # OpenAI's newer models only take max_completion_tokens; llama.cpp and most others only max_tokens
    request["max_completion_tokens" if config.server_kind == "openai" else "max_tokens"] = max_tokens
    if seed is not None:
        request["seed"] = seed
    if schema is not None:
        strategy = strategy or schema_strategies(config.server_kind)[0]
        if strategy == "json_schema":
            name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "reply"))[:64]
            request["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": name, "schema": schema, "strict": strict_ok(schema)}}
        elif strategy == "json_object":
            request["response_format"] = {"type": "json_object", "schema": schema}
        elif strategy == "prompt":
            request["messages"] = with_schema_hint(messages, schema)
        else:
            raise ValueError(f"unknown structured-output strategy {strategy!r}: use one of {STRATEGY_CHAIN}")
    request.update(params)
    return request


_NOT_IN_KEY = {"timeout", "extra_headers", "extra_query", "stream", "user"}


def cache_key(request: dict) -> str:
    """sha256 of the canonical request: model, messages and every parameter that changes the reply.

    json_schema and json_object+schema count as the same request, so a cache recorded on llama.cpp
    replays for a teacher that would have used OpenAI's format, and the other way round.
    """
    canon = {k: v for k, v in request.items() if k not in _NOT_IN_KEY}
    if "max_completion_tokens" in canon:
        canon["max_tokens"] = canon.pop("max_completion_tokens")
    rf = canon.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_schema":
            canon["response_format"] = {"schema": (rf.get("json_schema") or {}).get("schema")}
        elif rf.get("type") == "json_object" and "schema" in rf:
            canon["response_format"] = {"schema": rf["schema"]}
    blob = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]} ...[+{len(text) - limit} chars]"


def prompt_start(messages: list[dict], n: int = 70) -> str:
    """The start of the last user message, on one line, for error messages."""
    text = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


# A reply's words copied from the prompt (a quote of the book) are stored as ⟦m<message>:<start>+<length>⟧.
_REF = re.compile("\u27e6m(\\d+):(\\d+)\\+(\\d+)\u27e7")
MIN_COPIED_CHARS = 20


def _longest_copy(text: str, i: int, contents: list[str]) -> tuple[int, int, int]:
    """(length, message, start) of the longest run of text from i on that a message contains; length 0 if none."""
    best = (0, 0, 0)
    for m, content in enumerate(contents):
        length = MIN_COPIED_CHARS
        pos = content.find(text[i:i + length]) if i + length <= len(text) else -1
        while pos >= 0:  # a longer run occurs only where the shorter one does, so search on from pos
            best = max(best, (length, m, pos))
            length += 1
            pos = content.find(text[i:i + length], pos) if i + length <= len(text) else -1
    return best


def refer_copied(text: str, contents: list[str]) -> str:
    """text with every run of MIN_COPIED_CHARS or more characters that also occurs in one of `contents` replaced by a
    reference to it; restore_copied(refer_copied(t, c), messages) == t."""
    out, i = [], 0
    while i < len(text):
        length, m, start = _longest_copy(text, i, contents)
        if length:
            out.append(f"\u27e6m{m}:{start}+{length}\u27e7")
            i += length
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def restore_copied(text: str, messages: list[dict]) -> str:
    """Undo refer_copied with the request's messages (the cache key guarantees they are the recorded ones)."""
    contents = [str(m.get("content") or "") for m in messages]

    def back(m: re.Match) -> str:
        k, start, length = map(int, m.groups())
        return contents[k][start:start + length] if k < len(contents) else m.group(0)

    return _REF.sub(back, text)


# --- the response cache -----------------------------------------------------------------------------------------


class ResponseCache:
    """Replies keyed by cache_key(request), in an append-only JSONL file (one line per reply, git-friendly).

    The file is read once; a key written twice keeps its last line. Keys, base URLs and API keys never go in.
    """

    def __init__(self, path: str | Path = DEFAULT_CACHE_PATH) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            entries: dict[str, dict] = {}
            if self.path.exists():
                for entry in iter_jsonl(self.path):
                    if isinstance(entry, dict) and "key" in entry:
                        entries[entry["key"]] = entry
            self._entries = entries
        return self._entries

    def get(self, key: str, request: dict | None = None) -> dict | None:
        """The entry for key; with the request, words the reply copied from the prompt are put back in its text."""
        with self._lock:
            entry = self._load().get(key)
        if entry is not None and request is not None and _REF.search(entry.get("text") or ""):
            entry = {**entry, "text": restore_copied(entry["text"], request.get("messages", []))}
        return entry

    def put(self, key: str, request: dict, text: str, finish_reason: str, usage: dict) -> dict:
        """Append one reply. Messages are stored as their length and hash only (the key covers the full text), and
        words the reply copied from the prompt as references to it, so a cache never holds the source's text."""
        contents = [str(m.get("content") or "") for m in request.get("messages", [])]
        # No prompt text at all: prompts carry passages of the source, which must not be committed. The key covers it.
        messages = [{"role": m.get("role"), "chars": len(c), "sha": hashlib.sha256(c.encode("utf-8")).hexdigest()[:12]}
                    for m, c in zip(request.get("messages", []), contents)]
        entry = {"key": key, "model": request.get("model"), "messages": messages, "text": refer_copied(text, contents),
                 "finish_reason": finish_reason, "usage": usage}
        with self._lock:
            self._load()
            append_jsonl(self.path, entry)
            self._entries[key] = entry
        return {**entry, "text": text}

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None


# --- parsing and validating JSON --------------------------------------------------------------------------------

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.S)


def _outside_strings(text: str, start: int = 0):
    """Yield (index, char) for the characters of text[start:] that stand outside JSON string literals."""
    in_string, escaped = False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            yield i, ch


def _balanced_spans(text: str, limit: int = 20):
    """Yield each {...} or [...] span that closes properly (quotes respected), in order of its start."""
    starts = [i for i, ch in enumerate(text) if ch in "{["][:limit]
    for start in starts:
        depth = 0
        for i, ch in _outside_strings(text, start):
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    yield text[start:i + 1]
                    break


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that stand right before a closing } or ] (outside strings), a common model slip."""
    drop = set()
    for i, ch in _outside_strings(text):
        if ch == ",":
            j = i + 1
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] in "}]":
                drop.add(i)
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


def parse_json_loose(text: str) -> Any:
    """Parse the JSON a model wrote: as is, else inside code fences, else the first {...}/[...] amid prose,
    each also with trailing commas removed. Raw control characters in strings are accepted."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    candidates += list(_balanced_spans(text))
    for candidate in candidates:
        for attempt in (candidate, _drop_trailing_commas(candidate)):
            try:
                return json.loads(attempt, strict=False)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object or array found in the reply (it began: {' '.join(text.split())[:60]!r})")


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str):
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"the schema is not valid JSON Schema: {e.message}") from None
    return cls(schema)


def check_schema(schema: dict) -> None:
    """Raise ValueError (one line) if `schema` is not a valid JSON Schema."""
    _validator(json.dumps(schema, sort_keys=True))


def validate(data: Any, schema: dict) -> list[str]:
    """Problems with `data` against the JSON schema, as short 'where: what' lines; empty if it is valid."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    problems = []
    for e in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        problems.append(f"{where}: {_preview(e.message, 160)}")
    return problems


# --- errors, retries and the client -----------------------------------------------------------------------------


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, Retry-After seconds or HTTP date), if any."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return None


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    text = body.get("message") if isinstance(body, dict) and body.get("message") else exc.message
    return _preview(" ".join(str(text).split()), 200)


def classify_error(exc: BaseException) -> tuple[bool, float | None, str]:
    """(retryable, seconds the server asked us to wait or None, one-line message) for an error from a call."""
    request = getattr(exc, "request", None)
    url = str(request.url) if request is not None else "the teacher server"
    if isinstance(exc, openai.APITimeoutError):
        return True, None, f"no reply from {url} before the timeout (raise TEACHER_TIMEOUT for a slow local model)"
    if isinstance(exc, openai.APIConnectionError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else ""
        if cause == "ConnectError":
            return False, None, (f"cannot reach the teacher at {url}: start that server or change TEACHER_BASE_URL "
                                 "(or unset it and use TEACHER=local for the embedded teacher)")
        return True, None, f"the connection to {url} dropped before a reply ({cause or 'connection error'})"
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, _detail(exc)
        if status in (401, 403):
            return False, None, f"key rejected by {url} ({status}): check TEACHER_API_KEY/OPENAI_API_KEY"
        if status == 429:
            if exc.code == "insufficient_quota" or "insufficient_quota" in detail:
                return False, None, (f"{url} says the account has no credit left (429 insufficient_quota): "
                                     "add credit or use TEACHER=local")
            return True, _retry_after(exc.response.headers), f"rate limited by {url} (429): {detail}"
        if status in (408, 409) or status >= 500:
            return True, _retry_after(exc.response.headers), f"{url} failed with {status}: {detail}"
        if status == 404:
            return False, None, (f"{url} answered 404 ({detail}): check TEACHER_BASE_URL (it usually ends in /v1) "
                                 "and TEACHER_MODEL")
        return False, None, f"{url} rejected the request ({status}): {detail}"
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, MalformedReplyError)):
        return True, None, f"the teacher server sent a malformed reply ({_preview(str(exc), 120)})"
    return False, None, f"{type(exc).__name__}: {exc}"


def is_format_rejection(exc: BaseException) -> bool:
    """True if the server refused the request because of its response_format (so another format may work)."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422, 500):
        return False
    text = f"{exc.message} {json.dumps(exc.body, default=str)}".lower()
    return any(word in text for word in ("response_format", "json_schema", "schema", "grammar"))


def retry_delay(attempt: int, retry_after: float | None, base_s: float = 0.5, cap_s: float = 30.0,
                max_retry_after_s: float = 120.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): what the server asked for, else
    exponential backoff with jitter so that many clients do not retry in step."""
    if retry_after is not None:
        return min(retry_after, max_retry_after_s) * random.uniform(1.0, 1.1)
    return min(cap_s, base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def make_client(config: TeacherConfig, async_: bool = False, **kwargs: Any) -> openai.OpenAI | openai.AsyncOpenAI:
    """An openai client for the config, with the client's own retries off: we retry ourselves, visibly."""
    if not config.base_url:
        raise TeacherError(f"mode {config.mode!r} has no server URL: use connect() (it starts the embedded teacher) "
                           "or set TEACHER_BASE_URL")
    cls = openai.AsyncOpenAI if async_ else openai.OpenAI
    timeout = openai.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s))
    return cls(api_key=config.api_key or PLACEHOLDER_KEY, base_url=config.base_url, max_retries=0,
               timeout=timeout, **kwargs)


def completion_fields(response: Any) -> tuple[str, str, dict]:
    """(text, finish_reason, usage) from a chat completion; refusals come back as the text."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise MalformedReplyError("the server's reply has no choices")
    choice = choices[0]
    message = choice.message
    text = message.content if message.content is not None else (getattr(message, "refusal", None) or "")
    u = getattr(response, "usage", None)
    usage = {"prompt_tokens": getattr(u, "prompt_tokens", 0) or 0,
             "completion_tokens": getattr(u, "completion_tokens", 0) or 0}
    return text, choice.finish_reason or "", usage


# --- the teacher ------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One answer from the teacher; `.data` is set by structured()."""

    text: str
    model: str
    finish_reason: str
    usage: dict  # prompt_tokens, completion_tokens of this call
    cached: bool = False
    latency_s: float = 0.0
    cost_usd: float = 0.0  # 0 when it came from the cache
    data: Any = None


@dataclass
class Usage:
    """Running totals for one Teacher."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __str__(self) -> str:
        return (f"{self.calls} calls ({self.cached_calls} from cache), {self.prompt_tokens:,} prompt + "
                f"{self.completion_tokens:,} completion tokens, about ${self.cost_usd:.4f}")


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
        self.config = config
        self.usage = Usage()
        self.sleep = sleep  # tests pass a recorder to see the waits
        self.cache = ResponseCache(config.cache_path) if config.cache != "off" else None
        self._lock = threading.Lock()
        self.client: openai.OpenAI | None = None
        self.replayed = 0  # classroom: answers that came from the replay cache
        self.live_calls = 0  # classroom: answers from the live teacher (prompts the cache did not hold)
        self._live: Teacher | None = None
        self._live_problem = ""  # classroom: why no live teacher could be had (asked once, remembered)
        self._live_lock = threading.Lock()
        if config.cache != "replay":
            self.client = make_client(config)
            if config.model is None or config.server_kind is None:
                self._probe()
        else:
            if not config.cache_path.exists():
                raise TeacherError(f"no replay cache at {config.cache_path}: record one with TEACHER=local "
                                   "TEACHER_CACHE=record, or point TEACHER_CACHE_PATH at one")
            if config.model is None:
                self.config = dataclasses.replace(config, model=DEFAULT_LOCAL_ALIAS)
        if self.config.model is None:
            raise TeacherError(f"no model name for {self.config.base_url}: set TEACHER_MODEL")
        # replay has no server to probe; the cache key treats json_schema and json_object alike
        kind = self.config.server_kind or ("llama.cpp" if config.cache == "replay" else None)
        strategies = schema_strategies(kind)
        self._strategy: str | None = strategies[0] if len(strategies) == 1 else None

    def _probe(self) -> None:
        """Ask an unknown endpoint for its models: fills in the model name and spots llama.cpp servers."""
        try:
            models = list(self.client.models.list().data)
        except Exception as exc:  # noqa: BLE001 - reported below, or left for the first call
            retryable, _, message = classify_error(exc)
            unreachable = isinstance(exc, openai.APIConnectionError) and not retryable
            if unreachable or isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
                raise TeacherError(message) from None
            if self.config.model is None:
                raise TeacherError(f"could not list the models at {self.config.base_url} ({message}): "
                                   "set TEACHER_MODEL") from None
            return
        changes: dict[str, Any] = {}
        if self.config.model is None:
            if not models:
                raise TeacherError(f"{self.config.base_url} lists no models: set TEACHER_MODEL")
            changes["model"] = models[0].id
        if self.config.server_kind is None and {getattr(m, "owned_by", "") for m in models} & {"llamacpp", "me"}:
            changes["server_kind"] = "llama.cpp"  # llama.cpp's server and llama-cpp-python's say so
        self.config = dataclasses.replace(self.config, **changes)

    # --- public API ---
    def chat(self, messages_or_prompt: str | list[dict], *, system: str | None = None, temperature: float = 0.7,
             max_tokens: int = 512, seed: int | None = None, **params: Any) -> Reply:
        """A text reply."""
        messages = as_messages(messages_or_prompt, system)
        request = build_request(self.config, messages, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                **params)
        if self.config.mode == "classroom":
            return self._replay_or_live(request, lambda live: live.chat(
                messages, temperature=temperature, max_tokens=max_tokens, seed=seed, **params))
        return self._complete(request)

    def structured(self, messages_or_prompt: str | list[dict], schema: dict, *, system: str | None = None,
                   temperature: float = 0.7, max_tokens: int = 1024, seed: int | None = None,
                   attempts: int | None = None, **params: Any) -> Reply:
        """A reply whose `.data` is parsed JSON valid against `schema`; invalid output is asked for again
        (with another seed), then raises StructuredOutputError with the last raw text."""
        check_schema(schema)  # a broken schema fails now, before any call
        messages = as_messages(messages_or_prompt, system)
        attempts = attempts or self.config.structured_attempts
        reply, problem = None, ""
        for attempt in range(attempts):
            try_seed = seed + attempt if seed is not None else (attempt or None)
            reply = self._structured_once(messages, schema, temperature, max_tokens, try_seed, params)
            try:
                data = parse_json_loose(reply.text)
            except ValueError as e:
                problem = str(e)
            else:
                errors = validate(data, schema)
                if not errors:
                    reply.data = data
                    return reply
                problem = f"{len(errors)} schema problem(s), first {errors[0]}"
            if reply.finish_reason == "length":
                problem = f"the reply was cut off at max_tokens={max_tokens} ({problem}); raise max_tokens"
        raise StructuredOutputError(
            f"no valid JSON for the schema after {attempts} tries from {self.config.model}: {problem} "
            "(the raw reply is in .raw; try a stronger teacher or a simpler schema)", raw=reply.text if reply else "")

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
            text = f"model {c.model} at {c.base_url} ({label})"
            if c.cache == "record":
                text += f"; recording replies to {c.cache_path}"
        if "smollm" in (c.model or "").lower():
            text += (". Note: SmolLM2-135M is tiny and its content is weak; for better data set TEACHER_LOCAL_MODEL="
                     "qwen2.5-coder-1.5b, or TEACHER_BASE_URL / OPENAI_API_KEY for a stronger teacher")
        return text

    def __repr__(self) -> str:
        return f"Teacher({self.describe()})"

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self._live is not None:
            self._live.close()

    # --- internals ---
    def _structured_once(self, messages: list[dict], schema: dict, temperature: float, max_tokens: int,
                         seed: int | None, params: dict) -> Reply:
        if self.config.mode == "classroom":
            request = build_request(self.config, messages, temperature=temperature, max_tokens=max_tokens,
                                    seed=seed, schema=schema, strategy=self._strategy, **params)
            return self._replay_or_live(request, lambda live: live._structured_once(
                messages, schema, temperature, max_tokens, seed, params))
        strategies = (self._strategy,) if self._strategy else STRATEGY_CHAIN
        for i, strategy in enumerate(strategies):
            request = build_request(self.config, messages, temperature=temperature, max_tokens=max_tokens,
                                    seed=seed, schema=schema, strategy=strategy, **params)
            try:
                reply = self._complete(request, probing=i < len(strategies) - 1)
            except _FormatRejected:
                continue
            self._strategy = strategy  # this server takes it: use it from now on
            return reply
        raise AssertionError("unreachable: the last strategy never raises _FormatRejected")

    def _complete(self, request: dict, probing: bool = False) -> Reply:
        key = cache_key(request) if self.cache is not None else None
        if key is not None:
            entry = self.cache.get(key, request)
            if entry is not None:
                return self._account(Reply(entry["text"], request["model"], entry.get("finish_reason", ""),
                                           dict(entry.get("usage") or {}), cached=True))
            if self.config.cache == "replay":
                raise TeacherError(
                    f"no recorded reply in {self.cache.path.name} for model {request['model']} and the prompt "
                    f"\"{prompt_start(request['messages'])}\": record it with TEACHER=local TEACHER_CACHE=record")
        start = time.perf_counter()
        text, finish_reason, usage = self._call_with_retries(request, probing)
        latency = time.perf_counter() - start
        if key is not None:  # record mode
            self.cache.put(key, request, text, finish_reason, usage)
        cost = 0.0 if self.config.mode == "local" else estimate_cost(request["model"], usage["prompt_tokens"],
                                                                     usage["completion_tokens"], self.config.prices)
        return self._account(Reply(text, request["model"], finish_reason, usage, cached=False,
                                   latency_s=latency, cost_usd=cost))

    def _replay_or_live(self, request: dict, ask_live: Callable[["Teacher"], Reply]) -> Reply:
        """Classroom: the recorded reply if the cache holds this request, else ask_live(the live teacher)."""
        entry = self.cache.get(cache_key(request), request)
        if entry is not None:
            with self._lock:
                self.replayed += 1
            return self._account(Reply(entry["text"], request["model"], entry.get("finish_reason", ""),
                                       dict(entry.get("usage") or {}), cached=True))
        reply = ask_live(self._live_teacher(request))
        with self._lock:
            self.live_calls += 1
        return self._account(reply)

    def _live_teacher(self, request: dict) -> "Teacher":
        """The teacher the environment configures (TEACHER_BASE_URL, else OPENAI_API_KEY, else the embedded model),
        connected at the first prompt the cache does not hold; says so in one line."""
        with self._live_lock:
            if self._live is None and not self._live_problem:
                c = self.config
                try:
                    # "auto": chosen from TEACHER_BASE_URL / the keys, whatever TEACHER says; nothing is recorded
                    self._live = connect("auto", cache="off", local_model=c.local_model,
                                         model=None if c.model == DEFAULT_LOCAL_ALIAS else c.model)
                except (RuntimeError, OSError) as e:  # TeacherError, the embedded model or llama.cpp missing
                    self._live_problem = " ".join(str(e).split()) or type(e).__name__
                else:
                    print(f"{CLASSROOM_LIVE}: {self._live.describe()}", file=sys.stderr, flush=True)
            if self._live is None:
                raise TeacherError(
                    f"{NEEDS_LIVE} the prompt \"{prompt_start(request['messages'])}\" is not in the replay cache "
                    "(edited?); set TEACHER_BASE_URL or OPENAI_API_KEY, or install the embedded teacher with "
                    "`python -m lecture_utils teacher install qwen2.5-coder-1.5b` "
                    f"(no live teacher now: {self._live_problem})")
            return self._live

    def _call_with_retries(self, request: dict, probing: bool) -> tuple[str, str, dict]:
        attempts = max(1, self.config.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return completion_fields(self.client.chat.completions.create(**request))
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                if probing and is_format_rejection(exc):
                    raise _FormatRejected() from exc
                retryable, wait_s, message = classify_error(exc)
                if not retryable:
                    raise TeacherError(message) from None
                if attempt == attempts:
                    raise TeacherError(f"{message} (gave up after {attempts} attempts)") from None
                c = self.config
                self.sleep(retry_delay(attempt, wait_s, c.backoff_base_s, c.backoff_max_s, c.max_retry_after_s))
        raise AssertionError("unreachable")

    def _account(self, reply: Reply) -> Reply:
        with self._lock:
            u = self.usage
            u.calls += 1
            u.cached_calls += reply.cached
            u.prompt_tokens += int(reply.usage.get("prompt_tokens", 0))
            u.completion_tokens += int(reply.usage.get("completion_tokens", 0))
            u.cost_usd += reply.cost_usd
        return reply


def connect(mode: str | None = None, **overrides: Any) -> Teacher:
    """A Teacher from the environment and `overrides`; mode "local" starts the embedded llama.cpp server."""
    config = TeacherConfig.from_env(mode, **overrides)
    if config.mode == "local" and not config.base_url and config.cache != "replay":
        try:
            from . import local_teacher
        except ImportError as e:
            raise TeacherError(f"the embedded teacher is not available ({e}): run `make lab` to set it up, "
                               "or set TEACHER_BASE_URL or OPENAI_API_KEY") from None
        server = local_teacher.ensure_server(model=config.local_model)
        config = dataclasses.replace(config, base_url=server.base_url, model=config.model or server.model_alias)
    return Teacher(config)


def check(mode: str | None = None, prompt: str = "In one sentence: who wrote Pride and Prejudice?",
          **overrides: Any) -> dict:
    """One real round trip to the configured teacher (the CLI's `teacher check`): where, which model, the reply."""
    if (mode or overrides.get("mode")) != "replay":
        overrides.setdefault("cache", "off")  # a check must reach the server, not the cache
    teacher = connect(mode, **overrides)
    reply = teacher.chat(prompt, max_tokens=80, temperature=0)
    return {"teacher": teacher.describe(), "mode": teacher.config.mode, "base_url": teacher.config.base_url,
            "model": reply.model, "reply": reply.text.strip(), "latency_s": round(reply.latency_s, 2),
            "usage": reply.usage, "cached": reply.cached}
