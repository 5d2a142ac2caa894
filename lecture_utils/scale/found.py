"""Path A of the lecture: instead of synthesizing a dataset (Path B, what the kit does), take an open instruction
dataset, keep its rows about your source and set them beside the kit's pairs on Diversity, Grounding and Quality.

    rows = load_found("dolly.jsonl")            # Dolly, Alpaca or chat layout; or a Hub name for datasets
    mine = about_source(rows, passages, "Pride and Prejudice")
    chart(compare(mine, pairs, passages))       # one row per figure, a column per path

Nothing here knows one source: the names come from the passages (text.names.find_names).
"""

from __future__ import annotations

import json
import os
import re
import socket
import textwrap
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

import pandas as pd
from matplotlib.figure import Figure

from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.errors import KitError
from lecture_utils.records import Passage, QAPair, json_lines
from lecture_utils.scale.quality import figures
from lecture_utils.text.grounding import grounding_score
from lecture_utils.text.names import find_names
from lecture_utils.text.tokens import COPY_RUN, search_words

FIELDS = ("instruction", "context", "response", "category")
PATH_A, PATH_B = "Path A: found", "Path B: synthesized"
NAME_GAIN = 2.0  # one name counts when the instruction's best passage scores this many times the name's own best
SUPPORTED = 0.5  # an answer is supported when at least this share of its sentences is (grounding.grounding_score)
HUB_TIMEOUT = 3.0  # seconds to wait for the Hub before giving up (datasets itself retries for about 25 s)


class FoundError(KitError, ValueError):
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
    except UnicodeDecodeError:
        raise FoundError(f"{path} is not UTF-8 text: save it as UTF-8 JSON or JSON Lines.") from None
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


# --- The rows about your source --------------------------------------------------------------------------------------


def _title_pattern(title: str) -> re.Pattern | None:
    """The title as whole words in any case; "The Hobbit" also matches plain "Hobbit", and the reverse."""
    short = re.sub(r"^the\s+", "", title.strip(), flags=re.I)
    forms = [re.escape(t).replace(r"\ ", r"\s+") for t in dict.fromkeys([title.strip(), short]) if t]
    return re.compile(r"(?<!\w)(?:" + "|".join(forms) + r")(?!\w)", re.I) if forms else None


def _best_score(index: FastBM25Index, text: str) -> float:
    hits = index.search(text, k=1) if search_words(text) else []
    return float(hits[0][1]) if hits else 0.0


def about_source(rows: Iterable[dict], passages: Sequence[Passage], title: str, names: list[str] | None = None,
                 top: int = 50) -> list[dict]:
    """The rows about your source, best BM25 score first, at most `top`. A row is kept when its instruction, context
    or response names the title, or two of the source's names (find_names picks them from the passages unless you
    pass them), or one name while its instruction's best passage scores NAME_GAIN times what the name alone scores
    ("Who was Jane Goodall?" names a character of a novel and nothing else of it). Each kept row gains its text's
    best passage ("passage_id", "unit": chapter or document, "score"), its "names" and "why" it was kept."""
    if names is None:
        names = find_names([p.text for p in passages])
    titled = _title_pattern(title)
    named = {n: re.compile(rf"(?<!\w){re.escape(n)}(?!\w)") for n in names if n.strip()}
    index = FastBM25Index(passages)
    kept = []
    for row in rows:
        text = " ".join(" ".join(_text(row.get(k)) for k in FIELDS[:3]).split())
        mentioned = [n for n, pat in named.items() if pat.search(text)]
        why = "title" if titled and titled.search(text) else "names" if len(mentioned) >= 2 else ""
        if (why or mentioned) and search_words(text):
            kept.append((row, text, mentioned, why))
    best = index.search_batch([text for _, text, _, _ in kept], k=1) if kept else []
    alone: dict[str, float] = {}  # each name's own best score, the bar a one-name question must clear
    out = []
    for (row, text, mentioned, why), hits in zip(kept, best):
        if not why:
            if mentioned[0] not in alone:
                alone[mentioned[0]] = _best_score(index, mentioned[0])
            asked = _best_score(index, _text(row.get("instruction")))
            if asked <= 0 or asked < NAME_GAIN * alone[mentioned[0]]:
                continue
            why = "name and passage"
        passage, score = hits[0] if hits else (None, 0.0)
        out.append({**row, "passage_id": passage.id if passage else None, "unit": passage.unit if passage else None,
                    "score": round(float(score), 3), "names": mentioned, "why": why})
    out.sort(key=lambda r: -r["score"])
    return out[:top]


