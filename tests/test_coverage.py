"""Coverage: the names a source mentions most, mentions per chapter, and the chapters instructions touch."""

from __future__ import annotations

import matplotlib.pyplot as plt

from lecture_utils.answer.retrieval import BM25Index
from lecture_utils.ask import coverage as cv
from lecture_utils.notebook import plots
from lecture_utils.records import Instruction, Passage


def _ins(id_, text, run, category="plot and events"):
    return Instruction(id=id_, instruction=text, category=category, run=run, origin="teacher")


def test_find_names_takes_titled_and_inner_capitalised_words_not_sentence_openers():
    texts = ["The ship sailed at dawn. Captain Harrow stood by the wheel while Marla watched from the quay.",
             "When the storm came, Marla climbed to the lamp. But the keeper said: Harrow is late.",
             "\u201cMarla!\u201d cried Dr. Penrose. Then the boat reached Fenwick."]
    names = cv.find_names(texts)
    assert names[:2] == ["Marla", "Harrow"]  # by how many texts mention them
    assert set(names) == {"Marla", "Harrow", "Penrose", "Fenwick"}
    assert not {"The", "When", "But", "Then", "Captain", "Dr"} & set(names)
    assert cv.find_names(texts, top=1) == ["Marla"]
    # a capitalised word the texts mostly write in lowercase is a common word, not a name
    assert "Storm" not in cv.find_names(["They feared the Storm.", "the storm came", "a storm, a storm"])


def test_characters_named_uses_a_given_list_or_the_names_in_the_text():
    named = cv.characters_named
    assert named("Why does Captain Harrow leave Fenwick?") == ["Harrow", "Fenwick"]
    assert named("Why does Harrow\nleave?", ["Harrow", "Marla"]) == ["Harrow"]
    assert named("Ada writes to Lovelace.", {"Ada": ["Ada", "Lovelace"], "Babbage": ["Babbage"]}) == ["Ada"]
    assert named("Describe the storm.") == []


def _passages() -> list[Passage]:
    texts = {
        1: ["A ball is held at the assembly rooms and Marla dances with an officer.",
            "Mrs. Penrose talks of nothing but the ball and the rich new neighbour."],
        2: ["A long letter arrives from the clergyman, who writes of his patroness."],
        4: ["In the garden Harrow walks while Marla reads the letter again by the fire."],
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
            _ins("c", "Why does Marla dance with the officer at the ball?", 2),
            _ins("d", "Zebra quantum xylophone?", 2)]
    table = cv.coverage_table(data, index)
    assert list(table["chapter"][:3]) == [1, 2, 1]
    assert table["passage_id"][1] == "ch02-p001" and table["chapter"].isna().tolist() == [False, False, False, True]
    assert table["characters"][2] == ["Marla"] and table["characters"][0] == []
    counts = cv.chapter_counts(table["chapter"], n_chapters=5)
    assert list(counts.index) == [1, 2, 3, 4, 5] and list(counts) == [2, 1, 0, 0, 0]
    assert cv.uncovered_chapters(counts) == [3, 4, 5]
    assert cv.character_counts(data).to_dict() == {"Marla": 1}  # the names the instructions mention
    names = cv.character_counts(data, ["Marla", "Harrow"])
    assert names.to_dict() == {"Marla": 1, "Harrow": 0}  # every name asked for, zeros included


def test_character_mentions_per_chapter():
    table = cv.character_mentions(_passages())
    assert list(table.index) == [1, 2, 4]
    assert list(table.columns) == ["Marla", "Harrow", "Penrose"]  # most passages first
    assert table.loc[1, "Marla"] == 1 and table.loc[1, "Penrose"] == 1
    assert table.loc[4, "Harrow"] == 1 and table.loc[4, "Marla"] == 1
    assert table.loc[2].sum() == 0
    assert list(cv.character_mentions(_passages(), top=1).columns) == ["Marla"]
    assert list(cv.character_mentions(_passages(), names=["Harrow"]).columns) == ["Harrow"]


def test_character_mentions_draws_a_chart_of_the_names_found(tmp_path):
    # the Stage 1 call: no list of people, the passages say who matters
    passages = [Passage("ch01-p001", "b.txt", "Lizzy laughed, and Darcy did not; Elizabeth saw it.", 0, 50, 1),
                Passage("ch02-p001", "b.txt", "A letter from Jane reached Elizabeth.", 50, 87, 2)]
    fig = plots.character_mentions(cv.character_mentions(passages))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["Elizabeth", "Darcy", "Jane"]  # "Lizzy" only opens a sentence: no evidence it is a name
    plt.close(fig)
