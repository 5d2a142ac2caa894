"""Stage 1: books and document folders become passages that point back to their source."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import warnings
from pathlib import Path

import pytest

from lecture_utils.gather import corpus
from lecture_utils.gather.corpus import (
    Book,
    book_passages,
    corpus_stats,
    fetch_book,
    load_book,
    load_corpus,
    stats_for_path,
)
from lecture_utils.gather.documents import load_documents
from lecture_utils.gather.files import CorpusError, CorpusWarning, read_text

SHARED_BOOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pg1342.txt"
needs_book = pytest.mark.skipif(not SHARED_BOOK.exists(), reason=f"shared book copy not found at {SHARED_BOOK}")
SHARED_ISLAND = SHARED_BOOK.with_name("pg120_treasure_island.txt")  # a second book, so nothing is fitted to one
needs_island = pytest.mark.skipif(not SHARED_ISLAND.exists(), reason=f"shared copy not found at {SHARED_ISLAND}")

HEADER = """The Project Gutenberg eBook of The Lamp Keepers

This ebook is for the use of anyone anywhere, see www.gutenberg.org for the licence.

Title: The Lamp Keepers

Author: A. Test Writer

*** START OF THE PROJECT GUTENBERG EBOOK THE LAMP KEEPERS ***
"""
FOOTER = """
*** END OF THE PROJECT GUTENBERG EBOOK THE LAMP KEEPERS ***

