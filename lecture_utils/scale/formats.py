"""The three formats fine-tuning tools read, one record per pair, and the check of each file as its tool reads it:
Alpaca JSON (instruction, input, output), ShareGPT JSON (conversations of human/gpt turns) and OpenAI chat
fine-tuning JSONL (messages: system, user, assistant)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lecture_utils.curate.decisions import DecisionError
from lecture_utils.records import QAPair

FORMATS = ("alpaca", "sharegpt", "openai")
FILE_NAMES = {"alpaca": "alpaca.json", "sharegpt": "sharegpt.json", "openai": "openai_chat.jsonl"}
PROVENANCE = ("file", "field", "none")
# "{title}" is filled with the source's title (source_title), so the prompt names what the model is an expert on.
DEFAULT_SYSTEM = "You are an expert on {title}. Answer accurately and concisely."
DEFAULT_SOURCE_LICENCE = "Check the source's licence before you share this dataset."
OPENAI_MIN_EXAMPLES = 10  # the fine-tuning API refuses smaller training files
OPENAI_MAX_TOKENS = 65_536  # per example, for gpt-4o-mini and gpt-4.1 models; older models allow fewer
CHARS_PER_TOKEN = 4


class ExportError(DecisionError):
    """Pairs or decisions that cannot be exported as asked; the message says how to fix it."""


def source_title(source: str = "") -> str:
    """The source's name without its trailing note: "Emma (Project Gutenberg #158)" -> "Emma"; "" -> "the source"."""
    return re.sub(r"\s*\([^()]*\)\s*$", "", source).strip() or "the source"


def fill_system(system: str | None, source: str = "") -> str | None:
    """The system prompt with its "{title}" placeholder filled (replace, not format: other braces stay as written)."""
    return system.replace("{title}", source_title(source)) if system else system


# --- records per format -----------------------------------------------------------------------------------------


def provenance(pair: QAPair) -> dict:
    """Where an answer came from: its ids, the passages it cites and was shown, the teacher and the prompt version."""
    return {"pair_id": pair.id, "instruction_id": pair.instruction_id, "category": pair.category,
            "cited": list(pair.cited), "retrieved": [r.id for r in pair.retrieved], "teacher": pair.teacher,
            "prompt_version": pair.prompt_version, "not_in_text": pair.not_in_text, "review": pair.review or "none",
            "checks": {k: v for k, v in pair.checks.items() if not k.endswith("_found")}}


def _check_pair(pair: QAPair) -> None:
    if not pair.instruction.strip() or not pair.answer.strip():
        raise ExportError(f"pair {pair.id} has an empty {'instruction' if not pair.instruction.strip() else 'answer'}: "
                          "fix or discard it before exporting")


def to_alpaca(pair: QAPair) -> dict:
    _check_pair(pair)
    return {"instruction": pair.instruction.strip(), "input": "", "output": pair.answer.strip()}


def to_sharegpt(pair: QAPair, system: str | None = None) -> dict:
    _check_pair(pair)
    turns = [{"from": "system", "value": system}] if system else []
    turns += [{"from": "human", "value": pair.instruction.strip()}, {"from": "gpt", "value": pair.answer.strip()}]
    return {"conversations": turns}


def to_openai_chat(pair: QAPair, system: str | None = DEFAULT_SYSTEM) -> dict:
    _check_pair(pair)
    system = fill_system(system)
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": pair.instruction.strip()},
                 {"role": "assistant", "content": pair.answer.strip()}]
    return {"messages": messages}


# --- validators: what each tool requires ------------------------------------------------------------------------


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def validate_alpaca(records: Any) -> list[str]:
    """Problems with an Alpaca dataset: a JSON list of objects with string instruction, input and output
    (instruction and output non-empty), as Stanford Alpaca, Axolotl and LLaMA-Factory read it."""
    if not isinstance(records, list):
        return ["the file must hold one JSON list of records"]
    problems = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            problems.append(f"record {i}: not an object")
            continue
        for key in ("instruction", "input", "output"):
            if not isinstance(r.get(key), str):
                problems.append(f"record {i}: '{key}' must be a string")
        for key in ("instruction", "output"):
            if isinstance(r.get(key), str) and not r[key].strip():
                problems.append(f"record {i}: '{key}' is empty")
    return problems


