"""Paragraphs and passages as character offsets into a text.

Hard-wrapped lines are joined into one line per paragraph; paragraphs are found between blank lines, a paragraph
much longer than the target is cut at sentence ends, and short neighbours are merged up to the target size.
"""

from __future__ import annotations

from lecture_utils.text.sentences import sentence_spans


def _split_long(text: str, start: int, end: int, target: int) -> list[tuple[int, int]]:
    """Cut a paragraph longer than 1.5 x target at sentence ends into pieces of about `target` characters."""
    if end - start <= 1.5 * target:
        return [(start, end)]
    # a title's full stop ("Mr. Collins") ends no sentence: a passage cut there began "Collins allowed him to speak,
    # replied ...", and a question written from that fragment made Collins the one who replied
    piece = text[start:end].replace("\n", " ")  # a paragraph of a document may hold line breaks: no cut there
    cuts = [start + e for _, e in sentence_spans(piece, passage_cuts=True)[:-1]]
    pieces, piece_start, last_cut = [], start, None
    for cut in cuts + [end]:
        if cut - piece_start > target and last_cut is not None:
            pieces.append((piece_start, last_cut))
            piece_start = last_cut
            while text[piece_start].isspace():
                piece_start += 1
            last_cut = None
        last_cut = cut if cut > piece_start else last_cut
    pieces.append((piece_start, end))
    return pieces


def _merge(spans: list[tuple[int, int]], target: int) -> list[tuple[int, int]]:
    """Merge consecutive paragraph spans up to `target` characters; a short tail joins the previous group."""
    groups: list[tuple[int, int]] = []
    for s, e in spans:
        if groups and e - groups[-1][0] <= target:
            groups[-1] = (groups[-1][0], e)
        else:
            groups.append((s, e))
    if len(groups) > 1 and groups[-1][1] - groups[-1][0] < target / 4 and groups[-1][1] - groups[-2][0] <= 1.5 * target:
        groups[-2:] = [(groups[-2][0], groups[-1][1])]
    return groups


def _paragraph_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    while pos < end:
        stop = text.find("\n\n", pos, end)
        stop = end if stop < 0 else stop
        s, e = pos, stop
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        pos = stop + 2
    return spans


def _unwrap(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into one line per paragraph (paragraphs are separated by blank lines)."""
    paragraphs, current = [], ""
    for line in lines + [""]:
        words = " ".join(line.split())
        if not words:
            if current:
                paragraphs.append(current)
            current = ""
        elif not current:
            current = words
        elif current.endswith(("-", "\u2014")):  # "to-" + "day", "go--" + "or": no space
            current += words
        else:
            current += " " + words
    return paragraphs
