"""Build the lecture deck: Markdown slides with speaker notes -> one self-contained HTML file.

Slides are separated by a line `---`; a line `Note:` starts the speaker notes; `[N min]` in the notes is the
slide's share of the hour. `![caption](figure:NAME.png)` takes a figure a real run saved (RUN_DIR/figures), and a
line `||` splits a slide into two columns. Everything (CSS, script, images) is inlined: the deck opens offline.
"""

from __future__ import annotations

import argparse
import base64
import html
import mimetypes
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lecture_utils.errors import KitError
from lecture_utils.settings import REPO_ROOT

DEFAULT_SOURCE = REPO_ROOT / "slides" / "lecture.md"
DEFAULT_OUT = REPO_ROOT / "slides" / "build" / "index.html"
# Where the notebooks save figures: the demo run, or the run `python -m lecture_utils run-course` makes.
FIGURE_DIRS = (REPO_ROOT / "runs" / "demo" / "figures", REPO_ROOT / "runs" / "course" / "run" / "figures")
REMOTE = re.compile(r"\b(?:https?:)?//[\w.-]+\.\w", re.I)


class SlidesError(KitError, ValueError):
    """The deck source cannot be built; the message names the slide and the fix."""


@dataclass
class Slide:
    body: str
    notes: str
    classes: list[str] = field(default_factory=list)
    minutes: float = 0.0


@dataclass
class Deck:
    path: Path
    slides: list[Slide]
    figures_used: list[str]
    missing: list[str]  # figure names shown as placeholders


def parse_deck(text: str) -> list[Slide]:
    """Split the Markdown source into slides; `<!-- class: a b -->` on a slide sets its CSS classes."""
    text = re.sub(r"\A\s*<!--.*?-->", "", text, flags=re.S)  # the file's own header comment
    slides = []
    for chunk in re.split(r"^---[ \t]*$", text, flags=re.M):
        if not chunk.strip():
            continue
        classes: list[str] = []
        match = re.search(r"<!--\s*class:\s*(.*?)\s*-->", chunk)
        if match:
            classes = match.group(1).split()
            chunk = chunk.replace(match.group(0), "")
        body, notes = _split_notes(chunk)
        minutes = sum(float(m) for m in re.findall(r"\[(\d+(?:\.\d+)?) min\]", notes))
        slides.append(Slide(body.strip("\n"), notes.strip(), classes, minutes))
    return slides


def _split_notes(chunk: str) -> tuple[str, str]:
    """(slide body, speaker notes): the notes start at a line `Note:`."""
    parts = re.split(r"^Note:[ \t]*\n?", chunk, maxsplit=1, flags=re.M)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


# Markdown: the small subset the deck uses ----------------------------------------------------------------------------

def inline(text: str) -> str:
    """Escape, then `code`, **bold**, *italic*/_italic_."""
    codes: list[str] = []

    def stash(m: re.Match) -> str:
        codes.append(f"<code>{html.escape(m.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = re.sub(r"`([^`]+)`", stash, text)
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", text)
    text = re.sub(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)", r"<em>\1</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)


class Images:
    """Turns image references into inline data URIs, or a labelled placeholder when a figure is missing."""

    def __init__(self, figures: Path | None, base: Path):
        self.figures, self.base = figures, base
        self.used: list[str] = []
        self.missing: list[str] = []

    def figure(self, alt: str, src: str) -> str:
        if REMOTE.match(src) or "://" in src:
            raise SlidesError(f"image {src!r} is remote: the deck must open offline; save it under slides/ and use its path.")
        if src.startswith("figure:"):
            name = src[len("figure:"):]
            path = self.figures / name if self.figures else None
        else:
            name, path = src, self.base / src
        if path is None or not path.is_file():
            self.missing.append(name)
            where = f"{self.figures}/{name}" if src.startswith("figure:") else str(self.base / src)
            return (f'<figure class="placeholder"><div><strong>PLACEHOLDER: figure missing</strong><br>'
                    f"<code>{html.escape(name)}</code><br><small>expected at {html.escape(where)}; run the stage "
                    f"notebooks, then rebuild with <code>--figures RUN_DIR/figures</code></small></div>"
                    f"<figcaption>{inline(alt)}</figcaption></figure>")
        self.used.append(name)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"><figcaption>{inline(alt)}</figcaption></figure>'


def markdown(text: str, images: Images) -> str:
    """Headings, nested bullets, numbered lists, quotes, tables, fenced code, images, raw HTML blocks, paragraphs."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1:j]))}</code></pre>")
            i = j + 1
        elif m := re.match(r"(#{1,4})\s+(.*)", stripped):
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
            i += 1
        elif m := re.fullmatch(r"!\[(.*?)\]\((.*?)\)", stripped):
            out.append(images.figure(m.group(1), m.group(2)))
            i += 1
        elif stripped.startswith("<"):  # raw HTML block, up to a blank line
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out.append("\n".join(lines[i:j]))
            i = j
        elif re.match(r"([-*]|\d+\.)\s", stripped):
            j = i
            while j < len(lines) and lines[j].strip() and (re.match(r"\s*([-*]|\d+\.)\s", lines[j]) or lines[j].startswith("  ")):
                j += 1
            out.append(_list(lines[i:j]))
            i = j
        elif stripped.startswith(">"):
            j = i
            while j < len(lines) and lines[j].strip().startswith(">"):
                j += 1
            quote = " ".join(l.strip()[1:].strip() for l in lines[i:j])
            out.append(f"<blockquote>{inline(quote)}</blockquote>")
            i = j
        elif stripped.startswith("|"):
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        else:
            j = i
            while j < len(lines) and lines[j].strip() and not re.match(r"\s*([-*#>|<`!]|\d+\.\s)", lines[j]):
                j += 1
            j = max(j, i + 1)
            out.append(f"<p>{inline(' '.join(l.strip() for l in lines[i:j]))}</p>")
            i = j
    return "\n".join(out)


