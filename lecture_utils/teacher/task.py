"""A Task is one kind of teacher call: its system prompt, its prompt template, the JSON it must return, and how a reply
is read. A notebook cell runs it once; `run_many` runs a function of it over many items, resumably.

    clear = Task("clarity", CLEAR_PROMPT, VERDICT_SCHEMA, system=None, max_tokens=12)
    clear.one(teacher, title="Treasure Island", instruction="Why does Jim hide in the apple barrel?")  # {"verdict": "YES"}
"""

from __future__ import annotations

import string
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from lecture_utils.prompts import prompt_sha
from lecture_utils.records import append_jsonl, iter_jsonl
from lecture_utils.teacher.wire import CallError, StructuredOutputError

VERDICT_SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["YES", "NO"]}},
                  "required": ["verdict"]}  # a YES/NO verdict: a grammar on a llama.cpp server, so nothing else comes back


class TaskError(StructuredOutputError):
    """A Task that cannot be filled in or whose reply was never valid; `.reason` holds the short label ("bad prompt",
    "no valid reply"), `.raw` the last reply when there was one."""

    def __init__(self, message: str, reason: str, raw: str = "") -> None:
        super().__init__(message, raw)
        self.reason = reason


@dataclass(frozen=True)
class Task:
    name: str
    prompt: str  # a template with {placeholders}; literal braces written {{ and }}
    schema: dict | None  # the JSON the reply must match (a grammar on a llama.cpp server); None: plain text
    system: str | None = None
    max_tokens: int = 300
    temperature: float = 0.0
    attempts: int | None = 2  # an invalid JSON reply is asked for again with another seed (None: the teacher's number)
    seed: int | None = None

    @property
    def fields(self) -> list[str]:
        return [f for _, f, _, _ in string.Formatter().parse(self.prompt) if f]

    @property
    def sha(self) -> str:
        """Short hash of the system prompt and the template: records carry it, prompts.json maps it to the text."""
        return prompt_sha(self.system, self.prompt)

    def render(self, **values: Any) -> str:
        try:
            return self.prompt.format(**values)
        except (KeyError, IndexError, ValueError) as e:  # ValueError: a lone { or } (a brace meant literally)
            problem = f"an unknown placeholder {e}" if isinstance(e, (KeyError, IndexError)) else f"a stray brace ({e})"
            raise TaskError(f"the {self.name} prompt has {problem}: the placeholders it can use are "
                            f"{', '.join('{' + v + '}' for v in values)}; write a literal brace as {{{{ or }}}}",
                            "bad prompt") from None

    def one(self, teacher: Any, **values: Any) -> dict:
        """Send the filled-in prompt once and return the parsed JSON ({"text": ...} for a plain-text Task); TaskError
        when no valid reply came back."""
        reply = self.send(teacher, self.render(**values))
        if self.schema is None:
            return {"text": reply.text.strip(), "finish_reason": reply.finish_reason}
        return reply.data

    def send(self, teacher: Any, text: str, **overrides: Any) -> Any:
        """Send a prompt already written (built by a function, not a template) as this Task; `overrides` change
        schema, temperature, max_tokens or seed for this call. Returns the teacher's Reply (`.data`: the JSON)."""
        spec = {"schema": self.schema, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "seed": self.seed, "system": self.system, "attempts": self.attempts, **overrides}
        schema, attempts = spec.pop("schema"), spec.pop("attempts")
        if schema is None:
            return teacher.chat(text, **spec)
        try:
            return teacher.structured(text, schema, attempts=attempts, **spec)
        except TaskError:
            raise
        except StructuredOutputError as e:
            raise TaskError(f"{self.name}: {e}", "no valid reply", e.raw) from None

    def edited(self, prompt: str | None = None, system: str | None = None) -> "Task":
        """The same Task with a student's prompt (None keeps the default)."""
        return replace(self, prompt=self.prompt if prompt is None else prompt,
                       system=self.system if system is None else system)


