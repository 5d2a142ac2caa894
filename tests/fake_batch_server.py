"""A fake of the OpenAI files and batches endpoints on 127.0.0.1, enough for the openai client's batch workflow.

    with FakeBatchServer() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="x")
        ...  # files.create(purpose="batch"), batches.create, batches.retrieve, files.content

A batch moves one state per poll (validating -> in_progress -> finalizing -> completed); on completion each input
line is answered by `answer(body)`: instructions containing FAIL get a 500 in the error file, REFUSE a refusal,
BADJSON an unparseable answer; the rest cite the first passage id in the prompt. `expire_after` ends a batch as
"expired" with only its first N lines answered.
"""

from __future__ import annotations

import email.parser
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ID_RE = re.compile(r"\[([A-Za-z0-9_.:-]+)\] ")
INSTRUCTION_RE = re.compile(r"Instruction: (.*)")
STEPS = ("validating", "in_progress", "finalizing", "completed")


def answer(body: dict) -> tuple[int, dict]:
    """(status code, response body) for one chat completion request of a batch."""
    prompt = str((body.get("messages") or [{}])[-1].get("content", ""))
    found = INSTRUCTION_RE.search(prompt)
    instruction = found.group(1) if found else ""
    if "FAIL" in instruction:
        return 500, {"error": {"message": "The server had an error (fake)", "type": "server_error"}}
    ids = ID_RE.findall(prompt)
    refusal = None
    content: str | None = json.dumps({"answer": f"Answered from the passages: {instruction[:50]}", "cited": ids[:1]})
    if "REFUSE" in instruction:
        content, refusal = None, "I can't help with that."
    elif "BADJSON" in instruction:
        content = "Sure! The answer is that"
    usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content or "") // 4}
    return 200, {"id": "chatcmpl-batch", "object": "chat.completion", "created": int(time.time()),
                 "model": body.get("model"), "usage": {**usage, "total_tokens": sum(usage.values())},
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content, "refusal": refusal}}]}


class FakeBatchServer:
    def __init__(self, expire_after: int | None = None) -> None:
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.expire_after = expire_after
        self.log: list[tuple[str, str]] = []  # (method, path) of every request
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "FakeBatchServer":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the API ---
    def add_file(self, data: bytes, filename: str, purpose: str) -> dict:
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                   "filename": filename, "purpose": purpose, "status": "processed", "data": data}
            return self.files[file_id]

    def create_batch(self, params: dict) -> tuple[int, dict]:
        source = self.files.get(params.get("input_file_id"))
        if source is None or source["purpose"] != "batch":
            return 400, {"error": {"message": "input_file_id must name a file uploaded with purpose 'batch'"}}
        if params.get("endpoint") != "/v1/chat/completions" or params.get("completion_window") != "24h":
            return 400, {"error": {"message": "endpoint or completion_window not supported"}}
        with self._lock:
            batch_id = f"batch_{len(self.batches) + 1}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": params["endpoint"], "errors": None,
                "input_file_id": params["input_file_id"], "completion_window": "24h", "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
                "metadata": params.get("metadata"), "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            return 200, self.batches[batch_id]

    def advance(self, batch_id: str) -> dict:
        """Each retrieve moves the batch one step; the last step writes its output and error files."""
        batch = self.batches[batch_id]
        if batch["status"] in ("completed", "expired", "failed", "cancelled"):
            return batch
        step = STEPS[STEPS.index(batch["status"]) + 1]
        if step == "in_progress":
            problem = self._check_input(self.files[batch["input_file_id"]]["data"])
            if problem:
                batch.update(status="failed", errors={"object": "list", "data": [{"code": "invalid_request", "message": problem}]})
                return batch
        if step == "completed":
            self._finish(batch)
        else:
            batch["status"] = step
        return batch

    def _check_input(self, data: bytes) -> str:
        seen = set()
        for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
            except ValueError:
                return f"line {n} is not JSON"
            if set(row) != {"custom_id", "method", "url", "body"} or row["method"] != "POST" or row["url"] != "/v1/chat/completions":
                return f"line {n}: needs exactly custom_id, method POST, url /v1/chat/completions and body"
            if row["custom_id"] in seen:
                return f"line {n}: duplicate custom_id {row['custom_id']}"
            if "model" not in row["body"] or "messages" not in row["body"]:
                return f"line {n}: the body needs model and messages"
            seen.add(row["custom_id"])
        return ""

    def _finish(self, batch: dict) -> None:
        rows = [json.loads(line) for line in self.files[batch["input_file_id"]]["data"].decode("utf-8").splitlines()]
        if self.expire_after is not None:
            rows = rows[: self.expire_after]
        out, errors = [], []
        for i, row in enumerate(rows):
            status, body = answer(row["body"])
            entry = {"id": f"batch_req_{i}", "custom_id": row["custom_id"],
                     "response": {"status_code": status, "request_id": f"req_{i}", "body": body}, "error": None}
            (out if status == 200 else errors).append(entry)
        counts = batch["request_counts"]
        counts.update(total=len(rows), completed=len(out), failed=len(errors))
        for entries, key in ((out, "output_file_id"), (errors, "error_file_id")):
            if entries:
                data = "".join(json.dumps(e) + "\n" for e in entries).encode()
                batch[key] = self.add_file(data, f"{batch['id']}_{key}.jsonl", "batch_output")["id"]
        batch["status"] = "expired" if self.expire_after is not None else "completed"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps({k: v for k, v in payload.items() if k != "data"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        fake: FakeBatchServer = self.server.fake
        fake.log.append(("GET", self.path))
        parts = self.path.split("?")[0].rstrip("/").split("/")
        if len(parts) >= 4 and parts[-3] == "files" and parts[-1] == "content" and parts[-2] in fake.files:
            self._send(200, {}, raw=fake.files[parts[-2]]["data"])
        elif parts[-2] == "files" and parts[-1] in fake.files:
            self._send(200, fake.files[parts[-1]])
        elif parts[-2] == "batches" and parts[-1] in fake.batches:
            self._send(200, fake.advance(parts[-1]))
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        fake: FakeBatchServer = self.server.fake
        fake.log.append(("POST", self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/files"):
            message = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            fields = {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}
            if "file" not in fields or "purpose" not in fields:
                self._send(400, {"error": {"message": "multipart upload needs 'file' and 'purpose'"}})
                return
            purpose = fields["purpose"].get_payload(decode=True).decode()
            data = fields["file"].get_payload(decode=True)
            self._send(200, fake.add_file(data, fields["file"].get_filename() or "upload.jsonl", purpose))
        elif path.endswith("/batches"):
            self._send(*fake.create_batch(json.loads(body)))
        elif path.endswith("/cancel") and path.split("/")[-2] in fake.batches:
            batch = fake.batches[path.split("/")[-2]]
            batch["status"] = "cancelled"
            self._send(200, batch)
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
