"""Reading a source file as text, whatever its encoding, and the errors and warnings of loading a source."""

from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path

from lecture_utils.errors import KitError

DOC_SUFFIXES = (".txt", ".md", ".rst")
# Passages of about 800 characters (a paragraph or two): small enough that a question written from one is about one
# thing, and that three of them fit a small teacher's prompt whole.
DEFAULT_PASSAGE_CHARS = 800


class CorpusError(KitError, ValueError):
    """A source that cannot be loaded; the message says how to fix it."""


class CorpusWarning(UserWarning):
    """Something was guessed while loading (an encoding, missing markers); the text was still loaded."""


def _looks_binary(data: bytes) -> bool:
    return b"\x00" in data[:65536]


def _mostly_garbage(text: str) -> bool:
    """True when more than 10% of the characters are control characters or undecodable bytes."""
    sample = text[:65536]
    bad = sum(1 for c in sample if c == "\ufffd" or (unicodedata.category(c) == "Cc" and c not in "\t\n\r\f\v"))
    return bad > 0.1 * len(sample)


def read_text(path: str | Path) -> str:
    """Decode a text file (UTF-8 with or without BOM, else cp1252 with a warning) with LF line ends."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path} not found: check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder: pass a text file, or use load_documents() for a folder.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path} cannot be read ({e.strerror}): check its permissions.") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")  # Windows editors' "Unicode" is UTF-16 with a BOM
    elif _looks_binary(data):
        raise CorpusError(f"{path} looks like a binary file (PDF, Word, image?), not plain text: save it as UTF-8 .txt.")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
            warnings.warn(f"{path} is not valid UTF-8; read it as Windows-1252 (cp1252). Re-save it as UTF-8 if "
                          "characters look wrong.", CorpusWarning, stacklevel=3)
    if not text.strip():
        raise CorpusError(f"{path} is empty: put some text in it or point at another file.")
    if _mostly_garbage(text):
        raise CorpusError(f"{path} looks like a binary file (mostly unreadable characters): save it as UTF-8 .txt.")
    return text.replace("\r\n", "\n").replace("\r", "\n")