@dataclass
class ManySummary:
    """What run_many did: the one summary of a loop over many items (Stage 3 at scale has the factory's, with money
    and tokens). `what` names the items ("passages", "Self-Instruct runs"), `made` what they give ("questions")."""

    items: int = 0
    asked: int = 0  # items worked on in this call (the rest were done before)
    kept: int = 0
    dropped: int = 0
    failed: int = 0
    what: str = "items"
    made: str = "records"
    out: str = ""

    @property
    def skipped(self) -> int:
        """Items done by an earlier run, so not asked again."""
        return self.items - self.asked

    def __str__(self) -> str:
        where = f" -> {self.out}" if self.out else ""
        return (f"{self.items} {self.what} ({self.asked} worked on now): {self.kept} {self.made} kept{where}, "
                f"{self.dropped} dropped by the checks, {self.failed} {self.what} failed")


def run_many(items: Sequence[Any], key: Callable[[Any], str], work: Callable[[Any], tuple[list, list]],
             out: str | Path, drops: str | Path, *, concurrency: int = 1, progress: Callable | None = None,
             done_key: Callable[[dict], Any] = lambda r: r.get("job"),
             drop_on: tuple[type[BaseException], ...] = (TaskError, CallError),
             failure: Callable[[str, BaseException], Any] | None = None, retry_failed: bool = False,
             what: str = "items", made: str = "records") -> ManySummary:
    """The kit's loop over many items for any Task: work(item) -> (kept records, dropped records), appended to `out`
    and `drops` the moment the item is done (one write per file and item, so a killed run leaves an item whole or
    absent). Resumable: an item whose key(item) is done_key(record) of a line in either file is skipped.

    With concurrency > 1, items run on that many threads; the Teacher's engine sends their calls at once (up to its
    connections) with its cache, retries and budgets. An exception in `drop_on` drops the item with its reason (a
    replay miss, an invalid reply, a call that failed after its retries), except a CallError that every item would
    share (unreachable, a rejected key, no credit, a prompt the recording lacks with no live teacher), which stops the
    run with nothing lost. failure(key, error) makes a failed item's record (default {"job", "reason", "failed":
    true}); a failed item is skipped on a resume like a finished one, unless retry_failed=True.
    Stage 3 answers at Stage 5 scale go through scale/factory.py, on the same engine, asynchronously."""
    out, drops = Path(out), Path(drops)
    done = {done_key(r) for path in (out, drops) if path.exists() for r in iter_jsonl(path)
            if not (retry_failed and r.get("failed"))}
    s = ManySummary(items=len(items), what=what, made=made, out=str(out))
    todo = [item for item in items if key(item) not in done]
    s.asked = len(todo)
    lock = threading.Lock()

    def one(item: Any) -> None:
        k = key(item)
        try:
            kept, dropped = work(item)
        except drop_on as e:
            if isinstance(e, CallError) and e.fatal:
                raise
            reason = f"{getattr(e, 'reason', '') or 'no valid reply'}: {str(e)[:160]}"
            kept, dropped = [], [failure(k, e) if failure else {"job": k, "reason": reason, "failed": True}]
            failed = True
        else:
            failed = False
        with lock:
            if kept:
                append_jsonl(out, *kept)
            if dropped:
                append_jsonl(drops, *dropped)
            s.kept += len(kept)
            s.failed += failed
            s.dropped += 0 if failed else len(dropped)

    if concurrency <= 1:
        for item in (progress(todo) if progress else todo):
            one(item)
        return s
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(one, item) for item in todo]
        try:
            for future in (progress(as_completed(futures), total=len(futures)) if progress else as_completed(futures)):
                future.result()  # a failure every item would share stops the run here
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # items not started stay for the next run
            raise
    return s


def drops_path(out: str | Path) -> Path:
    """Where run_many's callers keep what the checks dropped (and the items that failed): OUT.dropped.jsonl."""
    out = Path(out)
    return out.with_name(out.stem + ".dropped.jsonl")


def done_records(path: str | Path, jobs: Iterable[str]) -> list[dict]:
    """The lines of `path` that belong to these jobs, in file order."""
    want = set(jobs)
    return [r for r in iter_jsonl(path) if r.get("job") in want] if Path(path).exists() else []
