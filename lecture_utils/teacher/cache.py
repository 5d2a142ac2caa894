"""The record/replay cache: replies keyed by a hash of the whole request, in an append-only JSONL file.

It stores no prompt text: each message only as its role, length and hash, and the words a reply copied from its
prompt as references to the prompt, filled back in from the caller's own request when replayed.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

from lecture_utils.records import append_jsonl, iter_jsonl
from lecture_utils.settings import DEFAULT_CACHE_PATH

# A reply's words copied from the prompt (a quote of the book) are stored as ⟦m<message>:<start>+<length>⟧.
_REF = re.compile("\u27e6m(\\d+):(\\d+)\\+(\\d+)\u27e7")
MIN_COPIED_CHARS = 20


def _longest_copy(text: str, i: int, contents: list[str]) -> tuple[int, int, int]:
    """(length, message, start) of the longest run of text from i on that a message contains; length 0 if none."""
    best = (0, 0, 0)
    for m, content in enumerate(contents):
        length = MIN_COPIED_CHARS
        pos = content.find(text[i:i + length]) if i + length <= len(text) else -1
        while pos >= 0:  # a longer run occurs only where the shorter one does, so search on from pos
            best = max(best, (length, m, pos))
            length += 1
            pos = content.find(text[i:i + length], pos) if i + length <= len(text) else -1
    return best


def refer_copied(text: str, contents: list[str]) -> str:
    """text with every run of MIN_COPIED_CHARS or more characters that also occurs in one of `contents` replaced by a
    reference to it; restore_copied(refer_copied(t, c), messages) == t."""
    out, i = [], 0
    while i < len(text):
        length, m, start = _longest_copy(text, i, contents)
        if length:
            out.append(f"\u27e6m{m}:{start}+{length}\u27e7")
            i += length
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def restore_copied(text: str, messages: list[dict]) -> str:
    """Undo refer_copied with the request's messages (the cache key guarantees they are the recorded ones)."""
    contents = [str(m.get("content") or "") for m in messages]

    def back(m: re.Match) -> str:
        k, start, length = map(int, m.groups())
        return contents[k][start:start + length] if k < len(contents) else m.group(0)

    return _REF.sub(back, text)


# --- the response cache -----------------------------------------------------------------------------------------


class ResponseCache:
    """Replies keyed by cache_key(request), in an append-only JSONL file (one line per reply, git-friendly).

    The file is read once; a key written twice keeps its last line. Keys, base URLs and API keys never go in.
    """

    def __init__(self, path: str | Path = DEFAULT_CACHE_PATH) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            entries: dict[str, dict] = {}
            if self.path.exists():
                for entry in iter_jsonl(self.path):
                    if isinstance(entry, dict) and "key" in entry:
                        entries[entry["key"]] = entry
            self._entries = entries
        return self._entries

    def get(self, key: str, request: dict | None = None) -> dict | None:
        """The entry for key; with the request, words the reply copied from the prompt are put back in its text."""
        with self._lock:
            entry = self._load().get(key)
        if entry is not None and request is not None and _REF.search(entry.get("text") or ""):
            entry = {**entry, "text": restore_copied(entry["text"], request.get("messages", []))}
        return entry

    def put(self, key: str, request: dict, text: str, finish_reason: str, usage: dict) -> dict:
        """Append one reply. Messages are stored as their length and hash only (the key covers the full text), and
        words the reply copied from the prompt as references to it, so a cache never holds the source's text."""
        contents = [str(m.get("content") or "") for m in request.get("messages", [])]
        # No prompt text at all: prompts carry passages of the source, which must not be committed. The key covers it.
        messages = [{"role": m.get("role"), "chars": len(c), "sha": hashlib.sha256(c.encode("utf-8")).hexdigest()[:12]}
                    for m, c in zip(request.get("messages", []), contents)]
        entry = {"key": key, "model": request.get("model"), "messages": messages, "text": refer_copied(text, contents),
                 "finish_reason": finish_reason, "usage": usage}
        with self._lock:
            self._load()
            append_jsonl(self.path, entry)
            self._entries[key] = entry
        return {**entry, "text": text}

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

