"""Coverage: the characters a text names, mentions per chapter, and the chapters instructions touch."""

from __future__ import annotations

from lecture_utils import coverage as cv
from lecture_utils.records import Instruction, Passage
from lecture_utils.retrieval import BM25Index


def _ins(id_, text, run, category="plot and events"):
    return Instruction(id=id_, instruction=text, category=category, run=run, origin="teacher")


def test_characters_named_resolves_aliases_and_titles():
    named = cv.characters_named
    assert named("Why does Lizzy laugh at Eliza's suitor?") == ["Elizabeth"]
    assert named("What does Miss Darcy think of her brother?") == ["Georgiana"]
    assert named("Describe Mrs. Wickham's return to Longbourn.") == ["Lydia"]
    assert named("How does Jane Austen use irony?") == []
    assert named("Why does Lady Catherine\nvisit?") == ["Lady Catherine"]
    assert named("Catherine and Lydia walk to Meryton.") == ["Lydia", "Kitty"]
    assert named("Mr Bennet teases Mrs Bennet.") == ["Mr Bennet", "Mrs Bennet"]
    assert named("Describe Miss Bingley's letter to Jane.") == ["Jane", "Caroline Bingley"]
    assert named("Ada writes to Lovelace.", {"Ada": ["Ada", "Lovelace"], "Babbage": ["Babbage"]}) == ["Ada"]


def _passages() -> list[Passage]:
    texts = {
        1: ["A ball is held at the assembly rooms and Lizzy dances with an officer.",
            "Mrs. Bennet talks of nothing but the ball and the rich new neighbour."],
        2: ["A long letter arrives from the clergyman, who writes of his patroness."],
        4: ["Jane walks in the garden while Elizabeth reads the letter again by the fire."],
    }
    out, pos = [], 0
    for chapter, paragraphs in texts.items():
        for n, text in enumerate(paragraphs, 1):
            out.append(Passage(f"ch{chapter:02d}-p{n:03d}", "tiny.txt", text, pos, pos + len(text), chapter))
            pos += len(text) + 1
    return out


def test_coverage_table_and_chapter_counts_show_untouched_chapters():
    index = BM25Index(_passages())
    data = [_ins("a", "Describe the ball at the assembly rooms.", 1),
            _ins("b", "What does the clergyman write about his patroness?", 1),
            _ins("c", "Why does Lizzy dance with the officer at the ball?", 2),
            _ins("d", "Zebra quantum xylophone?", 2)]
    table = cv.coverage_table(data, index)
    assert list(table["chapter"][:3]) == [1, 2, 1]
    assert table["passage_id"][1] == "ch02-p001" and table["chapter"].isna().tolist() == [False, False, False, True]
    assert table["characters"][2] == ["Elizabeth"]
    counts = cv.chapter_counts(table["chapter"], n_chapters=5)
    assert list(counts.index) == [1, 2, 3, 4, 5] and list(counts) == [2, 1, 0, 0, 0]
    assert cv.uncovered_chapters(counts) == [3, 4, 5]
    names = cv.character_counts(data)
    assert names["Elizabeth"] == 1 and names["Darcy"] == 0 and len(names) == len(cv.CHARACTERS)


def test_character_mentions_per_chapter():
    table = cv.character_mentions(_passages())
    assert list(table.index) == [1, 2, 4]
    assert table.loc[1, "Elizabeth"] == 1 and table.loc[1, "Mrs Bennet"] == 1
    assert table.loc[4, "Jane"] == 1 and table.loc[4, "Elizabeth"] == 1
    assert table.loc[2].sum() == 0
    assert list(table.columns) == list(cv.CHARACTERS)
