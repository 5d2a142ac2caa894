"""A fake OpenAI-compatible server on 127.0.0.1 for tests: real HTTP, scripted behaviour.

    with FakeOpenAI() as fake:
        fake.enqueue(rate_limit(retry_after=0.01), reply("hello"))
        ...  # point a client at fake.base_url
        fake.requests[-1].body["messages"]

Each POST /v1/chat/completions takes the next behaviour from the queue; when the queue is empty it uses
`fake.default` (a deterministic echo: the last user message for text, a small valid instance for a schema).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Behaviour:
    """What the server does with one chat request."""

    kind: str = "reply"  # reply | error | drop | malformed
    text: str | None = None  # reply text; None means echo
    status: int = 200
    message: str = ""  # error message in the OpenAI error body
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (slow replies, timeouts)
    finish_reason: str = "stop"
    body: str | None = None  # raw body for kind="malformed"


def reply(text: str, finish_reason: str = "stop", delay_s: float = 0.0) -> Behaviour:
    return Behaviour("reply", text=text, finish_reason=finish_reason, delay_s=delay_s)


def reply_json(data: Any, **kwargs: Any) -> Behaviour:
    return reply(json.dumps(data), **kwargs)


def echo(delay_s: float = 0.0) -> Behaviour:
    return Behaviour("reply", delay_s=delay_s)


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Behaviour:
    return Behaviour("error", status=status, message=message, headers=headers or {})


def rate_limit(retry_after: float | None = None, retry_after_ms: float | None = None, code: str = "rate_limit_exceeded") -> Behaviour:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = f"{retry_after_ms:g}"
    b = error(429, "Rate limit reached (scripted)", headers)
    b.text = code  # carried into the error body's "code"
    return b


def slow(delay_s: float, then: Behaviour | None = None) -> Behaviour:
    b = then or echo()
    b.delay_s = delay_s
    return b


def drop() -> Behaviour:
    """Close the connection without sending any reply."""
    return Behaviour("drop")


def malformed(body: str = '{"id": "chatcmpl-x", "choices": [') -> Behaviour:
    """Answer 200 with a body that is not JSON."""
    return Behaviour("malformed", body=body)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any


def example_from_schema(schema: dict, label: str = "echo") -> Any:
    """A small, deterministic instance of a JSON schema (the subset the kit uses)."""
    counter = [0]

    def make(s: dict) -> Any:
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return s["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in s:
                return make(s[key][0])
        t = s.get("type", "object" if "properties" in s else "string")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "null")
        if t == "object":
            return {k: make(v) for k, v in s.get("properties", {}).items()}
        if t == "array":
            n = max(s.get("minItems", 1), 1)
            n = min(n, s.get("maxItems", n))
            return [make(s.get("items", {})) for _ in range(n)]
        if t in ("integer", "number"):
            value = s.get("minimum", 1)
            return min(value, s.get("maximum", value))
        if t == "boolean":
            return False
        if t == "null":
            return None
        counter[0] += 1
        return f"{label} {counter[0]}"

    return make(schema)


def _schema_of(body: dict) -> dict | None:
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return (rf.get("json_schema") or {}).get("schema")
    if rf.get("type") == "json_object":
        return rf.get("schema") or {"type": "object"}
    return None


def _words(text: str) -> int:
    return len(text.split())


class FakeOpenAI:
    """An OpenAI-compatible HTTP server in a background thread, on a free port of 127.0.0.1."""

    def __init__(self, models: tuple[str, ...] = ("fake-model",), owned_by: str = "fake") -> None:
        self.models = list(models)
        self.owned_by = owned_by  # "llamacpp" makes it look like a llama.cpp server
        self.requests: list[RecordedRequest] = []
        self.default: Behaviour | Callable[[dict], Behaviour] = echo()
        self.latency_s = 0.0  # added to every chat reply (benchmarks)
        self.json_schema_status: int | None = None  # e.g. 500: reject response_format json_schema like llama.cpp
        self._queue: deque[Behaviour | Callable[[dict], Behaviour]] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- scripting -------------------------------------------------------------------------
    def enqueue(self, *behaviours: Behaviour | str | dict | list | Callable[[dict], Behaviour]) -> None:
        """Queue behaviours for the next chat requests; a str is a reply, a dict or list a JSON reply."""
        with self._lock:
            for b in behaviours:
                if isinstance(b, str):
                    b = reply(b)
                elif isinstance(b, (dict, list)):
                    b = reply_json(b)
                self._queue.append(b)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _next(self, body: dict) -> Behaviour:
        with self._lock:
            b = self._queue.popleft() if self._queue else self.default
        return b(body) if callable(b) else b

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- answers ---------------------------------------------------------------------------
    def completion(self, body: dict, b: Behaviour) -> dict:
        messages = body.get("messages") or []
        schema = _schema_of(body)
        text = b.text
        if text is None:
            last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
            text = json.dumps(example_from_schema(schema)) if schema is not None else f"echo: {last_user}"
        prompt_tokens = sum(_words(str(m.get("content") or "")) for m in messages)
        completion_tokens = _words(text)
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.models[0],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": b.finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # benchmarks open many connections at once
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the script


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, Nagle's algorithm adds ~40 ms per reply
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:
        pass

    def _record(self, body: Any) -> None:
        fake = self.server.fake
        with fake._lock:
            fake.requests.append(RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: str | None = None) -> None:
        data = (raw if raw is not None else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record(None)
        fake = self.server.fake
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": fake.owned_by} for m in fake.models]
            self._send(200, {"object": "list", "data": data})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = raw
        self._record(body)
        fake = self.server.fake
        if not self.path.rstrip("/").endswith("/chat/completions") or not isinstance(body, dict):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        rf = body.get("response_format") or {}
        if fake.json_schema_status and rf.get("type") == "json_schema":
            msg = "response_format type json_schema is not supported; use json_object with a schema"
            self._send(fake.json_schema_status, {"error": {"message": msg, "type": "invalid_request_error", "code": fake.json_schema_status}})
            return
        b = fake._next(body)
        delay = b.delay_s + fake.latency_s
        if delay:
            time.sleep(delay)
        if b.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif b.kind == "malformed":
            self._send(200, None, raw=b.body or "")
        elif b.kind == "error":
            err = {"message": b.message, "type": "invalid_request_error" if b.status < 500 else "server_error", "code": b.text}
            self._send(b.status, {"error": err}, b.headers)
        else:
            self._send(200, fake.completion(body, b))