def _list(lines: list[str]) -> str:
    """Nested lists by indentation (two spaces a level); continuation lines join the item above."""
    items: list[tuple[int, bool, str]] = []
    for line in lines:
        m = re.match(r"(\s*)([-*]|\d+\.)\s+(.*)", line)
        if m:
            items.append((len(m.group(1)) // 2, m.group(2)[0].isdigit(), m.group(3)))
        elif items:
            depth, ordered, text = items[-1]
            items[-1] = (depth, ordered, text + " " + line.strip())
    out: list[str] = []
    stack: list[str] = []
    for depth, ordered, text in items:
        while len(stack) > depth + 1:
            out.append(f"</li></{stack.pop()}>")
        if len(stack) == depth + 1:
            out.append("</li>")
        while len(stack) < depth + 1:
            tag = "ol" if ordered else "ul"
            stack.append(tag)
            out.append(f"<{tag}>")
        out.append(f"<li>{inline(text)}")
    while stack:
        out.append(f"</li></{stack.pop()}>")
    return "".join(out)


def _table(lines: list[str]) -> str:
    rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in lines]
    rows = [r for r in rows if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
    head, body = rows[0], rows[1:]
    th = "".join(f"<th>{inline(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


# The page ------------------------------------------------------------------------------------------------------------

# The deck's look and its keyboard navigation, inlined into the page so it opens offline.
CSS_FILE = REPO_ROOT / "slides" / "deck.css"
SCRIPT_FILE = REPO_ROOT / "slides" / "deck.js"


def render(slides: list[Slide], images: Images, title: str) -> str:
    total = sum(s.minutes for s in slides)
    sections, elapsed = [], 0.0
    for k, s in enumerate(slides, 1):
        head, rest = "", s.body
        if m := re.match(r"\s*(#{1,3}\s.*)\n", rest):  # the slide's heading spans the columns below it
            head, rest = markdown(m.group(1), images), rest[m.end():]
        columns = re.split(r"^\|\|[ \t]*$", rest, flags=re.M)
        if len(columns) > 1:
            body = head + '<div class="cols">' + "".join(f"<div>{markdown(c, images)}</div>" for c in columns) + "</div>"
        else:
            body = head + markdown(rest, images)
        notes = markdown(s.notes, images)
        sections.append(
            f'<section class="slide {" ".join(s.classes)}" id="s{k}" data-start="{elapsed:g}" data-total="{total:g}">\n'
            f"{body}\n<div class=\"footer\"><span>{html.escape(title)}</span><span>{k} / {len(slides)}</span></div>\n"
            f'<aside class="notes">{notes}</aside>\n</section>'
        )
        elapsed += s.minutes
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
        f"<style>{CSS_FILE.read_text(encoding='utf-8')}</style></head>\n<body>\n<div id=\"deck\">\n" + "\n".join(sections) + "\n</div>\n"
        '<div id="notes"></div><div id="help">\u2190 \u2192 or click to move \u00b7 n: speaker notes</div>\n'
        f"<script>{SCRIPT_FILE.read_text(encoding='utf-8')}</script>\n</body></html>\n"
    )


def build_slides(
    source: str | Path = DEFAULT_SOURCE, figures: str | Path | None = None, out: str | Path = DEFAULT_OUT
) -> Deck:
    """Build the deck into one HTML file; figures come from `figures` (default: a run under runs/), else placeholders."""
    source = Path(source)
    if not source.is_file():
        raise SlidesError(f"{source} not found: pass the deck's Markdown source (default slides/lecture.md).")
    if figures is not None:
        figures_dir = Path(figures)
    else:
        figures_dir = next((d for d in FIGURE_DIRS if d.is_dir()), FIGURE_DIRS[0])
    slides = parse_deck(source.read_text(encoding="utf-8"))
    for k, s in enumerate(slides, 1):
        if not s.notes:
            raise SlidesError(f"slide {k} of {source} has no speaker notes: add a 'Note:' line and the notes below it.")
    title_match = re.search(r"^#\s+(.+)$", slides[0].body, flags=re.M) if slides else None
    title = title_match.group(1).strip() if title_match else source.stem
    images = Images(figures_dir if figures_dir.is_dir() else None, source.parent)
    page = render(slides, images, re.sub(r"[*_`]", "", title))
    remote = REMOTE.search(re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", page))
    if remote:
        raise SlidesError(f"the deck refers to a remote address ({remote.group(0)}...): it must open offline; remove it.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return Deck(out, slides, images.used, images.missing)


def slides_main(argv: list[str] | None = None) -> int:
    """`python -m lecture_utils slides [--figures DIR] [--source FILE] [--out FILE]`."""
    ap = argparse.ArgumentParser(prog="python -m lecture_utils slides", description=build_slides.__doc__)
    ap.add_argument("--figures", help="folder of PNG figures a run saved (default runs/demo/figures, else "
                    "runs/course/run/figures)")
    ap.add_argument("--source", default=str(DEFAULT_SOURCE), help="the deck's Markdown source")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="the HTML file to write")
    args = ap.parse_args(argv)
    try:
        deck = build_slides(args.source, args.figures, args.out)
    except SlidesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    minutes = sum(s.minutes for s in deck.slides)
    print(f"wrote {deck.path}: {len(deck.slides)} slides, {minutes:g} planned minutes, {len(deck.figures_used)} figures")
    if deck.missing:
        print(f"placeholders for missing figures: {', '.join(deck.missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(slides_main())
