"""A small OpenAI-compatible chat server for benchmarks and factory tests: fixed latency, a concurrency cap, faults.

Plain asyncio (one Protocol per connection, no framework) so that 128+ keep-alive connections cost little CPU.
Run it in its own process: `python bench/fake_latency_server.py --latency 0.5 --cap 128` prints `PORT <n>` when ready.

Every request waits `latency` seconds while holding one of `cap` slots, so the best any client can do is cap/latency
requests per second. With --fault-rate, that share of requests fails at random: 429 with Retry-After, 500, a reply
that never comes (timeout), a dropped connection, or malformed JSON. Instructions containing REFUSE, EMPTY or
NOTINTEXT always get a refusal, an empty answer or the not-in-the-text marker, so permanent failures are testable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import sys
import time
from collections import deque

NOT_IN_TEXT = "The provided passages do not contain the answer."  # mirrors lecture_utils.prompts.NOT_IN_TEXT
FAULTS = ("429", "500", "timeout", "drop", "bad_body", "bad_content")
ID_RE = re.compile(r"\[([A-Za-z0-9_.:-]+)\] ")
INSTRUCTION_RE = re.compile(r"Instruction: (.*)")


def _http(status: int, body: bytes, extra: str = "", close: bool = False) -> bytes:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "X")
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{extra}connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + body


def completion_body(request: dict, n: int, fault: str | None = None) -> bytes:
    """A chat.completion answering from the passage ids found in the prompt (or a malformed one)."""
    messages = request.get("messages") or [{"content": ""}]
    prompt = str(messages[-1].get("content", ""))
    found = INSTRUCTION_RE.search(prompt)
    instruction = found.group(1) if found else prompt[:80]
    ids = ID_RE.findall(prompt)
    refusal = None
    if "REFUSE" in instruction:
        content, refusal = None, "I can't help with that."
    elif "EMPTY" in instruction:
        content = json.dumps({"answer": "", "cited": []})
    elif "NOTINTEXT" in instruction or not ids:
        content = json.dumps({"answer": NOT_IN_TEXT, "cited": []})
    else:
        content = json.dumps({"answer": f"The passages answer this: {instruction[:60]}", "cited": ids[:2]})
    if fault == "bad_content":
        content = '{"answer": "The passages say'  # cut off mid-string: unparseable even by a forgiving parser
    reply = {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": len(prompt) // 4 + 8,
            "completion_tokens": len(content or "") // 4 + 1,
            "total_tokens": len(prompt) // 4 + 9 + len(content or "") // 4,
        },
    }
    body = json.dumps(reply).encode()
    return body[: len(body) // 2] if fault == "bad_body" else body


class Server:
    """Admission control (the cap), latency and fault injection shared by all connections."""

    def __init__(self, latency: float, cap: int, fault_rate: float, retry_after: float, hang: float, seed: int):
        self.latency, self.cap, self.fault_rate = latency, cap, fault_rate
        self.retry_after, self.hang = retry_after, hang
        self.rng = random.Random(seed)
        self.active = 0
        self.waiting: deque = deque()
        self.count = 0
        self.stats = {"requests": 0, **{f: 0 for f in FAULTS}}
        self.loop = asyncio.get_event_loop()

    def handle(self, conn: "Connection", method: str, path: str, body: bytes) -> None:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            conn.send(_http(200, json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()))
            return
        if method == "GET" and path.rstrip("/").endswith("/stats"):
            conn.send(_http(200, json.dumps(self.stats).encode()))
            return
        if not (method == "POST" and path.rstrip("/").endswith("/chat/completions")):
            conn.send(_http(404, b'{"error": {"message": "not found"}}'))
            return
        self.stats["requests"] += 1
        self.count += 1
        fault = self.rng.choice(FAULTS) if self.fault_rate and self.rng.random() < self.fault_rate else None
        if fault:
            self.stats[fault] += 1
        if fault == "429":  # rejected at the door: costs no slot, like a real rate limiter
            body = b'{"error": {"message": "Rate limit reached (fake)", "type": "rate_limit_exceeded"}}'
            ms = int(self.retry_after * 1000)
            conn.send(_http(429, body, f"retry-after: {max(1, round(self.retry_after))}\r\nretry-after-ms: {ms}\r\n"))
            return
        if fault == "timeout":  # hold the request (and its connection) well past any sane client timeout
            self.loop.call_later(self.hang, conn.send, _http(500, b'{"error": {"message": "too late"}}'))
            return
        job = (conn, body, fault, self.count)
        if self.active < self.cap:
            self._start(job)
        else:
            self.waiting.append(job)

    def _start(self, job) -> None:
        self.active += 1
        self.loop.call_later(self.latency, self._finish, job)

    def _finish(self, job) -> None:
        conn, body, fault, n = job
        self.active -= 1
        if self.waiting:
            self._start(self.waiting.popleft())
        if fault == "drop":
            conn.drop()
        elif fault == "500":
            conn.send(_http(500, b'{"error": {"message": "The server had an error (fake)", "type": "server_error"}}'))
        else:
            try:
                request = json.loads(body)
            except ValueError:
                conn.send(_http(400, b'{"error": {"message": "request body is not JSON"}}'))
                return
            conn.send(_http(200, completion_body(request, n, fault)))


class Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive request parsing, just enough for the openai client."""

    def __init__(self, server: Server):
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path = head[0].split(" ")[:2]
            self.server.handle(self, method, path, body)


async def serve(args) -> None:
    server = Server(args.latency, args.cap, args.fault_rate, args.retry_after, args.hang, args.seed)
    srv = await asyncio.get_running_loop().create_server(
        lambda: Connection(server), "127.0.0.1", args.port, backlog=4096, reuse_address=True
    )
    port = srv.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    srv.close()
    if args.stats:
        print(json.dumps(server.stats), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency", type=float, default=0.5, help="seconds each request takes")
    p.add_argument("--cap", type=int, default=128, help="requests served at the same time")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail at random")
    p.add_argument("--retry-after", type=float, default=0.2, help="seconds a 429 asks the client to wait")
    p.add_argument("--hang", type=float, default=60.0, help="seconds a 'timeout' fault keeps the client waiting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats", action="store_true", help="print fault counts to stderr on exit")
    args = p.parse_args(argv)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
