"""A folder of your own documents (.txt, .md, .rst) cut into passages: sections under their headings, passages that
are exact slices of each file's text."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from lecture_utils.gather.chunking import _merge, _split_long
from lecture_utils.gather.files import DEFAULT_PASSAGE_CHARS, DOC_SUFFIXES, CorpusError, CorpusWarning, read_text
from lecture_utils.records import Passage

_ATX_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_UNDERLINE_RE = re.compile(r"^([=\-`:'\"~^_*+#<>])\1{2,}[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
_RULE_RE = re.compile(r"^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$")


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "doc"


def document_sections(text: str, markdown: bool) -> list[tuple[str | None, list[tuple[int, int]]]]:
    """Split a document into (heading, paragraph spans); Markdown `#` and underlined (RST/setext) headings count."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    sections: list[tuple[str | None, list[tuple[int, int]]]] = [(None, [])]
    para: list[int] = []  # line indices of the paragraph being read
    in_fence = False

    def flush() -> None:
        if para:
            s = starts[para[0]] + len(lines[para[0]]) - len(lines[para[0]].lstrip())
            e = starts[para[-1]] + len(lines[para[-1]].rstrip())
            sections[-1][1].append((s, e))
            para.clear()

    i = 0
    if markdown and lines[0].strip() == "---" and "---" in (ln.strip() for ln in lines[1:]):
        i = [ln.strip() for ln in lines].index("---", 1) + 1  # YAML front matter is metadata, not text
    while i < len(lines):
        line = lines[i]
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if markdown and _FENCE_RE.match(line):
            in_fence = not in_fence
        if in_fence or (markdown and _FENCE_RE.match(line)):
            para.append(i)
            i += 1
            continue
        atx = _ATX_RE.match(line) if markdown else None
        underlined = (line.strip() and not para and not line[:1].isspace()
                      and (_UNDERLINE_RE.match(below) or (markdown and _SETEXT_RE.match(below)))
                      and len(below.strip()) >= min(len(line.strip()), 3))
        overlined = (not para and _UNDERLINE_RE.match(line) and i + 2 < len(lines) and lines[i + 1].strip()
                     and lines[i + 2].strip() == line.strip())
        if atx or underlined or overlined:
            flush()
            title = atx.group(2) if atx else (lines[i + 1] if overlined else line).strip()
            sections.append((title.strip(), []))
            i += 1 if atx else 2 if underlined else 3
        elif not line.strip() or (markdown and _RULE_RE.match(line)):
            flush()
            i += 1
        else:
            para.append(i)
            i += 1
    flush()
    return sections


def document_passages(text: str, source: str, slug: str | None = None, target_chars: int = DEFAULT_PASSAGE_CHARS) -> list[Passage]:
    """Passages of one document; ids like `guide-md-s02-p001` (s00 is the text before the first heading)."""
    slug = slug or slugify(source)
    markdown = source.lower().endswith(".md")
    passages = []
    for number, (title, spans) in enumerate(document_sections(text, markdown)):
        spans = [piece for s, e in spans for piece in _split_long(text, s, e, target_chars)]
        for k, (s, e) in enumerate(_merge(spans, target_chars), 1):
            passages.append(Passage(f"{slug}-s{number:02d}-p{k:03d}", source, text[s:e], s, e, None, title))
    return passages


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def load_documents(folder: str | Path, target_chars: int = DEFAULT_PASSAGE_CHARS) -> list[Passage]:
    """Every .txt/.md/.rst file under `folder` (sorted), as passages whose source is the path inside the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder} is not a folder: pass the folder that holds your .txt/.md/.rst documents.")
    files = sorted((p for p in folder.rglob("*") if p.suffix.lower() in DOC_SUFFIXES and p.is_file()
                    and not _is_hidden(p.relative_to(folder))), key=lambda p: p.relative_to(folder).as_posix())
    passages: list[Passage] = []
    slugs: set[str] = set()
    for path in files:
        rel = path.relative_to(folder).as_posix()
        try:
            text = read_text(path)
        except CorpusError as e:
            warnings.warn(f"Skipped {rel}: {e}", CorpusWarning, stacklevel=2)
            continue
        slug, n = slugify(rel), 2
        while slug in slugs:  # "a-b.md" and "a/b.md" share a slug; sorted order keeps the suffix stable
            slug, n = f"{slugify(rel)}-{n}", n + 1
        ps = document_passages(text, rel, slug, target_chars)
        if not ps:
            warnings.warn(f"Skipped {rel}: no text outside headings.", CorpusWarning, stacklevel=2)
            continue
        slugs.add(slug)
        passages += ps
    if not passages:
        raise CorpusError(f"No usable documents in {folder} ({len(files)} .txt/.md/.rst files, none with readable "
                          "text): add some, or point at another folder.")
    return passages
