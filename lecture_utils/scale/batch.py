"""The OpenAI Batch API path: the factory's requests sent as a file, answered within 24 hours at half the price.

    summary = run_batch("runs/demo/instructions.jsonl", index, "runs/demo/qa_pairs.jsonl", teacher=teacher)

Steps, each recorded in WORK_DIR/batch_state.json so that running it again carries on where it stopped:
write the requests (one JSONL line per instruction, custom_id = instruction id), upload the file (purpose "batch"),
create the batch, poll it with a growing interval, download the output and error files, and merge them into the same
output and failures files as the factory. Merging skips ids already there, so it is idempotent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from lecture_utils.answer.qa import no_passages_pair, pair_from_text, rag_request, retrieve_batch
from lecture_utils.errors import KitError
from lecture_utils.prompts import prompt_sha
from lecture_utils.records import Instruction, LineWriter, Retrieved, from_dict, to_dict
from lecture_utils.scale.runs import (
    FactoryConfig,
    failure_record,
    failures_path,
    iter_instructions,
    start_run,
)
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.teacher.prices import estimate_cost
from lecture_utils.teacher.transport import make_client
from lecture_utils.teacher.wire import AnswerError, MalformedReplyError, reply_parts, schema_strategies

ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000  # per batch file, the API's limit
MAX_BYTES = 190 * 1024 * 1024  # the limit is 200 MB; keep a margin
BATCH_DISCOUNT = 0.5  # batch requests cost half the live price
TERMINAL = ("completed", "failed", "expired", "cancelled")


class BatchError(KitError, RuntimeError):
    """The batch path cannot go on as asked; the message says how to fix it. Nothing written so far is lost."""


@dataclass
class BatchPart:
    """One batch: its request file, its manifest (what each custom_id needs to become a pair), and its state."""

    name: str
    requests: int
    file_id: str | None = None
    batch_id: str | None = None
    status: str = "written"  # written | submitted | <API status> | merged
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass
class BatchSummary:
    out: str
    failures: str
    parts: list[BatchPart] = field(default_factory=list)
    skipped: int = 0  # already in the output or failures file
    queued: int = 0  # new requests written to batch files this time
    pending: int = 0  # requests in batches that have not finished yet
    succeeded: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __str__(self) -> str:
        states = Counter(p.status for p in self.parts)
        return "\n".join([
            f"batch: {len(self.parts)} batch file(s) ({', '.join(f'{n} {s}' for s, n in states.items()) or 'none'}), "
            f"{self.queued:,} requests queued now, {self.pending:,} still pending",
            f"  {self.succeeded:,} answered -> {self.out}",
            f"  {self.failed:,} failed -> {self.failures}"
            + (f": {', '.join(f'{r} {n}' for r, n in self.reasons.items())}" if self.reasons else ""),
            f"  {self.skipped:,} already done; {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion "
            f"tokens, about ${self.cost_usd:.4f} at the batch price",
        ])


# --- state on disk ----------------------------------------------------------------------------------------------


def _load_state(path: Path) -> list[BatchPart]:
    if not path.exists():
        return []
    try:
        return [BatchPart(**p) for p in json.loads(path.read_text(encoding="utf-8"))["parts"]]
    except (ValueError, KeyError, TypeError):
        raise BatchError(f"{path} is damaged: delete it only if no batch is running (it holds the batch ids)") from None


def _save_state(path: Path, parts: list[BatchPart]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"parts": [dataclasses.asdict(p) for p in parts]}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# --- 1. requests ------------------------------------------------------------------------------------------------


def batch_line(custom_id: str, request: dict) -> dict:
    """One line of a batch input file."""
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": request}


def write_batch_input(instructions: Iterable[Instruction | dict] | str | Path, index: Any, work_dir: str | Path,
                      teacher_config: TeacherConfig, config: FactoryConfig | None = None, *, skip: set[str] = frozenset(),
                      first_part: int = 1, out: LineWriter | None = None, max_requests: int = MAX_REQUESTS) -> list[BatchPart]:
    """Write batch-NNNN.jsonl request files (and their .manifest.jsonl) for the instructions not in `skip`.
    Instructions no passage matches need no request: their not-in-text pair goes straight to `out`."""
    config = config or FactoryConfig()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    strategy = schema_strategies(teacher_config.server_kind)[0]
    sha = prompt_sha(config.system, config.prompt)
    parts: list[BatchPart] = []
    requests_f = manifest_f = None
    size = 0
    seen = set(skip)
    chunk: list[Instruction] = []

    def flush(chunk: list[Instruction]) -> None:
        nonlocal requests_f, manifest_f, size
        for inst, hits in zip(chunk, retrieve_batch(index, chunk, config.k)):
            if not hits:
                if out is not None:
                    out.write(no_passages_pair(inst))
                continue
            request, _ = rag_request(teacher_config, inst, hits, prompt=config.prompt, system=config.system,
                                     temperature=config.temperature, max_tokens=config.max_tokens, strategy=strategy)
            line = json.dumps(batch_line(inst.id, request), ensure_ascii=False) + "\n"
            if requests_f is None or parts[-1].requests >= max_requests or size + len(line) > MAX_BYTES:
                if requests_f is not None:
                    requests_f.close()
                    manifest_f.close()
                name = f"batch-{first_part + len(parts):04d}"
                parts.append(BatchPart(name=name, requests=0))
                requests_f = (work_dir / f"{name}.jsonl").open("w", encoding="utf-8")
                manifest_f = (work_dir / f"{name}.manifest.jsonl").open("w", encoding="utf-8")
                size = 0
            requests_f.write(line)
            # the whole instruction rides along (passage, span, evidence, related passages, reference, checks), so
            # a batch pair is the factory's pair for it
            manifest_f.write(json.dumps({**to_dict(inst), "answer_prompt_sha": sha, "model": request["model"],
                                         "retrieved": [[p.id, round(float(s), 4)] for p, s in hits]},
                                        ensure_ascii=False) + "\n")
            size += len(line.encode("utf-8"))
            parts[-1].requests += 1

    for inst in iter_instructions(instructions):
        if inst.id in seen:
            continue
        seen.add(inst.id)
        chunk.append(inst)
        if len(chunk) >= config.retrieval_batch:
            flush(chunk)
            chunk = []
    flush(chunk)
    if requests_f is not None:
        requests_f.close()
        manifest_f.close()
    return parts


# --- 2-4. upload, create, poll ----------------------------------------------------------------------------------


def submit(client: Any, work_dir: Path, part: BatchPart) -> None:
    """Upload the part's request file and create its batch (the file is not uploaded twice)."""
    if part.file_id is None:
        with (work_dir / f"{part.name}.jsonl").open("rb") as f:
            part.file_id = client.files.create(file=f, purpose="batch").id
    if part.batch_id is None:
        batch = client.batches.create(input_file_id=part.file_id, endpoint=ENDPOINT, completion_window="24h",
                                      metadata={"kit": "art-of-the-ask", "part": part.name})
        part.batch_id = batch.id
        part.status = batch.status