def validate_sharegpt(records: Any) -> list[str]:
    """Problems with a ShareGPT dataset: a JSON list of {"conversations": [...]} whose turns are {"from", "value"},
    an optional system turn first, then human and gpt turns alternating, starting with human, ending with gpt."""
    if not isinstance(records, list):
        return ["the file must hold one JSON list of records"]
    problems = []
    for i, r in enumerate(records):
        turns = r.get("conversations") if isinstance(r, dict) else None
        if not isinstance(turns, list) or not turns:
            problems.append(f"record {i}: needs a non-empty 'conversations' list")
            continue
        if all(isinstance(t, dict) for t in turns) and turns[0].get("from") == "system":
            if not _nonempty_str(turns[0].get("value")):
                problems.append(f"record {i}: the system turn is empty")
            turns = turns[1:]
        if len(turns) < 2:
            problems.append(f"record {i}: needs at least one human and one gpt turn")
        for j, t in enumerate(turns):
            want = "human" if j % 2 == 0 else "gpt"
            if not isinstance(t, dict) or set(t) != {"from", "value"}:
                problems.append(f"record {i} turn {j}: must be exactly {{'from', 'value'}}")
            elif t["from"] != want:
                problems.append(f"record {i} turn {j}: from={t['from']!r}, expected {want!r} (turns alternate human, gpt)")
            elif not _nonempty_str(t["value"]):
                problems.append(f"record {i} turn {j}: empty value")
        if turns and isinstance(turns[-1], dict) and turns[-1].get("from") != "gpt":
            problems.append(f"record {i}: the last turn must be from gpt (the answer to learn)")
    return problems


_OPENAI_ROLES = {"system", "user", "assistant"}
_OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight"}


def validate_openai_chat(records: Any, max_tokens: int = OPENAI_MAX_TOKENS) -> list[str]:
    """Problems with OpenAI chat fine-tuning data: per line an object with only a "messages" list; each message a
    role (system/user/assistant) and non-empty string content; at least one assistant message; not too long."""
    if not isinstance(records, list):
        return ["expected one JSON object per line"]
    problems = []
    for i, r in enumerate(records):
        where = f"line {i + 1}"
        if not isinstance(r, dict) or not isinstance(r.get("messages"), list) or not r["messages"]:
            problems.append(f"{where}: needs a non-empty 'messages' list")
            continue
        extra = set(r) - {"messages"}
        if extra:
            problems.append(f"{where}: unexpected keys {sorted(extra)} (only 'messages' is allowed)")
        chars = 0
        for j, m in enumerate(r["messages"]):
            if not isinstance(m, dict):
                problems.append(f"{where} message {j}: not an object")
                continue
            if set(m) - _OPENAI_MESSAGE_KEYS:
                problems.append(f"{where} message {j}: unrecognised keys {sorted(set(m) - _OPENAI_MESSAGE_KEYS)}")
            if m.get("role") not in _OPENAI_ROLES:
                problems.append(f"{where} message {j}: role {m.get('role')!r} is not system, user or assistant")
            if not _nonempty_str(m.get("content")):
                problems.append(f"{where} message {j}: content must be a non-empty string")
            else:
                chars += len(m["content"])
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in r["messages"]):
            problems.append(f"{where}: no assistant message (nothing to learn)")
        if chars / CHARS_PER_TOKEN > max_tokens:
            problems.append(f"{where}: about {chars // CHARS_PER_TOKEN} tokens, over the {max_tokens} limit per example")
    return problems


VALIDATORS = {"alpaca": validate_alpaca, "sharegpt": validate_sharegpt, "openai": validate_openai_chat}


def read_export(path: str | Path, fmt: str) -> Any:
    """Load an export the way the tools do: one JSON document, or one JSON object per line for OpenAI."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if fmt == "openai":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None


def validate_file(path: str | Path, fmt: str) -> list[str]:
    """Problems with an export file on disk (empty list: the tools will accept it)."""
    if fmt not in VALIDATORS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return VALIDATORS[fmt](read_export(path, fmt))
