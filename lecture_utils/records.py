"""The record types that flow between the stages, and their JSONL reading and writing.

Each stage reads the previous stage's file and writes its own, so any notebook can be re-run alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


@dataclass
class Passage:
    """A piece of source text that remembers where it came from."""

    id: str  # stable, e.g. "ch12-p004" for a book, "guide-md-s02-p001" for a document
    source: str  # book file name or document path (relative to the folder loaded)
    text: str
    start: int  # character offsets into the cleaned text of `source`
    end: int
    chapter: int | None = None  # chapter number for a book
    section: str | None = None  # heading title for a document or chapter

    @property
    def unit(self) -> int | str:
        """The whole the passage belongs to: its chapter for a book, its document for a folder."""
        return self.chapter if self.chapter is not None else self.source


@dataclass
class Instruction:
    """One instruction of the taxonomy (Stage 2)."""

    id: str
    instruction: str
    category: str
    run: int = 0  # which teacher run produced it; -1 for human-written seeds
    origin: str = "teacher"  # "teacher", "seed" or "passage" (written from one passage, see passage_first.py)
    input: str = ""
    passage_id: str = ""  # the passage it was written from (passage-first instructions only)
    span: str = ""  # the words of that passage that answer it, copied verbatim
    prompt_sha: str = ""  # short hash of the prompt text that made it (the run's prompts.json holds the text)
    checks: dict[str, Any] = field(default_factory=dict)  # question-level checks (see grounded.py and verify.py)
    evidence: list[str] = field(default_factory=list)  # verbatim quotes of its passages that the answer rests on
    related: list[str] = field(default_factory=list)  # other passages it was written from (compare two passages)
    reference: str = ""  # the answer the teacher wrote with the task (Stage 3's answer must agree with it)


@dataclass
class Retrieved:
    id: str
    score: float


@dataclass
class QAPair:
    """A grounded answer to one instruction (Stage 3)."""

    id: str
    instruction_id: str
    instruction: str
    category: str
    answer: str
    retrieved: list[Retrieved] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    not_in_text: bool = False  # the teacher said the context does not contain the answer
    teacher: str = ""  # model that answered
    prompt_version: str = ""
    finish_reason: str = ""
    grounding: float | None = None  # share of answer sentences the retrieved text supports
    passage_id: str = ""  # the passage the instruction was written from, always first in the context
    span: str = ""  # the words of that passage that answer it
    checks: dict[str, Any] = field(default_factory=dict)  # each verifier's result (see verify.py)
    passed: bool | None = None  # True: every check passed; False: one failed; None: not checked
    prompt_sha: str = ""  # short hash of the answer prompt's text
    review: str = ""  # who vouches for it in the dataset: "person", "judge" or "checks" (automatic checks only)
    evidence: list[str] = field(default_factory=list)  # the instruction's evidence quotes (Stage 2)
    related: list[str] = field(default_factory=list)  # the instruction's other passages, after passage_id
    reference: str = ""  # the answer written with the instruction in Stage 2


CHECKLIST = ("accuracy", "helpfulness", "clarity", "conciseness", "completeness")
STATUSES = ("accept", "fix", "discard")


@dataclass
class Decision:
    """A reviewer's decision on one pair (Stage 4); appended to disk the moment it is made."""

    pair_id: str
    status: str  # one of STATUSES
    reason: str = ""
    checklist: dict[str, bool] = field(default_factory=dict)
    original_answer: str = ""
    edited_answer: str = ""
    reviewer: str = ""
    timestamp: str = ""


def to_dict(record: Any) -> dict:
    """A record as a plain dict for JSON, field by field, with the records, lists and dicts inside it made plain too.
    The kit's one serialiser; unlike dataclasses.asdict it does not deep-copy every value (that showed up in the
    factory's profiles at hundreds of pairs a second)."""
    if not dataclasses.is_dataclass(record):
        return dict(record)
    return {name: _plain(value) for name, value in vars(record).items()}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type[T], data: dict) -> T:
    """Build a record from a dict, ignoring unknown keys (files may carry extra fields)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if cls is QAPair and "retrieved" in kwargs:
        kwargs["retrieved"] = [r if isinstance(r, Retrieved) else Retrieved(**r) for r in kwargs["retrieved"]]
    return cls(**kwargs)


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records atomically (temp file, then rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(to_dict(r), ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def repair_tail(path: str | Path) -> bool:
    """Cut a half-written last line (left by a killed run) so that appending starts on a fresh line."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        pos = size
        while pos > 0:  # walk back to the last newline, a block at a time
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                f.truncate(pos - step + nl + 1)
                return True
            pos -= step
        f.truncate(0)
        return True


class LineWriter:
    """Appends records, one JSON line each, with a single write() on an O_APPEND file: a killed process leaves each
    write whole or absent, never a torn line in the middle of the file. A torn last line left by an earlier killed
    writer is cut first. fsync=True syncs every write (a decision must survive a crash); else only at close (the
    factory writes hundreds of lines a second, and the OS keeps written lines when a process dies)."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path, self.fsync = Path(path), fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.written = 0

    def write(self, *records: Any) -> None:
        """Append these records in one write (several: the lines of one item stay together)."""
        if records:
            data = memoryview("".join(json.dumps(to_dict(r), ensure_ascii=False) + "\n" for r in records).encode())
            while data:  # a short write (a full disk, a signal) goes on where it stopped
                data = data[os.write(self.fd, data):]
            self.written += len(records)
            if self.fsync:
                os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            if not self.fsync:  # with fsync=True every write was synced already
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "LineWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_jsonl(path: str | Path, *records: Any) -> None:
    """Append records (one line each, in one write) and sync them to disk, so a crash never loses a decision."""
    with LineWriter(path, fsync=True) as w:
        w.write(*records)


def iter_jsonl(path: str | Path, cls: type[T] | None = None) -> Iterator[T | dict]:
    """Yield records; a torn last line (from a killed writer) is skipped, any other bad line is an error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the previous stage's notebook first, or check the run directory.")
    for _, data in json_lines(path):
        yield from_dict(cls, data) if cls else data


def json_lines(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line, streamed; a torn last line ends it, any other bad line raises
    `error`."""
    with path.open(encoding="utf-8") as f:  # streamed: a 50,000-line file is never held in memory at once
        lines = enumerate(f, 1)
        while True:
            try:
                i, line = next(lines)
            except StopIteration:
                return
            except UnicodeDecodeError as e:
                raise error(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at position {e.start}): save "
                            "it as UTF-8 JSON Lines.") from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    return  # only the last line can lack its newline: half-written by an interrupted run
                raise error(f"{path}:{i}: not valid JSON ({e.msg}); fix or delete that line.") from None
            yield i, data


def read_jsonl(path: str | Path, cls: type[T] | None = None) -> list[T | dict]:
    return list(iter_jsonl(path, cls))