def poll(client: Any, parts: list[BatchPart], *, poll_s: float = 10.0, max_poll_s: float = 300.0,
         max_wait_s: float | None = None, sleep: Callable[[float], None] = time.sleep,
         on_change: Callable[[], None] | None = None) -> bool:
    """Poll unfinished batches until all are done (True) or max_wait_s passes (False); the wait grows 1.5x a time."""
    start, wait = time.monotonic(), poll_s
    while True:
        for part in parts:
            if part.batch_id and part.status not in TERMINAL and part.status != "merged":
                batch = client.batches.retrieve(part.batch_id)
                if batch.status != part.status:
                    part.status = batch.status
                    part.output_file_id = batch.output_file_id
                    part.error_file_id = batch.error_file_id
                    if on_change:
                        on_change()
        if all(p.status in TERMINAL or p.status == "merged" for p in parts):
            return True
        if max_wait_s is not None and time.monotonic() - start + wait > max_wait_s:
            return False
        sleep(wait)
        wait = min(max_poll_s, wait * 1.5)


# --- 5. merge ---------------------------------------------------------------------------------------------------


def _download(client: Any, file_id: str | None, dest: Path) -> list[dict]:
    if not file_id:
        return []
    if not dest.exists():  # keep a copy: the API deletes batch files after a while
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(client.files.content(file_id).read())
        os.replace(tmp, dest)
    return [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines() if line.strip()]


def _error_reason(entry: dict) -> tuple[str, str]:
    response = entry.get("response") or {}
    error = entry.get("error") or (response.get("body") or {}).get("error") or {}
    status = response.get("status_code")
    reason = f"HTTP {status}" if status else f"batch error {error.get('code') or ''}".strip()
    return reason, str(error.get("message") or error or "no detail")[:300]