Section 1. General Terms of Use and Redistributing Project Gutenberg electronic works.
More licence text about the Project Gutenberg archive and its foundation at www.gutenberg.org.
"""


def paragraph(chapter: int, k: int, words: int = 40) -> str:
    """A synthetic, hard-wrapped paragraph that names its chapter and position."""
    base = f"Keeper{chapter} lit lamp number {k} at dusk and wrote the hour in the harbour ledger."
    text = " ".join([base] * max(1, words // 16))
    lines, line = [], ""
    for w in text.split():
        if len(line) + len(w) > 68:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def chapter_body(n: int, paragraphs: int = 3) -> str:
    return "\n\n".join(paragraph(n, k) for k in range(1, paragraphs + 1))


def make_book(headings: list[str], front: str = "", header: str = HEADER, footer: str = FOOTER) -> str:
    body = "".join(f"\n\n\n{h}\n\n\n{chapter_body(i + 1)}\n" for i, h in enumerate(headings))
    return f"{header}\n\n{front}\n{body}{footer}"


def write(tmp_path: Path, text: str, name: str = "book.txt", encoding: str = "utf-8", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def load_quiet(path) -> Book:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)  # these inputs are clean: any warning is a bug
        return load_book(path)


# ---------------------------------------------------------------- encodings


def test_bom_crlf_and_plain_lf_load_to_the_same_book(tmp_path):
    text = make_book(["CHAPTER I.", "CHAPTER II."])
    plain = load_quiet(write(tmp_path, text, "lf.txt"))
    bom_crlf = load_quiet(write(tmp_path, "\ufeff" + text, "bom.txt", newline="\r\n"))
    assert bom_crlf.text == plain.text
    assert "\r" not in bom_crlf.text and not bom_crlf.text.startswith("\ufeff")
    assert [p.id for p in book_passages(bom_crlf)] == [p.id for p in book_passages(plain)]


def test_cp1252_file_loads_with_a_warning(tmp_path):
    text = make_book(["Chapter 1", "Chapter 2"]).replace("harbour ledger", "caf\u00e9 ledger \u2013 na\u00efve")
    path = write(tmp_path, text, encoding="cp1252")
    with pytest.warns(CorpusWarning, match="cp1252"):
        book = load_book(path)
    assert "caf\u00e9 ledger \u2013 na\u00efve" in book.text


def test_utf16_with_bom_is_read(tmp_path):
    path = write(tmp_path, make_book(["Chapter 1"]), encoding="utf-16")
    assert len(load_quiet(path).chapters) == 1


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"  \r\n\n \t\n", "is empty"),
    (b"%PDF-1.7\n\x00\x01\x02binary\x00stream", "binary"),
    (bytes(range(1, 32)) * 200, "binary"),  # no NUL bytes, but nothing readable either
])
def test_empty_and_binary_files_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=match) as err:
        load_book(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_book_with_only_its_licence_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="no text between the licence header and footer"):
        load_book(write(tmp_path, HEADER + "\n[Illustration]\n" + FOOTER))


def test_missing_book_names_the_fix(tmp_path):
    with pytest.raises(CorpusError) as err:
        load_book(tmp_path / "nope.txt")
    msg = str(err.value)
    assert "nope.txt" in msg and "corpus fetch" in msg and "BOOK_PATH" in msg and "\n" not in msg


def test_book_path_resolution(tmp_path, monkeypatch):
    path = write(tmp_path, make_book(["Chapter 1"]))
    monkeypatch.setattr(corpus, "DEFAULT_BOOK", tmp_path / "data" / "pg1342.txt")
    monkeypatch.delenv("BOOK_PATH", raising=False)
    with pytest.raises(CorpusError, match="corpus fetch.*BOOK_PATH"):
        load_book()
    monkeypatch.setenv("BOOK_PATH", str(path))
    assert load_quiet(None).title == "The Lamp Keepers"
    monkeypatch.setenv("BOOK_PATH", str(tmp_path / "gone.txt"))
    with pytest.raises(CorpusError, match="BOOK_PATH=.*gone.txt"):
        load_book()
    monkeypatch.delenv("BOOK_PATH")
    (tmp_path / "data").mkdir()
    path.rename(tmp_path / "data" / "pg1342.txt")
    assert len(load_quiet(None).chapters) == 1


# ---------------------------------------------------------------- licence header and footer


def test_header_and_footer_are_stripped(tmp_path):
    raw = make_book(["CHAPTER I.", "CHAPTER II."])
    book = load_quiet(write(tmp_path, raw))
    assert "Gutenberg" not in book.text and "licence" not in book.text and "***" not in book.text
    assert book.removed["header_chars"] == raw.index("***") + len(HEADER.splitlines()[-1])
    assert book.removed["footer_chars"] == len(FOOTER) - 1
    assert book.title == "The Lamp Keepers"


def test_marker_variants_this_indented_and_old_end_line(tmp_path):
    header = HEADER.replace("START OF THE PROJECT", "START OF THIS PROJECT")
    footer = ("\nEnd of the Project Gutenberg EBook of The Lamp Keepers\n\n"
              "        *** END OF THIS PROJECT GUTENBERG EBOOK THE LAMP KEEPERS ***\nlicence\n")
    book = load_quiet(write(tmp_path, make_book(["Chapter 1", "Chapter 2"], header=header, footer=footer)))
    assert len(book.chapters) == 2
    assert "Gutenberg" not in book.text and "licence" not in book.text


def test_missing_markers_keep_all_text_with_a_warning(tmp_path):
    path = write(tmp_path, make_book(["Chapter 1", "Chapter 2"], header="", footer=""))
    with pytest.warns(CorpusWarning, match="START/END markers"):
        book = load_book(path)
    assert len(book.chapters) == 2 and book.removed["header_chars"] == book.removed["footer_chars"] == 0


# ---------------------------------------------------------------- chapters


@pytest.mark.parametrize("headings, titles", [
    (["CHAPTER I.", "CHAPTER II.", "CHAPTER III", "Chapter IV."], ["", "", "", ""]),
    (["Chapter 1", "Chapter 2", "Chapter 3"], ["", "", ""]),
    (["CHAPTER 1. The Lamp", "CHAPTER 2. The Ledger"], ["The Lamp", "The Ledger"]),
    (["Chapter 1: Dusk", "Chapter 2 \u2014 Dawn"], ["Dusk", "Dawn"]),
    (["CHAPTER I\nTHE HARBOUR", "CHAPTER II\nTHE STORM"], ["THE HARBOUR", "THE STORM"]),
    (["CHAPTER ONE", "CHAPTER TWO"], ["", ""]),
])
def test_chapter_heading_styles(tmp_path, headings, titles):
    book = load_quiet(write(tmp_path, make_book(headings)))
    assert [c.number for c in book.chapters] == list(range(1, len(headings) + 1))
    assert [c.title for c in book.chapters] == titles
    assert [c.heading for c in book.chapters] == headings
    for i, ch in enumerate(book.chapters, 1):
        body = book.text[ch.body_start:ch.end]
        assert body.startswith(f"Keeper{i} lit lamp number 1") and f"Keeper{i + 1} " not in body
        assert body.count("\n\n") == 2 and "\n" not in body.replace("\n\n", "")  # 3 unwrapped paragraphs
    passages = book_passages(book)
    assert {p.section for p in passages} == {t or None for t in titles}


def test_bare_heading_straight_above_text_and_prose_that_looks_like_a_heading(tmp_path):
    raw = make_book(["CHAPTER I.", "CHAPTER II."]).replace("CHAPTER II.\n\n\n", "CHAPTER II.\n")
    raw = raw.replace(chapter_body(1), chapter_body(1) + "\n\nLetter 3 of the harbour master was read aloud\n"
                      "to the keepers, who listened in silence.")
    book = load_quiet(write(tmp_path, raw))
    assert [c.heading for c in book.chapters] == ["CHAPTER I.", "CHAPTER II."]
    assert book.text[book.chapters[1].body_start:].startswith("Keeper2 lit lamp number 1")
    assert "Letter 3 of the harbour master was read aloud to the keepers" in book.text


def test_wrapped_titles_keep_every_chapter_and_its_own_number(tmp_path):
    headings = [
        "CHAPTER 6. Of the Lamp",
        "CHAPTER 7. Of the Long Walk to the Village, and the\nLetters Written on the Way Back.",
        "CHAPTER 8. Wherein the keepers climb the stairs of the old\nlighthouse and find the ledger",  # sentence case
        "CHAPTER IX.\nIN WHICH THE STORM COMES IN FROM THE SEA AND THE\nKEEPERS LIGHT EVERY LAMP ON THE COAST",
        "CHAPTER 10 The Three Lamps of the Harbour, the Ledger,\nthe Keepers and the Last Night of\nthe Year",
    ]
    raw = make_book(headings).replace(chapter_body(1), chapter_body(1) + (
        "\n\nChapter 3 of the report says that the harbour lamps\nwere lit late that winter."
        "\n\nChapter 9. That was all the ledger said about it.\nThe keepers closed it and went to bed."))
    book = load_quiet(write(tmp_path, raw))
    assert [c.number for c in book.chapters] == [6, 7, 8, 9, 10]
    assert [c.heading for c in book.chapters] == headings
    assert [c.title for c in book.chapters] == [
        "Of the Lamp", "Of the Long Walk to the Village, and the Letters Written on the Way Back",
        "Wherein the keepers climb the stairs of the old lighthouse and find the ledger",
        "IN WHICH THE STORM COMES IN FROM THE SEA AND THE KEEPERS LIGHT EVERY LAMP ON THE COAST",
        "The Three Lamps of the Harbour, the Ledger, the Keepers and the Last Night of the Year"]
    for i, ch in enumerate(book.chapters, 1):
        body = book.text[ch.body_start:ch.end]
        assert body.startswith(f"Keeper{i} lit lamp number 1") and f"Keeper{i + 1} " not in body
    assert "the report says that the harbour lamps were lit late" in book.text  # prose stays prose
    assert "ledger said about it. The keepers closed it" in book.text
    passages = book_passages(book)
    assert sorted({p.id[:4] for p in passages}) == ["ch06", "ch07", "ch08", "ch09", "ch10"]
    assert {p.section for p in passages if p.chapter == 7} == {book.chapters[1].title}


def test_letters_and_chapters_each_keep_their_own_numbers(tmp_path):
    book = load_quiet(write(tmp_path, make_book(["Letter 1", "Letter 2", "Chapter 1", "Chapter 2"])))
    assert [(c.kind, c.number) for c in book.chapters] == [("letter", 1), ("letter", 2), ("chapter", 1), ("chapter", 2)]
    passages = book_passages(book)
    assert [p.id for p in passages] == ["let01-p001", "let02-p001", "ch01-p001", "ch02-p001"]
    assert [p.section for p in passages] == ["Letter 1", "Letter 2", None, None]
    assert corpus_stats(passages)["chapters"] == 4


def make_parts_book(parts: list[tuple[str, list[str]]], front: str = "") -> str:
    """A book of parts: each part heading, then its chapters; chapter bodies are numbered in reading order."""
    body, n = "", 0
    for part, headings in parts:
        body += f"\n\n\n{part}\n"
        for h in headings:
            n += 1
            body += f"\n\n{h}\n\n\n{chapter_body(n)}\n"
    return f"{HEADER}\n\n{front}\n{body}{FOOTER}"


def test_books_with_parts_keep_restarting_chapters_distinct(tmp_path):
    parts = [("BOOK I", ["CHAPTER I.", "CHAPTER II. The Ledger"]),
             ("BOOK TWO\nTHE STORM", ["CHAPTER I.", "CHAPTER II."]),
             ("PART III.\n\n_Wherein the lamps go out one by one, as the old keepers said they would._",
              ["CHAPTER I."])]
    front = "CONTENTS\n\nBOOK I\n\nCHAPTER I.\n\nCHAPTER II. The Ledger\n\nBOOK TWO\n\nCHAPTER I.\n\nCHAPTER II.\n"
    raw = make_parts_book(parts, front).replace("BOOK I\n\n\nCHAPTER I.", "BOOK I\nCHAPTER I.")  # no blank between
    book = load_quiet(write(tmp_path, raw))
    assert [c.number for c in book.chapters] == [1, 2, 1, 2, 1]
    assert [c.part for c in book.chapters] == ["Book 1", "Book 1", "Book 2", "Book 2", "Part 3"]
    assert [c.key for c in book.chapters] == ["bk01-ch01", "bk01-ch02", "bk02-ch01", "bk02-ch02", "pt03-ch01"]
    assert book.text.startswith("BOOK I\n\n\nCHAPTER I.\n\nKeeper1 lit lamp")  # the contents list is gone
    for i, ch in enumerate(book.chapters, 1):
        body = book.text[ch.body_start:ch.end]
        assert body.startswith(f"Keeper{i} lit lamp number 1") and f"Keeper{i + 1} " not in body
        assert "BOOK" not in body and "PART" not in body and "Wherein" not in body
    assert "\n\n\nPART III.\n\n_Wherein the lamps go out one by one" in book.text  # kept, but in no chapter
    passages = book_passages(book)
    assert len({p.id for p in passages}) == len(passages)
    assert [p.id for p in passages if p.id.endswith("p001")] == [f"{c.key}-p001" for c in book.chapters]
    assert [p.section for p in passages if p.id.endswith("p001")] == [
        "Book 1, Chapter 1", "Book 1, Chapter 2: The Ledger", "Book 2, Chapter 1", "Book 2, Chapter 2",
        "Part 3, Chapter 1"]
    assert corpus_stats(passages)["chapters"] == 5


@pytest.mark.parametrize("headings, numbers, keys, match", [
    (["Chapter 1", "Chapter 2", "Chapter 4"], [1, 2, 4], ["ch01", "ch02", "ch04"], r"chapter 2 then 4\b"),
    (["CHAPTER I.", "CHAPTER II.", "CHAPTER II.", "CHAPTER III."], [1, 2, 2, 3], ["ch01", "ch02", "ch02b", "ch03"],
     r"chapter 2 then 2\b"),
])
def test_skipped_or_repeated_numbers_warn_and_keep_every_chapter(tmp_path, headings, numbers, keys, match):
    with pytest.warns(CorpusWarning, match=match):
        book = load_book(write(tmp_path, make_book(headings)))
    assert [c.number for c in book.chapters] == numbers and [c.key for c in book.chapters] == keys
    passages = book_passages(book)
    assert len({p.id for p in passages}) == len(passages) and corpus_stats(passages)["chapters"] == len(headings)


def test_a_skip_inside_a_part_warns_and_names_the_part(tmp_path):
    raw = make_parts_book([("BOOK I", ["CHAPTER I.", "CHAPTER II."]), ("BOOK II", ["CHAPTER I.", "CHAPTER III."])])
    with pytest.warns(CorpusWarning, match=r"chapter 1 then 3 in book 2\b") as caught:
        book = load_book(write(tmp_path, raw))
    assert len(caught) == 1  # restarting at 1 in a new part is normal
    assert [c.key for c in book.chapters] == ["bk01-ch01", "bk01-ch02", "bk02-ch01", "bk02-ch03"]


NUMBERED_PARTS = [("PART ONE--The Lamps", ["1\n\nThe Lamp", "2\n\nThe Ledger"]),
                  ("PART TWO--The Sea-wall", ["3\n\nThe Storm", "IV\n\nThe Keepers\u2019 Last Night", "5\n\nAnd Last"])]


@pytest.mark.parametrize("contents", [
    # contents entries with page numbers, as Treasure Island prints them
    "CONTENTS\n\nPART ONE\nThe Lamps\n\n1.  THE LAMP . . . .  3\n2.  THE LEDGER . . .  9\n\n"
    "PART TWO\nThe Sea-wall\n\n3.  THE STORM  . . . 15\n4.  THE KEEPERS\u2019 LAST NIGHT  21\n5.  AND LAST . . .  27\n",
    # contents entries laid out like the headings themselves: a number, then its title, and no text under them
    "CONTENTS\n\nPART ONE--The Lamps\n\n1\n\nThe Lamp\n\n2\n\nThe Ledger\n\nPART TWO--The Sea-wall\n\n"
    "3\n\nThe Storm\n\nIV\n\nThe Keepers\u2019 Last Night\n\n5\n\nAnd Last\n",
])
def test_chapters_headed_by_a_number_and_a_title_line_under_parts(tmp_path, contents):
    raw = make_parts_book(NUMBERED_PARTS, front=contents)
    # a lone number between blank lines inside the text is out of sequence (2, 12, 3): it stays text
    raw = raw.replace(chapter_body(2), chapter_body(2) + "\n\n12\n\nThe ledger said so.")
    book = load_quiet(write(tmp_path, raw))
    assert [c.number for c in book.chapters] == [1, 2, 3, 4, 5]  # one run over the whole book, not per part
    assert [c.title for c in book.chapters] == ["The Lamp", "The Ledger", "The Storm", "The Keepers\u2019 Last Night",
                                                "And Last"]
    assert [c.heading for c in book.chapters] == ["1\nThe Lamp", "2\nThe Ledger", "3\nThe Storm",
                                                  "IV\nThe Keepers\u2019 Last Night", "5\nAnd Last"]
    assert [c.part for c in book.chapters] == ["Part 1", "Part 1", "Part 2", "Part 2", "Part 2"]
    assert book.text.startswith("PART ONE--The Lamps\n\n\n1\nThe Lamp\n\nKeeper1 lit lamp")  # contents gone
    assert "CONTENTS" not in book.text and "THE LEDGER" not in book.text
    assert "\n\n\nPART TWO--The Sea-wall\n\n\n3\nThe Storm\n\nKeeper3 lit lamp" in book.text  # in no chapter
    for i, ch in enumerate(book.chapters, 1):
        body = book.text[ch.body_start:ch.end]
        assert body.startswith(f"Keeper{i} lit lamp number 1") and f"Keeper{i + 1} " not in body
        assert "PART" not in body
    assert "ledger.\n\n12\n\nThe ledger said so." in book.text[book.chapters[1].body_start:book.chapters[1].end]
    passages = book_passages(book)
    assert [p.id for p in passages if p.id.endswith("p001")] == [
        "pt01-ch01-p001", "pt01-ch02-p001", "pt02-ch03-p001", "pt02-ch04-p001", "pt02-ch05-p001"]
    assert [p.section for p in passages if p.id.endswith("p001")] == [
        "Part 1, Chapter 1: The Lamp", "Part 1, Chapter 2: The Ledger", "Part 2, Chapter 3: The Storm",
        "Part 2, Chapter 4: The Keepers\u2019 Last Night", "Part 2, Chapter 5: And Last"]
    assert corpus_stats(passages)["chapters"] == 5


def test_numbered_lines_inside_worded_chapters_are_not_chapters(tmp_path):
    numbered = "1\n\nThe First Rule\n\n" + chapter_body(1) + "\n\n2\n\nThe Second Rule\n\n" + chapter_body(1)
    raw = make_book(["CHAPTER I.", "CHAPTER II."]).replace(chapter_body(1), numbered)
    book = load_quiet(write(tmp_path, raw))
    assert [c.heading for c in book.chapters] == ["CHAPTER I.", "CHAPTER II."]
    assert "\n\n2\n\nThe Second Rule\n\n" in book.text[book.chapters[0].body_start:book.chapters[0].end]


def test_no_chapter_headings_is_one_chapter_with_a_warning(tmp_path):
    raw = f"{HEADER}\n{chapter_body(1)}\n{FOOTER}"
    with pytest.warns(CorpusWarning, match="no chapter headings"):
        book = load_book(write(tmp_path, raw))
    assert len(book.chapters) == 1 and book.text.startswith("Keeper1 lit lamp")


def test_front_matter_toc_and_illustrations_are_dropped(tmp_path):
    front = """[Illustration:

                  THE LAMP KEEPERS

        [_Copyright by nobody._]]

