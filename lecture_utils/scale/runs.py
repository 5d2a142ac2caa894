"""What every Stage 5 back end shares (the factory, the Batch API path, Stage 2 at scale): the run's settings, its
files and its bookkeeping.

Every instruction ends in exactly one place: a QAPair line in the output file, or a line in the failures file that
says why. Each line is written with one write() call, so a run killed at any moment leaves whole lines; the next run
skips every id already in either file (the done-set) and finishes the rest.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from lecture_utils.answer.qa import ANSWER
from lecture_utils.errors import KitError
from lecture_utils.records import Instruction, from_dict, json_lines, repair_tail


class FactoryError(KitError, RuntimeError):
    """The run cannot go on (bad input, a teacher that rejects every call); what was written so far is kept."""


@dataclass
class FactoryConfig:
    """How hard to push the teacher. The defaults suit a hosted API; a local llama.cpp server wants concurrency 1-4."""

    concurrency: int | None = None  # requests in flight at once (and connections); None: 8, or 2 for the local teacher
    rpm: float | None = None  # requests per minute budget (None: no limit)
    tpm: float | None = None  # tokens per minute budget, prompt + max_tokens counted up front
    timeout_s: float | None = None  # per attempt; None: the teacher's timeout
    max_attempts: int = 5  # per request, for 429s, 5xx, timeouts and dropped connections
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    k: int = 3  # passages per instruction (its own passage first, for passage-first instructions)
    temperature: float = ANSWER.temperature  # the grounded answer's Task (answer/qa.py) gives every default
    max_tokens: int = ANSWER.max_tokens
    prompt: str = ANSWER.prompt
    system: str | None = ANSWER.system
    keep_not_in_text: bool = True  # False: "not in the passages" answers go to the failures file
    retry_failures: bool = False  # True: items in the failures file are tried again
    window: int | None = None  # items held in memory at once (default 2 x concurrency)
    retrieval_batch: int = 64  # instructions retrieved together
    progress: bool = True
    max_cost_usd: float | None = None  # stop before a request could take the spend (kept across resumes) past this
    target_kept: int | None = None  # stop asking once this many answers (earlier runs' included) pass the free checks

    def __post_init__(self) -> None:
        if (self.concurrency is not None and self.concurrency < 1) or self.max_attempts < 1 or self.k < 1:
            raise FactoryError(f"concurrency, max_attempts and k must be at least 1 (got {self.concurrency}, "
                               f"{self.max_attempts}, {self.k})")
        for name in ("rpm", "tpm", "max_cost_usd", "target_kept"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise FactoryError(f"{name}={value}: give a positive budget, or None for no limit")


@dataclass
class Recipe:
    """What a run's notebooks used, read back for Stage 5: the prompt texts a student edited (RUN_DIR/prompts.json)
    and the settings they chose (RUN_DIR/settings.json). Anything the run lacks is the kit's default."""

    prompts: dict[str, str]
    settings: dict[str, Any]
    changed: list[str]  # prompts and settings that differ from the kit's defaults

    def prompt(self, name: str, default: str) -> str:
        return self.prompts.get(name, default)

    def config(self, **overrides: Any) -> "FactoryConfig":
        """The factory settings this run's Stage 3 used (prompt, system prompt, K), then the overrides given."""
        base = {"prompt": self.prompt("RAG_PROMPT", ANSWER.prompt), "system": self.prompt("RAG_SYSTEM", ANSWER.system)}
        if "K" in self.settings:
            base["k"] = int(self.settings["K"])
        return FactoryConfig(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def read_recipe(run_dir: str | Path) -> Recipe:
    """The run's prompts and settings (see Recipe); an unreadable file is an error that names it."""
    run_dir = Path(run_dir)
    found: list[dict] = []
    for name in ("prompts.json", "settings.json"):
        path = run_dir / name
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})
        except ValueError as e:
            raise FactoryError(f"{path} is not valid JSON ({e}): fix it, or delete it to use the kit's defaults") from None
    prompts = {k: v["text"] for k, v in found[0].items() if isinstance(v, dict) and "text" in v}
    changed = [k for k, v in found[0].items() if isinstance(v, dict) and v.get("changed")]
    settings = {k: v["value"] for k, v in found[1].items() if isinstance(v, dict) and "value" in v}
    changed += [k for k, v in found[1].items() if isinstance(v, dict) and v.get("changed")]
    return Recipe(prompts, settings, changed)


def iter_instructions(source: str | Path | Iterable[Instruction | dict]) -> Iterator[Instruction]:
    """Instructions one at a time, from a JSONL file or any iterable, without reading everything first."""
    if not isinstance(source, (str, Path)):
        for item in source:
            yield item if isinstance(item, Instruction) else from_dict(Instruction, item)
        return
    path = Path(source)
    if not path.exists():
        raise FactoryError(f"{path} does not exist: write the instructions first (notebook 2), or pass another file")
    for n, data in json_lines(path, FactoryError):
        if not isinstance(data, dict) or "id" not in data or "instruction" not in data:
            raise FactoryError(f"{path}:{n}: an instruction needs 'id' and 'instruction' fields")
        yield from_dict(Instruction, {"category": "", **data})


def finished_ids(path: str | Path, key: str) -> set[str]:
    """Ids recorded in an output or failures file (whole lines only)."""
    path = Path(path)
    if not path.exists():
        return set()
    ids: set[str] = set()
    for n, data in json_lines(path, FactoryError):
        if not isinstance(data, dict) or key not in data:
            raise FactoryError(f"{path}:{n}: not a record with '{key}'; fix or delete that line, then run again")
        ids.add(data[key])
    return ids


def failures_path(out: str | Path, failures: str | Path | None = None) -> Path:
    """The failures file: as given, else beside the output file (qa_pairs.jsonl -> qa_pairs.failures.jsonl)."""
    out = Path(out)
    return Path(failures) if failures is not None else out.with_name(out.stem + ".failures.jsonl")


def start_run(out: Path, failures: Path, retry_failures: bool = False) -> set[str]:
    """Ready a run's files and return the ids already done: the failures are moved aside when they are to be tried
    again, and a half-written last line (its writer was killed) is removed so that item is done again."""
    if retry_failures and failures.exists():
        failures.replace(failures.with_name(failures.name + ".retried"))
    for path in (out, failures):
        if repair_tail(path):
            print(f"removed a half-written last line from {path} (that item will be done again)", file=sys.stderr)
    return finished_ids(out, "instruction_id") | finished_ids(failures, "id")


def failure_record(item_id: str, instruction: str, category: str, reason: str, detail: str, attempts: int,
                   **extra: Any) -> dict:
    """One line of a failures file: which item, why (a short reason label), the one-line detail, how many tries."""
    return {"id": item_id, "instruction": instruction, "category": category, "reason": reason, "detail": detail,
            "attempts": attempts, **extra}


def progress_bar(total: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="item", desc="factory", mininterval=0.5, smoothing=0.1, dynamic_ncols=True)


def count_remaining(source: Any, done: set[str]) -> int:
    return len({inst.id for inst in iter_instructions(source)} - done)
