"""What goes over the wire to the teacher and what comes back: requests, cache keys, replies, errors.

Pure functions, no I/O: building a chat request for a structured-output strategy (OpenAI's json_schema, llama.cpp's
json_object+schema, or the schema described in the prompt), the cache key of a request, the parts of a chat
completion, forgiving JSON parsing and schema checks, and what an error means (retry or not, after how long).
The engine (engine.py) and the Batch API path (batch.py) both build on them.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import re
import time
from typing import Any

import openai

from lecture_utils.errors import KitError

PREVIEW_CHARS = 400  # longest excerpt of a server's error text shown in a message


class TeacherError(KitError, RuntimeError):
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



class AnswerError(KitError, RuntimeError):
    """The teacher replied but gave no usable answer; `.reason` is a short label ("refusal", "parse error", ...)
    and `.retryable` says whether asking again may help."""

    def __init__(self, reason: str, detail: str = "", retryable: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.retryable = reason, detail, retryable
        self.attempts = 0  # requests it took (0: the reply came from the cache)
        self.reply: Any = None  # the reply it was about, when there was one


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


def build_request(config: Any, messages: list[dict], *, temperature: float = 0.7, max_tokens: int = 512,
                  seed: int | None = None, schema: dict | None = None, strategy: str | None = None,
                  **params: Any) -> dict:
    """The body of a chat request for `config` (a TeacherConfig: its model and server_kind); no key, no URL."""
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


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]} ...[+{len(text) - limit} chars]"


def prompt_start(messages: list[dict], n: int = 70) -> str:
    """The start of the last user message, on one line, for error messages."""
    text = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."



# --- replies ----------------------------------------------------------------------------------------------------


def reply_parts(completion: Any) -> tuple[str, str, str | None, dict]:
    """(text, finish_reason, refusal, usage) from a chat completion as a dict. A refusal with no content is also the
    text, so a notebook shows it; callers that build records look at `refusal` first."""
    try:
        choice = completion["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReplyError("the reply has no choices[0].message") from None
    usage = completion.get("usage") or {}
    usage = {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
             "completion_tokens": int(usage.get("completion_tokens") or 0)}
    refusal = message.get("refusal") or None
    content = message.get("content")
    text = content if content is not None else (refusal or "")
    return text, choice.get("finish_reason") or "", refusal, usage


# --- parsing and validating JSON --------------------------------------------------------------------------------

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
    return preview(" ".join(str(text).split()), 200)


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
        return True, None, f"the teacher server sent a malformed reply ({preview(str(exc), 120)})"
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


class CallError(TeacherError):
    """A call that failed for good. `.reason` is the short label a failures file records ("HTTP 429", "timeout",
    "connection error", "malformed reply", "replay miss"), `.detail` the one-line message, and `.fatal` is True
    when every other call would fail the same way (a rejected key, a wrong URL, no credit left)."""

    def __init__(self, message: str, reason: str, *, detail: str = "", attempts: int = 0, fatal: bool = False) -> None:
        super().__init__(message)
        self.reason, self.detail, self.attempts, self.fatal = reason, detail or str(self), attempts, fatal


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
        return "timeout"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "connection error"
    if isinstance(exc, (openai.APIError, MalformedReplyError)):
        return "malformed reply"
    return type(exc).__name__


def affects_every_item(exc: BaseException, retryable: bool, message: str) -> bool:
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (401, 403, 404):
        return True
    if isinstance(exc, openai.APIConnectionError) and not retryable:  # nothing listens at that URL
        return True
    return "insufficient_quota" in message