CONTENTS

Chapter 1

Chapter 2

Chapter 3

PREFACE. This preface talks at length about lighthouses in general, and it
is long enough that a careless loader would take the last contents entry for
a chapter, since some text follows it before the real first chapter starts.
The real chapters follow below and each has its own heading and body text.

Heading to Chapter 1.                 1
Keeper at work                        7
"""
    headings = ["Chapter 1", "Chapter 2", "Chapter 3"]
    raw = make_book(headings, front=front)
    raw = raw.replace(chapter_body(2), "The second keeper climbed the stairs and wrote the hour in the\n\n"
                      "[Illustration: \u201cThe ledger\u201d [_Copyright_]]\n\nharbour ledger before the storm.\n\n"
                      + chapter_body(2))
    raw = raw.replace("\n\n\nChapter 3\n", "\n\n\n[Illustration: THE THIRD NIGHT\n\n\nChapter 3]\n")
    book = load_quiet(write(tmp_path, raw))
    assert [c.heading for c in book.chapters] == headings
    assert book.text.startswith("Chapter 1\n\nKeeper1 lit lamp number 1")
    for word in ("Illustration", "Copyright", "CONTENTS", "PREFACE", "[", "]"):
        assert word not in book.text
    assert "\n\nThe second keeper climbed the stairs and wrote the hour in the harbour ledger before the storm.\n\n" \
        in book.text  # the paragraph the illustration cut in two is whole again
    assert book.removed["illustrations"] == 3
    assert book.removed["toc_lines"] == 5  # three contents entries, two page-numbered list lines
    start_line_end = raw.index(" ***\n") + len(" ***")
    first_heading = raw.index("\nChapter 1\n\n\nKeeper1") + 1
    assert book.removed["front_matter_chars"] == first_heading - start_line_end


def test_a_contents_list_without_blank_lines_is_not_a_chapter(tmp_path):
    headings = ["Letter 1", "Letter 2", "Chapter 1", "Chapter 2", "Chapter 3"]
    front = "CONTENTS\n\n" + "\n".join(f" {h}" for h in headings * 8) + "\n"  # long enough to look like a body
    book = load_quiet(write(tmp_path, make_book(headings, front=front)))
    assert [c.heading for c in book.chapters] == headings
    assert book.text.startswith("Letter 1\n\nKeeper1 lit lamp")
    assert book.removed["toc_lines"] == len(headings) * 8


def test_the_end_and_what_follows_are_back_matter(tmp_path):
    raw = make_book(["Chapter 1", "Chapter 2"])
    raw = raw.replace(FOOTER, "\n\n   [Illustration:\n\n     THE\n     END\n     ]\n\nPRINTED BY A PRESS.\n" + FOOTER)
    book = load_quiet(write(tmp_path, raw))
    assert book.text.endswith("harbour ledger.") and "PRESS" not in book.text
    assert book.removed["back_matter_chars"] > len("PRINTED BY A PRESS.")


# ---------------------------------------------------------------- passages


def test_passages_are_exact_slices_with_stable_ids(tmp_path):
    raw = make_book(["CHAPTER I.", "CHAPTER II.", "CHAPTER III."]).replace(
        chapter_body(2), "\n\n".join(paragraph(2, k, words=120) for k in range(1, 12)))
    path = write(tmp_path, raw)
    book = load_quiet(path)
    passages = book_passages(book, target_chars=500)
    assert [p.id for p in passages] == [p.id for p in book_passages(load_quiet(path), target_chars=500)]
    assert len({p.id for p in passages}) == len(passages)
    for p in passages:
        assert book.text[p.start:p.end] == p.text and p.text == p.text.strip()
        ch = book.chapters[p.chapter - 1]
        assert ch.body_start <= p.start < p.end <= ch.end  # never across chapters
        assert len(p.text) <= 750 and p.source == "book.txt"
    ch2 = [p.id for p in passages if p.chapter == 2]
    assert ch2[:3] == ["ch02-p001", "ch02-p002", "ch02-p003"] and len(ch2) > 3
    assert sum(1 for p in passages if "\n\n" in p.text) > 0  # short paragraphs were merged


def test_a_long_paragraph_is_cut_at_sentence_ends(tmp_path):
    raw = make_book(["Chapter 1"]).replace(chapter_body(1), paragraph(1, 1, words=800))
    book = load_quiet(write(tmp_path, raw))
    passages = book_passages(book, target_chars=400)
    assert len(passages) > 5
    assert all(p.text.endswith("ledger.") and p.text.startswith("Keeper1") for p in passages)
    assert " ".join(p.text for p in passages) == book.text[book.chapters[0].body_start:]



def test_a_long_paragraph_is_never_cut_after_a_title(tmp_path):
    """"Mr." ends no sentence: a passage that began "Collins allowed him to speak, replied ..." lost its subject."""
    sentence = ("Captain Harrow waited at the quay with the nets until the evening tide came in, and when at last "
                "Mr. Collins came down he replied. ")
    raw = make_book(["Chapter 1"]).replace(chapter_body(1), sentence * 40)
    book = load_quiet(write(tmp_path, raw))
    passages = book_passages(book, target_chars=500)  # the size at which a cut after "Mr." came first
    assert len(passages) > 5
    assert all(p.text.startswith("Captain Harrow") and p.text.endswith("he replied.") for p in passages)


# ---------------------------------------------------------------- documents


def make_docs(root: Path) -> Path:
    docs = root / "wiki"
    (docs / "team" / "deep").mkdir(parents=True)
    (docs / ".git").mkdir()
    (docs / "guide.md").write_text(
        "---\ntitle: Guide\n---\nIntro before any heading.\n\n# Install\n\nRun the installer twice.\n\n"
        "```bash\n# not a heading\n\nmake install\n```\n\n## Upgrade #\n\nUpgrade on Mondays.\n\n"
        "Setext Title\n============\n\nBody under setext.\n", encoding="utf-8")
    (docs / "team" / "process.rst").write_text(
        "=======\nProcess\n=======\n\nWe review every change.\n\nReview rules\n------------\n\n"
        "Two approvals are needed\nfor a merge.\n", encoding="utf-8")
    (docs / "team" / "deep" / "notes.txt").write_bytes("Caf\u00e9 notes in cp1252.\n".encode("cp1252"))
    (docs / "team" / "empty.md").write_text("", encoding="utf-8")
    (docs / "team" / "scan.txt").write_bytes(b"\x00\x01PK\x03\x04")
    (docs / "image.png").write_bytes(b"\x89PNG")
    (docs / ".git" / "HEAD.txt").write_text("ref: refs/heads/main\n")
    return docs


def test_documents_folder_skips_unusable_files_with_warnings(tmp_path):
    docs = make_docs(tmp_path)
    with pytest.warns(CorpusWarning) as caught:
        passages = load_documents(docs)
    messages = " ".join(str(w.message) for w in caught)
    assert "team/empty.md" in messages and "team/scan.txt" in messages and "cp1252" in messages
    assert "HEAD" not in messages and "image.png" not in messages  # hidden folders and other types are not read
    assert sorted({p.source for p in passages}) == ["guide.md", "team/deep/notes.txt", "team/process.rst"]


def test_document_passages_ids_sections_and_offsets(tmp_path):
    docs = make_docs(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        passages = load_documents(docs)
        again = load_documents(docs)
    assert passages == again
    got = [(p.id, p.source, p.section, p.text) for p in passages]
    assert got == [
        ("guide-md-s00-p001", "guide.md", None, "Intro before any heading."),
        ("guide-md-s01-p001", "guide.md", "Install",
         "Run the installer twice.\n\n```bash\n# not a heading\n\nmake install\n```"),
        ("guide-md-s02-p001", "guide.md", "Upgrade", "Upgrade on Mondays."),
        ("guide-md-s03-p001", "guide.md", "Setext Title", "Body under setext."),
        ("team-deep-notes-txt-s00-p001", "team/deep/notes.txt", None, "Caf\u00e9 notes in cp1252."),
        ("team-process-rst-s01-p001", "team/process.rst", "Process", "We review every change."),
        ("team-process-rst-s02-p001", "team/process.rst", "Review rules", "Two approvals are needed\nfor a merge."),
    ]
    for p in passages:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorpusWarning)
            assert read_text(docs / p.source)[p.start:p.end] == p.text
        assert p.chapter is None


def test_slug_collisions_get_a_stable_suffix(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.md").write_text("first")
    (tmp_path / "a-b.md").write_text("second")
    ids = [(p.source, p.id) for p in load_documents(tmp_path)]
    assert ids == [("a-b.md", "a-b-md-s00-p001"), ("a/b.md", "a-b-md-2-s00-p001")]


def test_folder_without_usable_documents_is_an_error(tmp_path):
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / "only-headings.md").write_text("# Title\n\n## Sub\n")
    with pytest.warns(CorpusWarning), pytest.raises(CorpusError, match="No usable documents.*2 .txt/.md/.rst"):
        load_documents(tmp_path)
    with pytest.raises(CorpusError, match="not a folder"):
        load_documents(tmp_path / "missing")


def test_load_corpus_dispatches_on_folder_document_and_book(tmp_path):
    book = write(tmp_path, make_book(["Chapter 1", "Chapter 2"]))
    assert {p.chapter for p in load_corpus(book)} == {1, 2}
    note = tmp_path / "docs" / "note.md"
    note.parent.mkdir()
    note.write_text("# Hello\n\nA note about lamps.\n")
    assert [p.id for p in load_corpus(note)] == ["note-md-s01-p001"]
    assert [p.source for p in load_corpus(note.parent)] == ["note.md"]


def test_corpus_stats_and_stats_for_path(tmp_path):
    book = write(tmp_path, make_book(["Chapter 1", "Chapter 2"]))
    passages = book_passages(load_quiet(book))
    stats = corpus_stats(passages)
    words = [len(p.text.split()) for p in passages]
    assert stats["chapters"] == 2 and stats["passages"] == len(passages) and stats["words"] == sum(words)
    assert stats["min_passage_words"] == min(words) and stats["max_passage_words"] == max(words)
    assert json.loads(json.dumps(stats)) == stats
    assert corpus_stats([])["passages"] == 0
    cli = stats_for_path(book)
    assert cli["chapters"] == 2 and cli["title"] == "The Lamp Keepers" and cli["removed"]["header_chars"] > 0
    json.dumps(cli)


# ---------------------------------------------------------------- fetch


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    missing = 0  # bytes promised in Content-Length but never sent: a download cut off mid-way

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body) + self.missing))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_fetch_book_downloads_atomically_and_keeps_an_existing_copy(tmp_path, http_server):
    _Handler.body = ("\ufeff" + make_book(["Chapter 1"])).replace("\n", "\r\n").encode()
    url = f"http://127.0.0.1:{http_server.server_port}/pg1342.txt"
    dest = fetch_book(tmp_path / "data" / "pg1342.txt", url=url)
    assert dest.read_bytes() == _Handler.body and not list(dest.parent.glob("*.part"))
    assert len(load_quiet(dest).chapters) == 1
    _Handler.body = b"not a book"
    assert fetch_book(dest, url=url).read_bytes().startswith("\ufeff".encode())  # not downloaded again
    with pytest.raises(CorpusError, match="did not return a Project Gutenberg text"):
        fetch_book(dest, url=url, force=True)
    _Handler.body, _Handler.missing = make_book(["Chapter 1"]).encode(), 5000
    try:
        with pytest.raises(CorpusError, match="Could not download"):
            fetch_book(dest, url=url, force=True)
    finally:
        _Handler.missing = 0
    assert len(load_quiet(dest).chapters) == 1  # the good copy survived both failed downloads


def test_fetch_book_offline_names_the_fix(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(CorpusError) as err:
        fetch_book(tmp_path / "pg1342.txt", url=f"http://127.0.0.1:{port}/pg1342.txt", timeout=2)
    msg = str(err.value)
    assert "Could not download" in msg and "BOOK_PATH" in msg and "pg1342.txt" in msg and "\n" not in msg
    assert not (tmp_path / "pg1342.txt").exists()


# ---------------------------------------------------------------- the shared copy of Pride and Prejudice


@pytest.fixture(scope="module")
def shared_book() -> Book:
    return load_quiet(SHARED_BOOK)


@needs_book
def test_shared_book_chapters_and_first_sentence(shared_book):
    assert shared_book.title == "Pride and Prejudice"
    assert len(shared_book.chapters) == 61
    assert [c.number for c in shared_book.chapters] == list(range(1, 62))
    first = book_passages(shared_book)[0]
    assert first.id == "ch01-p001" and first.text.startswith("It is a truth universally acknowledged")


@needs_book
def test_shared_book_passages_are_clean_and_exact(shared_book):
    passages = book_passages(shared_book)
    assert 500 < len(passages) < 1500
    for p in passages:
        assert shared_book.text[p.start:p.end] == p.text
        lowered = p.text.lower()
        assert "project gutenberg" not in lowered and "gutenberg.org" not in lowered
        assert "[illustration" not in lowered and "copyright 1894" not in lowered
    assert len({p.id for p in passages}) == len(passages)
    assert [p.id for p in passages] == [p.id for p in book_passages(load_quiet(SHARED_BOOK))]
    assert "Heading to Chapter" not in shared_book.text  # the list of illustrations
    removed = shared_book.removed
    assert removed["illustrations"] > 100 and removed["toc_lines"] > 50 and removed["front_matter_chars"] > 10000


@needs_book
def test_shared_book_with_a_bom_and_lf_is_the_same_book(shared_book, tmp_path):
    copy = tmp_path / "pg1342.txt"
    copy.write_bytes(b"\xef\xbb\xbf" + SHARED_BOOK.read_bytes().replace(b"\r\n", b"\n"))
    assert load_quiet(copy).text == shared_book.text


@needs_book
def test_stats_for_the_shared_book():
    stats = stats_for_path(SHARED_BOOK)
    assert stats["chapters"] == 61 and stats["passages"] > 500 and stats["words"] > 100_000
    assert os.path.samefile(stats["path"], SHARED_BOOK)


# ---------------------------------------------------------------- the shared copy of Treasure Island


@needs_island
def test_treasure_island_chapters_are_its_numbered_headings_in_reading_order():
    book = load_quiet(SHARED_ISLAND)
    assert book.title == "Treasure Island"
    assert [c.number for c in book.chapters] == list(range(1, 35))  # the contents list gives no chapter
    assert [c.start for c in book.chapters] == sorted(c.start for c in book.chapters)
    assert book.chapters[0].title == "The Old Sea-dog at the Admiral Benbow"
    assert book.chapters[-1].title == "And Last"
    assert [c.part for c in book.chapters][::6] == ["Part 1", "Part 2", "Part 3", "Part 4", "Part 5", "Part 6"]
    assert "CONTENTS" not in book.text and "HESITATING PURCHASER" not in book.text
    passages = book_passages(book)
    assert passages[0].id == "pt01-ch01-p001" and passages[0].text.startswith("SQUIRE TRELAWNEY, Dr. Livesey")
    assert passages[0].section == "Part 1, Chapter 1: The Old Sea-dog at the Admiral Benbow"
    assert len({p.id for p in passages}) == len(passages) and corpus_stats(passages)["chapters"] == 34
    for p in passages:
        assert book.text[p.start:p.end] == p.text
        assert "project gutenberg" not in p.text.lower()