def merge(client: Any, work_dir: Path, part: BatchPart, out: LineWriter, failures: LineWriter, done: set[str],
          summary: BatchSummary, prices: dict | None = None) -> None:
    """Turn a finished batch's output and error files into pairs and failures; items in neither get a failure
    saying the batch ended without them (expired, cancelled or failed)."""
    manifest = {}
    with (work_dir / f"{part.name}.manifest.jsonl").open(encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            manifest[m["id"]] = m
    entries = _download(client, part.output_file_id, work_dir / f"{part.name}.output.jsonl")
    entries += _download(client, part.error_file_id, work_dir / f"{part.name}.errors.jsonl")

    def fail(m: dict, reason: str, detail: str) -> None:
        failures.write(failure_record(m["id"], m["instruction"], m["category"], reason, detail, 1,
                                      batch=part.batch_id))
        summary.failed += 1
        summary.reasons[reason] = summary.reasons.get(reason, 0) + 1

    for entry in entries:
        m = manifest.get(entry.get("custom_id"))
        if m is None or m["id"] in done:
            continue
        done.add(m["id"])
        response = entry.get("response") or {}
        if response.get("status_code") != 200 or entry.get("error"):
            fail(m, *_error_reason(entry))
            continue
        inst = from_dict(Instruction, {k: v for k, v in m.items() if k != "prompt_sha" or "answer_prompt_sha" in m})
        sha = m["answer_prompt_sha"] if "answer_prompt_sha" in m else m.get("prompt_sha", "")  # older manifests
        hits = [Retrieved(pid, score) for pid, score in m["retrieved"]]
        try:
            text, finish_reason, refusal, usage = reply_parts(response.get("body") or {})
            summary.prompt_tokens += usage["prompt_tokens"]
            summary.completion_tokens += usage["completion_tokens"]
            summary.cost_usd += BATCH_DISCOUNT * estimate_cost(m["model"], usage["prompt_tokens"],
                                                               usage["completion_tokens"], prices)
            pair = pair_from_text(inst, hits, text, model=m["model"], finish_reason=finish_reason, refusal=refusal,
                                  prompt_sha=sha)
        except AnswerError as e:
            fail(m, e.reason, e.detail)
            continue
        except MalformedReplyError as e:
            fail(m, "malformed reply", str(e))
            continue
        out.write(pair)
        summary.succeeded += 1
    for item_id, m in manifest.items():
        if item_id not in done:
            done.add(item_id)
            fail(m, f"batch {part.status}", "the batch ended without an answer for this item; rerun with "
                                            "retry_failures=True to send it again")
    part.status = "merged"


# --- all together -----------------------------------------------------------------------------------------------


def run_batch(instructions: Iterable[Instruction | dict] | str | Path, index: Any, out: str | Path,
              failures: str | Path | None = None, *, teacher: Teacher | TeacherConfig | None = None,
              work_dir: str | Path | None = None, config: FactoryConfig | None = None, wait: bool = True,
              poll_s: float = 10.0, max_poll_s: float = 300.0, max_wait_s: float | None = None,
              sleep: Callable[[float], None] = time.sleep, max_requests: int = MAX_REQUESTS) -> BatchSummary:
    """Queue the instructions not done yet as batches, wait for them (unless wait=False) and merge the results.
    Run it again at any time: it resumes from WORK_DIR/batch_state.json (default: beside `out`, in batch/)."""
    config = config or FactoryConfig()
    tc = teacher.config if isinstance(teacher, Teacher) else teacher or TeacherConfig.from_env()
    if tc.cache == "replay" or not tc.base_url:
        raise BatchError("the Batch API needs a live server: set OPENAI_API_KEY (TEACHER=openai), not replay")
    out = Path(out)
    failures = failures_path(out, failures)
    work_dir = Path(work_dir) if work_dir is not None else out.parent / "batch"
    work_dir.mkdir(parents=True, exist_ok=True)
    state_path = work_dir / "batch_state.json"
    summary = BatchSummary(out=str(out), failures=str(failures))
    parts = _load_state(state_path)
    summary.parts = parts
    done = start_run(out, failures, config.retry_failures)
    queued_ids = set()
    for part in parts:
        if part.status != "merged":
            with (work_dir / f"{part.name}.manifest.jsonl").open(encoding="utf-8") as f:
                queued_ids |= {json.loads(line)["id"] for line in f}
    client = make_client(tc)  # a missing key fails here, before any file is opened
    out_w, fail_w = LineWriter(out), LineWriter(failures)
    try:
        items = list(iter_instructions(instructions)) if not isinstance(instructions, (str, Path)) else instructions
        summary.skipped = sum(1 for i in iter_instructions(items) if i.id in done)
        new = write_batch_input(items, index, work_dir, tc, config, skip=done | queued_ids,
                                first_part=len(parts) + 1, out=out_w, max_requests=max_requests)
        summary.queued = sum(p.requests for p in new)
        parts.extend(new)
        _save_state(state_path, parts)  # before any upload: a crash after it still knows the files
        for part in parts:
            if part.status == "written" or part.batch_id is None:
                submit(client, work_dir, part)
                _save_state(state_path, parts)
        if wait:
            poll(client, parts, poll_s=poll_s, max_poll_s=max_poll_s, max_wait_s=max_wait_s, sleep=sleep,
                 on_change=lambda: _save_state(state_path, parts))
        else:
            poll(client, parts, max_wait_s=0, sleep=sleep)
        for part in parts:
            if part.status in TERMINAL:
                merge(client, work_dir, part, out_w, fail_w, done, summary, tc.prices)
                _save_state(state_path, parts)
        summary.pending = sum(p.requests for p in parts if p.status != "merged")
        summary.succeeded = out_w.written  # includes the pairs that needed no request
    finally:
        out_w.close()
        fail_w.close()
        client.close()
    return summary
