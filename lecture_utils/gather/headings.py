"""Chapter headings in the lines of a plain-text book: `CHAPTER XII.`, `Letter 4`, `BOOK II` and the like.

A title may stand on the heading line or under it and wrap over a few lines; a table of contents lists the same
headings without text under them, and a line of prose can begin the way a heading does. Illustration blocks are
taken out here as well, since a book sometimes prints a heading or its closing "THE END" inside one.

A book with no worded chapter headings may head its chapters with a number alone on a line (`7` or `VII`) and a
title line under it; such a number counts only where it stands between blank lines, has a short title line below
and runs in sequence with its neighbours (6 before it or 8 after it), since a lone number can also be a date or a sum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_CHAPTER_CHARS = 200  # a heading followed by less text than this is a table-of-contents entry, not a chapter
_HEADING_RE = re.compile(
    r"^(?P<kind>chapter|letter|book|part|volume)\s+(?P<num>\d+|[ivxlcdm]+|(?:the\s+)?[a-z]+)\b\.?"
    r"(?:\s*[.:\u2014\u2013-]+\s*|\s+)?(?P<title>.*)$", re.I)
_ROMAN_RE = re.compile(r"^M{0,4}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")
_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                 "seventeen eighteen nineteen twenty").split()
_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split()
_PART_KINDS = ("book", "part", "volume")  # a part holds chapters, whose numbers may start again at 1
MAX_TITLE_LINES = 3  # a heading's title may wrap onto at most this many lines
_END_OF_BOOK_RE = re.compile(r"^(THE END|The End|FINIS|Finis)\.?$")
_TOC_LINE_RE = re.compile(r"^\S.*?(\s{2,}|\.{3,}\s*)(\d+|[ivxlcdm]+)$", re.I)  # "Heading to Chapter I.      1"
_BARE_NUMBER_RE = re.compile(r"^(\d{1,3}|[IVXLC]+)\.?$")  # "7", "VII." (upper case: a lone "i" or "v" is not one)
MAX_BLANKS_BEFORE_TITLE = 2  # blank lines allowed between a bare number and its title line


def roman_to_int(s: str) -> int | None:
    s = s.upper()
    if not s or not _ROMAN_RE.match(s):
        return None
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    for a, b in zip(s, s[1:] + " "):
        total += -values[a] if b != " " and values[a] < values[b] else values[a]
    return total


def _number(s: str) -> int | None:
    """12, XII, Twelve or "the Twelfth" as an int; None for any other word."""
    s = " ".join(s.lower().split()).removeprefix("the ")
    if s.isdigit():
        return int(s)
    for words in (_NUMBER_WORDS, _ORDINALS):
        if s in words:
            return words.index(s) + 1
    return roman_to_int(s)


def parse_heading(line: str) -> tuple[str, int, str, bool] | None:
    """(kind, number, title, separated) when the line is a heading such as `CHAPTER XII.` or `BOOK II`;
    separated: punctuation, not just a space, stands between the number and the title."""
    line = line.strip()
    if len(line) > 100:
        return None
    m = _HEADING_RE.match(line)
    number = _number(m.group("num")) if m else None
    if number is None:
        return None
    separated = bool(line[m.end("num"):m.start("title")].strip())
    return m.group("kind").lower(), number, m.group("title").strip().rstrip(".").strip(), separated


def _ends_sentence(line: str) -> bool:
    return line.rstrip()[-1:] in tuple(".!?:;\"\u201d\u2019')_]*")


def _remove_illustrations(lines: list[str]) -> tuple[list[tuple[int, str]], int]:
    """Drop `[Illustration ...]` blocks (bracket-balanced, possibly multi-line); keep a chapter heading or
    'THE END' printed inside one, and rejoin a paragraph that an illustration cut in two."""
    kept: list[tuple[int, str]] = []  # (original line index, text)
    count = 0
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().lower().startswith("[illustration"):
            kept.append((i, lines[i]))
            i += 1
            continue
        count += 1
        depth, j = 0, i
        for j in range(i, min(i + 40, len(lines))):
            depth += lines[j].count("[") - lines[j].count("]")
            if depth <= 0:
                break
        else:
            j = i  # unbalanced: treat only the marker line as the illustration
        inner = [ln.strip(" \t[]") for ln in lines[i:j + 1]]
        inner[0] = re.sub(r"^illustration:?", "", inner[0], flags=re.I).strip(" \t[]")
        heading = next((ln for ln in inner if parse_heading(ln)), None)
        words = " ".join(" ".join(inner).split())
        if heading:
            kept += [(i, ""), (i, heading), (i, "")]
        elif _END_OF_BOOK_RE.match(words):
            kept += [(i, ""), (i, words), (i, "")]
        else:
            nxt = j + 1
            while nxt < len(lines) and not lines[nxt].strip():
                nxt += 1
            prev = next((t for _, t in reversed(kept) if t.strip()), "")
            if (prev and nxt < len(lines) and not _ends_sentence(prev) and not parse_heading(prev)
                    and lines[nxt].lstrip()[:1].islower()):
                while kept and not kept[-1][1].strip():  # the text runs on across the picture
                    kept.pop()
                j = nxt - 1
        i = j + 1
    return kept, count


def _title_like(text: str) -> bool:
    """Most longer words capitalised, as in "Of the Long Walk" or "THE STORM"; running prose is not."""
    # a hyphenated compound is one word: "The Sea-cook" is a title, its "cook" is not a lower-case word
    words = [w for w in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", text) if len(w) >= 4]
    return sum(w[0].isupper() for w in words) >= 0.8 * len(words)


@dataclass
class _Heading:
    index: int  # into the kept lines
    size: int  # lines the heading takes: more than 1 when its title is on (or wraps onto) the next lines
    kind: str
    number: int
    title: str
    text: str
    part: _Heading | None = None  # the BOOK/PART/VOLUME heading this one comes after
    opens_part: bool = False  # that part heading stands right above this one

    @property
    def key(self) -> tuple:
        """Names the chapter: the same key twice is the same chapter (a contents entry and the chapter itself)."""
        return (self.part.kind, self.part.number) if self.part else None, self.kind, self.number


def _bare_number_headings(lines: list[str]) -> dict[int, tuple[int, int, str]]:
    """Chapters headed by a number alone on a line and a title line under it, as {index: (number, size, title)}.

    The number stands between blank lines (or right under a BOOK/PART heading), the title is one short line (or a
    few that read like a title) followed by a blank line, and the number runs in sequence with the number before or
    after it, so a stray "12" in the text is not a chapter.
    """
    found: list[tuple[int, int, int, str]] = []  # (index, number, size, title)
    for i, line in enumerate(lines):
        m = _BARE_NUMBER_RE.match(line.strip())
        number = _number(m.group(1)) if m else None
        above = lines[i - 1].strip() if i > 0 else ""
        heading_above = parse_heading(above) if above else None
        if number is None or (above and not (heading_above and heading_above[0] in _PART_KINDS)):
            continue
        j = i + 1
        while j < len(lines) and j <= i + MAX_BLANKS_BEFORE_TITLE and not lines[j].strip():
            j += 1
        if j == i + 1:  # no blank line under the number: it belongs to the text
            continue
        title: list[str] = []  # the lines up to the next blank line
        while j < len(lines) and lines[j].strip() and len(title) <= MAX_TITLE_LINES:
            title.append(lines[j].strip())
            j += 1
        if not title or len(title) > MAX_TITLE_LINES or (len(title) > 1 and not _title_like(" ".join(title))):
            continue  # no title, or a paragraph of text under the number
        if any(len(t) > 80 or parse_heading(t) or _BARE_NUMBER_RE.match(t) for t in title):
            continue  # a long line is text; another heading or number under it is no title
        found.append((i, number, j - i, " ".join(title).rstrip(".")))
    numbers = [n for _, n, _, _ in found]
    return {i: (n, size, title) for k, (i, n, size, title) in enumerate(found)
            if (k > 0 and numbers[k - 1] == n - 1) or (k + 1 < len(found) and numbers[k + 1] == n + 1)}


def _find_headings(lines: list[str]) -> list[_Heading]:
    """Headings with a blank line above; a title may sit on the heading line or below it and wrap over a few lines.

    Bare numbers (see _bare_number_headings) are read as chapter headings only when no worded heading opens a
    chapter: in a book with CHAPTER headings a lone number is a section inside a chapter, or not a heading at all.
    """
    found = _scan_headings(lines, {})
    if not any(_real_chapters(lines, found)):
        bare = _bare_number_headings(lines)
        if bare:
            found = _scan_headings(lines, bare)
    return found


def _scan_headings(lines: list[str], bare: dict[int, tuple[int, int, str]]) -> list[_Heading]:
    """Worded headings, plus the bare-number chapter headings given (by line index), in reading order."""
    found: list[_Heading] = []
    part = None
    for i, line in enumerate(lines):
        under_part = bool(found) and found[-1] is part and part.index + part.size == i  # "BOOK I" just above
        if i in bare and (i == 0 or not lines[i - 1].strip() or under_part):
            number, size, title = bare[i]
            text = "\n".join(ln.strip() for ln in lines[i:i + size] if ln.strip())  # "7\nThe Voyage"
            found.append(_Heading(i, size, "chapter", number, title, text, part, bool(found) and found[-1] is part))
            continue
        parsed = parse_heading(line) if line.strip() else None
        if not parsed or (i > 0 and lines[i - 1].strip() and not under_part):
            continue
        kind, number, title, separated = parsed
        below = []  # the lines under the heading, up to the next blank line
        for ln in lines[i + 1:i + 2 + MAX_TITLE_LINES]:
            if not ln.strip():
                break
            below.append(ln.strip())
        fits = bool(below) and len(below) + bool(title) <= MAX_TITLE_LINES and all(
            len(ln) <= 80 and not parse_heading(ln) for ln in below)
        if title:
            # "CHAPTER 7. Of the Long Walk ... and the" runs on into its title; "Chapter 3 of the report
            # says ..." runs on as prose: no punctuation after the number, and not capitalised like a title
            wraps = fits and (_title_like(" ".join([title] + below)) or (
                separated and not any(_ends_sentence(t) for t in [line] + below[:-1])))
            if below and not wraps:
                continue
        else:
            # a bare "CHAPTER I." is never prose: one short line under it is its title, longer ones must look it
            wraps = fits and (len(below) == 1 or _title_like(" ".join(below)))
        size = 1 + len(below) if wraps else 1
        title = " ".join([title] + below[:size - 1]).strip().rstrip(".")
        if kind in _PART_KINDS and not _title_like(title):
            continue  # "Part one of the plan was simple." is prose; a part's title is capitalised
        h = _Heading(i, size, kind, number, title, "\n".join(ln.strip() for ln in lines[i:i + size]))
        if kind in _PART_KINDS:
            part = h
        else:
            h.part, h.opens_part = part, bool(found) and found[-1] is part
        found.append(h)
    return found


def _real_chapters(lines: list[str], heads: list[_Heading]) -> list[bool]:
    """A table of contents lists headings too; a real chapter has body text before the next heading."""
    real = []
    for k, h in enumerate(heads):
        stop = heads[k + 1].index if k + 1 < len(heads) else len(lines)
        body = (ln.strip() for ln in lines[h.index + h.size:stop])
        real.append(h.kind not in _PART_KINDS and sum(
            len(ln) for ln in body if not parse_heading(ln) and not _TOC_LINE_RE.match(ln)) >= MIN_CHAPTER_CHARS)
    # the last contents entry may be followed by a preface: it is not real if the same heading comes again later
    for k in range(1, len(heads)):
        if real[k] and not real[k - 1] and any(real[j] and heads[j].key == heads[k].key
                                               for j in range(k + 1, len(heads))):
            real[k] = False
    return real


def _number_gaps(chapters: list[_Heading]) -> list[str]:
    """Each place where a chapter number skips or repeats within its part, as "chapter 4 then 6 in book 2"."""
    return [f"{h.kind} {prev.number} then {h.number}" + (f" in {h.part.kind} {h.part.number}" if h.part else "")
            for prev, h in zip(chapters, chapters[1:])
            if (prev.part, prev.kind) == (h.part, h.kind) and h.number != prev.number + 1]
