"""Path A of the lecture: instead of synthesizing a dataset (Path B, what the kit does), take an open instruction
dataset. load_found reads one (a JSONL or JSON file, or a Hub name for datasets) in one shape, whatever its layout.

    rows = load_found("dolly.jsonl")            # Dolly, Alpaca or chat layout; or a Hub name for datasets
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .records import json_lines

FIELDS = ("instruction", "context", "response", "category")
HUB_TIMEOUT = 3.0  # seconds to wait for the Hub before giving up (datasets itself retries for about 25 s)


class FoundError(ValueError):
    """An open dataset that cannot be loaded or read; the message says how to fix it."""


def load_found(name_or_path: str, split: str = "train", limit: int | None = None) -> list[dict]:
    """The first `limit` rows (all if None) of an open instruction dataset as dicts of FIELDS: a local .jsonl or .json
    file (a list of objects) is read directly, anything else is a Hub name (or a dataset folder) for datasets."""
    path = Path(name_or_path).expanduser()
    raw = _read_file(path) if path.suffix.lower() in (".jsonl", ".json") else _from_hub(str(name_or_path), split, limit)
    if limit is not None:
        raw = raw[:max(0, limit)]
    return [_normalise(row, i) for i, row in enumerate(raw, 1)]


def _read_file(path: Path) -> list[Any]:
    if not path.is_file():
        raise FoundError(f"{path} does not exist: check the path, or save the dataset there as JSON Lines first.")
    if path.suffix.lower() == ".jsonl":
        return [row for _, row in json_lines(path, FoundError)]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FoundError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}): fix it, or save the rows as "
                         ".jsonl.") from None
    if not isinstance(data, list):
        raise FoundError(f"{path} holds a JSON {type(data).__name__}, not a list of rows: save the rows as a JSON "
                         "list of objects, or one object per line in a .jsonl file.")
    return data


def _hub_fix(name: str, split: str) -> str:
    file = name.rstrip("/").rpartition("/")[2] + ".jsonl"
    return (f'on a machine with internet run python -c "import datasets; datasets.load_dataset({name!r}, '
            f"split={split!r}).to_json({file!r})\" and pass {file}")


def _hub_unreachable() -> str:
    """Why the Hub cannot be reached right now ("" if it answers): one quick connection instead of datasets' retries."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT).close()
    except OSError as e:
        return f"{host} unreachable: {e.strerror or type(e).__name__}"
    return ""


def _from_hub(name: str, split: str, limit: int | None) -> list[dict]:
    def failed(reason: str) -> FoundError:
        return FoundError(f"could not load {name} from the Hugging Face Hub ({reason}): {_hub_fix(name, split)}")

    if not Path(name).is_dir():  # a dataset folder on this machine needs no network
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            raise failed("HF_HUB_OFFLINE is set")
        if reason := _hub_unreachable():
            raise failed(reason)
    try:
        import datasets
    except ImportError:
        raise FoundError(f"reading {name} needs the datasets package: pip install datasets, or pass a .jsonl file.")
    try:
        data = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, unknown split, gated dataset: one line says which
        raise failed((str(e).strip().splitlines() or [""])[0][:160] or type(e).__name__) from None
    return [dict(row) for row in (data if limit is None else data.select(range(min(max(0, limit), len(data)))))]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _normalise(row: Any, i: int) -> dict:
    """One row in the common shape, from the Dolly, Alpaca or chat-messages layout."""
    if not isinstance(row, dict):
        raise FoundError(f"row {i} is a {type(row).__name__}, not an object: each row must be a JSON object.")
    category = _text(row.get("category"))
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise FoundError(f"row {i}: 'messages' must be a list of {{'role': ..., 'content': ...}} objects.")
        said = {}  # the first message of each role
        for m in messages:
            said.setdefault(m.get("role"), _text(m.get("content")))
        return {"instruction": said.get("user", ""), "context": "", "response": said.get("assistant", ""),
                "category": category}
    for answer, context in (("response", "context"), ("output", "input")):  # Dolly, then Alpaca
        if "instruction" in row and answer in row:
            return {"instruction": _text(row["instruction"]), "context": _text(row.get(context)),
                    "response": _text(row[answer]), "category": category}
    raise FoundError(f"row {i} has the columns {sorted(row)}, none of a known layout: rename them to "
                     "instruction/context/response (Dolly), instruction/input/output (Alpaca) or messages (chat).")