# --- Path A beside Path B --------------------------------------------------------------------------------------------

ROWS = ["rows or pairs", "Diversity: task categories", "Diversity: share of the largest category",
        'Diversity: share of "who" lookups', "Grounding: chapters or documents touched",
        "Grounding: share of the chapters or documents touched", "Grounding: share of answers the source supports",
        "Quality: median answer words", f"Quality: share of answers copying {COPY_RUN}+ words of the source"]
LOWER = {ROWS[2], ROWS[-1]}  # the shares where less is better


def _share(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole else float("nan")


def _column(pairs: Sequence[QAPair], passages: Sequence[Passage]) -> list:
    """The figures of one path in the order of ROWS; unlabelled rows leave the largest category's share unknown."""
    by_id = {p.id: p for p in passages}
    f = figures(pairs, passages)
    supported = 0
    for p in pairs:
        ids = list(p.cited) or [r.id for r in p.retrieved] or [p.passage_id]
        texts = [by_id[i].text for i in ids if i in by_id]
        supported += bool(texts) and grounding_score(p.answer, texts) >= SUPPORTED
    categories = Counter(p.category for p in pairs if p.category)
    return [len(pairs), len(categories), _share(max(categories.values(), default=0), categories.total()),
            f["who_share"], f["units_cited"], _share(f["units_cited"], f["units"]), _share(supported, len(pairs)),
            median([len(p.answer.split()) for p in pairs] or [0]), f["copied_share"]]


def compare(found: list[dict], pairs: Sequence[QAPair], passages: Sequence[Passage]) -> pd.DataFrame:
    """One row per figure (ROWS), a column per path: the rows about_source kept beside the kit's pairs.

    Path A's rows are measured against their best passage as if they cited it; Path B's pairs against the passages
    they cite (else those retrieved). "Supported" means at least half an answer's sentences are (grounding.py)."""
    if any("passage_id" not in r for r in found):
        raise FoundError("the found rows have no best passage: pass the rows about_source returned.")
    as_pairs = [QAPair(id=f"found-{i}", instruction_id=f"found-{i}", instruction=_text(r.get("instruction")),
                       category=_text(r.get("category")), answer=_text(r.get("response")),
                       cited=[r["passage_id"]] if r["passage_id"] else [])
                for i, r in enumerate(found, 1)]
    return pd.DataFrame({PATH_A: _column(as_pairs, passages), PATH_B: _column(list(pairs), passages)},
                        index=pd.Index(ROWS, name="figure"), dtype=object)


def chart(table: pd.DataFrame) -> Figure:
    """The share figures (0..1) of both paths as side-by-side horizontal bars."""
    shares = table[[("share" in label) for label in table.index]]
    fig = Figure(figsize=(8, 1.2 + 0.6 * len(shares)), layout="constrained")
    ax = fig.add_subplot()
    y = list(range(len(shares)))
    for offset, column, color in ((-0.2, PATH_A, "#e69f00"), (0.2, PATH_B, "#2e8b57")):
        values = pd.to_numeric(shares[column], errors="coerce")
        bars = ax.barh([v + offset for v in y], values.fillna(0), height=0.4, label=column, color=color)
        ax.bar_label(bars, labels=["n/a" if pd.isna(v) else f"{v:.0%}" for v in values], padding=3, fontsize=9)
    ax.set_yticks(y, [textwrap.fill(label + (" (lower is better)" if label in LOWER else ""), 30)
                      for label in shares.index], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("share")
    fig.legend(loc="outside lower center", ncols=2, fontsize=9)
    ax.set_title("Which dataset teaches your source?")
    return fig
