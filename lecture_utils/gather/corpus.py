"""Stage 1: load a Project Gutenberg book or a folder of your own documents and cut it into passages.

A book is cleaned (licence header and footer, front matter, illustrations and table of contents removed, lines
unwrapped into paragraphs) into `Book.text`; every passage is an exact slice of it: `book.text[p.start:p.end] == p.text`.
A document's passages are exact slices of the file's own text (BOM removed, line ends as LF), see `read_text`.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from lecture_utils import settings
from lecture_utils.gather.chunking import _merge, _paragraph_spans, _split_long, _unwrap
from lecture_utils.gather.documents import document_passages, load_documents
from lecture_utils.gather.files import DEFAULT_PASSAGE_CHARS, CorpusError, CorpusWarning, read_text
from lecture_utils.gather.headings import (
    _END_OF_BOOK_RE,
    _PART_KINDS,
    _TOC_LINE_RE,
    _find_headings,
    _Heading,
    _number_gaps,
    _real_chapters,
    _remove_illustrations,
    parse_heading,
)
from lecture_utils.records import Passage
from lecture_utils.settings import DEFAULT_BOOK

BOOK_URL = "https://www.gutenberg.org/cache/epub/1342/pg1342.txt"
FETCH_HINT = "run `python -m lecture_utils corpus fetch`, or set BOOK_PATH to a local copy of pg1342.txt"
_ID_PREFIXES = {"chapter": "ch", "letter": "let", "book": "bk", "part": "pt", "volume": "vol"}  # start Chapter.key


@dataclass
class Chapter:
    number: int  # as the heading prints it (XII is 12); letters and each part number their own chapters
    title: str  # "" when the heading is only a number, as in Pride and Prejudice
    start: int  # offsets into Book.text; the chapter starts with its heading line
    end: int
    heading: str = ""  # the heading as printed, e.g. "CHAPTER XII."
    body_start: int = 0  # where the first paragraph after the heading starts
    kind: str = "chapter"  # or "letter"
    part: str = ""  # e.g. "Book 2" when the chapter comes after a BOOK/PART/VOLUME heading
    key: str = ""  # unique in the book, starts its passage ids: "ch07", "let02", "bk02-ch03", "ch02b" (a repeat)

    @property
    def section(self) -> str | None:
        """Passage.section: the title, naming the part or letter too when the number alone is ambiguous."""
        if self.kind == "chapter" and not self.part:
            return self.title or None
        name = ", ".join(filter(None, [self.part, f"{self.kind.title()} {self.number}"]))
        return f"{name}: {self.title}" if self.title else name


@dataclass
class Book:
    title: str
    text: str  # cleaned: chapter headings and unwrapped paragraphs only
    chapters: list[Chapter]
    removed: dict[str, int] = field(default_factory=dict)  # what cleaning dropped, for display
    source: str = ""  # file name, used as Passage.source


def resolve_book_path(path: str | Path | None = None) -> Path:
    """The book to load: the explicit path, else $BOOK_PATH, else data/pg1342.txt in the repo."""
    if path is not None:
        return Path(path).expanduser()
    env = settings.get("BOOK_PATH")
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise CorpusError(f"BOOK_PATH={env} does not exist: fix the variable, or unset it and {FETCH_HINT}.")
        return p
    if DEFAULT_BOOK.exists():
        return DEFAULT_BOOK
    raise CorpusError(f"No book at {DEFAULT_BOOK}: {FETCH_HINT}.")


def fetch_book(dest: str | Path | None = None, url: str = BOOK_URL, timeout: float = 20.0,
               force: bool = False) -> Path:
    """Download Pride and Prejudice from Project Gutenberg to `dest` (default: data/pg1342.txt in the repo)."""
    dest = Path(dest) if dest is not None else DEFAULT_BOOK
    if dest.exists() and not force:
        return dest
    request = urllib.request.Request(url, headers={"User-Agent": "lecture-utils course kit"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # HTTPException: a cut-off download
        reason = " ".join(str(getattr(e, "reason", e)).split())
        raise CorpusError(f"Could not download {url} ({reason}); offline? Set BOOK_PATH to a local copy or pass a "
                          f"path, or copy the file to {dest}.") from None
    if b"*** START OF" not in data:
        raise CorpusError(f"{url} did not return a Project Gutenberg text; download it by hand to {dest}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)  # never leave a half-downloaded book where the loader looks
    return dest


# ---------------------------------------------------------------- the Gutenberg licence


_START_RE = re.compile(r"^[ \t]*\*{3}[ \t]*START OF\b.*$", re.I | re.M)
_END_RE = re.compile(r"^[ \t]*\*{3}[ \t]*END OF\b.*$", re.I | re.M)
_OLD_END_RE = re.compile(r"^[ \t]*End of (the )?Project Gutenberg\b.*$", re.I | re.M)  # older files, before *** END


def strip_gutenberg(text: str, name: str = "the book") -> tuple[str, int, int]:
    """Cut the licence header and footer at the START/END marker lines; returns (body, header_chars, footer_chars)."""
    start = _START_RE.search(text)
    end = _END_RE.search(text, start.end() if start else 0)
    if not start and not end:
        warnings.warn(f"{name}: no Project Gutenberg START/END markers found; kept all of the text.",
                      CorpusWarning, stacklevel=3)
    elif not start:
        warnings.warn(f"{name}: no '*** START OF' marker; kept the text from the beginning.", CorpusWarning,
                      stacklevel=3)
    elif not end:
        warnings.warn(f"{name}: no '*** END OF' marker; kept the text to the end.", CorpusWarning, stacklevel=3)
    body_start = start.end() if start else 0
    body_end = end.start() if end else len(text)
    old = _OLD_END_RE.search(text, body_start, body_end)
    if old:
        body_end = old.start()
    return text[body_start:body_end], body_start, len(text) - body_end


def _book_title(text: str, fallback: str) -> str:
    for pattern in (r"^Title:[ \t]*(.+)$", r"^\W*The Project Gutenberg e-?book,? of (.+?)(?:, by .*)?$",
                    r"\*{3}[ \t]*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK (.+?)[ \t]*\*{3}"):
        m = re.search(pattern, text[:20000], re.I | re.M)
        if m:
            title = m.group(1).strip()
            return title.title() if title.isupper() else title
    return fallback


# ---------------------------------------------------------------- books


def clean_book(raw: str, source: str = "book", title: str | None = None) -> Book:
    """Clean the decoded text of a Gutenberg book into a Book (see the module docstring)."""
    body, header_chars, footer_chars = strip_gutenberg(raw, source)
    original = body.split("\n")
    offsets = [0]
    for line in original:
        offsets.append(offsets[-1] + len(line) + 1)
    kept, illustrations = _remove_illustrations(original)
    lines = [t for _, t in kept]
    if not any(t.strip() for t in lines):
        raise CorpusError(f"{source}: no text between the licence header and footer; is it the whole book?")
    heads = _find_headings(lines)
    real = _real_chapters(lines, heads)
    chapters_found = [h for h, r in zip(heads, real) if r]
    dropped = {i for h, r in zip(heads, real) if not r for i in range(h.index, h.index + h.size)}

    def top(h: _Heading) -> int:  # a part heading right above a chapter opens it
        return h.part.index if h.opens_part else h.index

    # front matter: everything before the first chapter; back matter: a closing "THE END" and what follows
    first = top(chapters_found[0]) if chapters_found else 0
    stop = len(lines)
    last = chapters_found[-1].index if chapters_found else 0
    for i in range(len(lines) - 1, last, -1):
        if _END_OF_BOOK_RE.match(lines[i].strip()):
            stop = i
            break
    if not chapters_found:
        warnings.warn(f"{source}: no chapter headings found (CHAPTER I., Chapter 1, Letter 1); the whole text is "
                      "one chapter.", CorpusWarning, stacklevel=2)
        chapters_found = [_Heading(-1, 1, "chapter", 1, "", "")]
    gaps = _number_gaps(chapters_found)
    if gaps:  # a misread heading, or a missing chapter
        warnings.warn(f"{source}: chapter numbers skip or repeat ({'; '.join(gaps)}); every chapter is kept under "
                      "its heading's number.", CorpusWarning, stacklevel=2)
    front_chars = offsets[kept[first][0]] if chapters_found[0].index >= 0 and kept else 0
    back_chars = offsets[-1] - 1 - offsets[kept[stop][0]] if stop < len(lines) else 0
    toc_lines = sum(1 for ln in lines[:first] if _TOC_LINE_RE.match(ln.strip()) or parse_heading(ln))
    # contents entries found after chapter 1 (a part heading is not one)
    toc_lines += sum(1 for h, r in zip(heads, real) if not r and h.index >= first and h.kind not in _PART_KINDS)

    def paragraphs(begin: int, end: int) -> str:
        return "\n\n".join(_unwrap(["" if i in dropped else lines[i] for i in range(max(begin, 0), end)]))

    width = max(2, len(str(max(h.number for h in chapters_found))))
    text, chapters, seen = "", [], {}
    for k, h in enumerate(chapters_found):
        end = top(chapters_found[k + 1]) if k + 1 < len(chapters_found) else stop
        if h.opens_part:  # the part's heading and any text under it belong to no chapter
            intro = paragraphs(h.part.index + h.part.size, h.index)
            text += ("\n\n\n" if text else "") + h.part.text + ("\n\n" + intro if intro else "")
        if text:
            text += "\n\n\n"
        start = len(text)
        if h.text:
            text += h.text + "\n\n"
        body_start = len(text)
        text += paragraphs(h.index + h.size, end)
        key = f"{_ID_PREFIXES[h.kind]}{h.number:0{width}d}"
        if h.part:
            key = f"{_ID_PREFIXES[h.part.kind]}{h.part.number:02d}-{key}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # a repeated number: ch02, then ch02b
            key += chr(ord("a") + seen[key] - 1)
        part = f"{h.part.kind.title()} {h.part.number}" if h.part else ""
        chapters.append(Chapter(h.number, h.title, start, len(text), h.text, body_start, h.kind, part, key))
    removed = {"header_chars": header_chars, "footer_chars": footer_chars, "front_matter_chars": front_chars,
               "back_matter_chars": back_chars, "illustrations": illustrations, "toc_lines": toc_lines}
    return Book(title or _book_title(raw, source), text, chapters, removed, source)


def load_book(path: str | Path | None = None) -> Book:
    """Load and clean a Project Gutenberg plain-text book (path, else $BOOK_PATH, else data/pg1342.txt)."""
    path = resolve_book_path(path)
    if not path.exists():
        raise CorpusError(f"Book file {path} not found: pass the right path, or {FETCH_HINT}.")
    raw = read_text(path)
    return clean_book(raw, path.name, _book_title(raw, path.stem))


# ---------------------------------------------------------------- passages


def book_passages(book: Book, target_chars: int = DEFAULT_PASSAGE_CHARS) -> list[Passage]:
    """Paragraphs merged up to target_chars, never across chapters; ids like `ch12-p004` (see Chapter.key)."""
    passages = []
    for ch in book.chapters:
        spans = [piece for s, e in _paragraph_spans(book.text, ch.body_start, ch.end)
                 for piece in _split_long(book.text, s, e, target_chars)]
        for k, (s, e) in enumerate(_merge(spans, target_chars), 1):
            passages.append(Passage(f"{ch.key or f'ch{ch.number:02d}'}-p{k:03d}", book.source, book.text[s:e], s, e,
                                    ch.number, ch.section))
    return passages


def load_corpus(path: str | Path | None = None, target_chars: int = DEFAULT_PASSAGE_CHARS) -> list[Passage]:
    """Passages from a folder of documents, a single .md/.rst document, or a book (the default)."""
    if path is not None and Path(path).is_dir():
        return load_documents(path, target_chars)
    if path is not None and Path(path).suffix.lower() in (".md", ".rst"):
        path = Path(path)
        passages = document_passages(read_text(path), path.name, None, target_chars)
        if not passages:
            raise CorpusError(f"{path} has no text outside its headings: add some or point at another file.")
        return passages
    return book_passages(load_book(path), target_chars)


# ---------------------------------------------------------------- statistics


def corpus_stats(passages: list[Passage]) -> dict:
    """Counts for display and the CLI: chapters, passages, words, characters, passage length in words."""
    words = [len(p.text.split()) for p in passages]
    return {
        "sources": len({p.source for p in passages}),
        # a book's chapter is the id up to "-p" (ch03 and bk02-ch03 are two chapters numbered 3)
        "chapters": len({(p.source, p.id.rpartition("-p")[0]) for p in passages if p.chapter is not None}),
        "sections": len({(p.source, p.section) for p in passages if p.section is not None}),
        "passages": len(passages),
        "words": sum(words),
        "characters": sum(len(p.text) for p in passages),
        "mean_passage_words": round(sum(words) / len(words), 1) if words else 0.0,
        "min_passage_words": min(words, default=0),
        "max_passage_words": max(words, default=0),
    }


def stats_for_path(path: str | Path | None = None, target_chars: int = DEFAULT_PASSAGE_CHARS) -> dict:
    """`python -m lecture_utils corpus stats [PATH]`: corpus_stats plus the path (and, for a book, what was removed)."""
    p = Path(path) if path is not None else resolve_book_path()
    if p.is_dir() or p.suffix.lower() in (".md", ".rst"):
        return {"path": str(p), **corpus_stats(load_corpus(p, target_chars))}
    book = load_book(p)
    return {"path": str(p), "title": book.title, **corpus_stats(book_passages(book, target_chars)),
            "removed": dict(book.removed)}
