"""Path A (lecture_utils.scale.found): load an open instruction dataset, keep the rows about a source, compare with Path B.

The source is a three-chapter story written for these tests; the open dataset is a small Dolly-style file that mixes
questions about it with general ones. Nothing here touches the network.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest
from matplotlib.figure import Figure

from lecture_utils.records import Passage, QAPair
from lecture_utils.scale import found
from lecture_utils.scale.found import PATH_A, PATH_B, FoundError, about_source, chart, compare, load_found

STORY = {
    1: ["Every morning Orla Vane rowed the ferry across the Sallow River to Wrenmoor. Her passengers were mostly "
        "farmers carrying eggs, and each paid Orla one copper coin for the crossing.",
        "On the far bank the miller Bram Hask waited with sacks of flour. Bram and Orla had quarrelled for years "
        "over the price of a crossing."],
    2: ["In spring the Sallow River flooded, and the ferry rope snapped near Wrenmoor. Orla tied the boat to an old "
        "willow and waited for the water to fall.",
        "Bram Hask lent her a new rope from the mill, asking nothing in return, and the quarrel between them "
        "softened."],
    3: ["By midsummer Orla taught the daughter of Bram, Tamsin, to row. Tamsin crossed the river alone for the first "
        "time on the day of the Wrenmoor fair.",
        "Tamsin sold the flour of the mill at the fair and brought home a brass bell for the ferry, which Orla hung "
        "at the bow."],
}
PASSAGES = [Passage(f"ch{ch:02d}-p{k:03d}", "ferry.txt", text, 0, len(text), ch)
            for ch, texts in STORY.items() for k, text in enumerate(texts, 1)]
TITLE = "The Sallow Ferry"


def dolly(instruction, response, category, context=""):
    return {"instruction": instruction, "context": context, "response": response, "category": category}


ON_TOPIC = [
    dolly("Who rows the ferry across the Sallow River?", "Orla Vane rows the ferry every morning.", "open_qa"),
    dolly("What did Bram Hask lend Orla?", "He lent her a new rope from his mill and asked for nothing.", "open_qa"),
    dolly("Summarize Sallow Ferry in one sentence.",
          "A ferrywoman rows farmers across a river each morning and quarrels with the miller about the fare.",
          "summarization"),
    dolly("Why did Orla tie the boat to a willow?",
          "In spring the Sallow River flooded, and the ferry rope snapped near Wrenmoor. Orla tied the boat to an "
          "old willow and waited for the water to fall.", "closed_qa"),
    # one name only: kept because the rest of the question fits the story too
    dolly("What did the passengers pay Orla for each crossing?", "One copper coin.", "closed_qa"),
    dolly("Write a short poem in the style of The Sallow Ferry.",
          "Silver gulls above the grey sea sing of storms and distant lands.", "creative_writing"),
]
GENERAL = [
    dolly("What is the capital of France?", "Paris is the capital of France.", "open_qa"),
    dolly("Who wrote the novel Moby-Dick?", "Herman Melville wrote it.", "open_qa"),
    dolly("Who is Tamsin Greenlaw, the Cornish folk singer?", "A singer of traditional Cornish songs.", "open_qa"),
    dolly("Give three tips for keeping houseplants alive.", "Water them, give them light, and repot them.",
          "brainstorming"),
    dolly("How do I bake rye bread?", "Mix rye flour, water, salt and a starter, let it rise, then bake it.",
          "general_qa"),
    dolly("Classify each as a fruit or a vegetable: apple, carrot, pear.", "Fruit: apple, pear. Vegetable: carrot.",
          "classification"),
]
PAIRS = [
    QAPair("q1", "i1", "Who waited on the far bank with flour?", "who", "The miller Bram Hask waited there with his "
           "sacks of flour.", cited=["ch01-p002"]),
    QAPair("q2", "i2", "What happened to the ferry rope in spring?", "event",
           "The river flooded and the rope snapped near Wrenmoor.", cited=["ch02-p001"]),
    QAPair("q3", "i3", "How did the quarrel between Bram and Orla change?", "relationship",
           "It softened after Bram lent her a new rope without asking anything in return.", cited=["ch02-p002"]),
    QAPair("q4", "i4", "What did Tamsin bring home from the fair?", "detail",
           "She brought home a brass bell, and Orla hung it at the bow of the ferry.", cited=["ch03-p002"]),
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def dolly_file(tmp_path):
    return write_jsonl(tmp_path / "dolly.jsonl", GENERAL[:3] + ON_TOPIC + GENERAL[3:])


def test_load_found_reads_dolly_without_datasets(dolly_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # importing it would fail: a local file must not need it
    rows = load_found(str(dolly_file))
    assert len(rows) == 12 and rows[0] == GENERAL[0]
    assert load_found(str(dolly_file), limit=4) == rows[:4]


def test_load_found_normalises_alpaca_and_chat_messages(tmp_path):
    alpaca = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "Translate to French.", "input": "Good morning",
                                                      "output": "Bonjour"}])
    assert load_found(str(alpaca)) == [dolly("Translate to French.", "Bonjour", "", context="Good morning")]
    chat = tmp_path / "chat.json"  # a JSON list this time
    chat.write_text(json.dumps([{"messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Name a prime."},
                                              {"role": "assistant", "content": "Seven."},
                                              {"role": "user", "content": "Another?"}]}]), encoding="utf-8")
    assert load_found(str(chat)) == [dolly("Name a prime.", "Seven.", "")]


def test_missing_file_and_unknown_layout_say_what_to_do(tmp_path):
    with pytest.raises(FoundError, match=r"does not exist: check the path"):
        load_found(str(tmp_path / "absent.jsonl"))
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"question": "Why?", "answer": "Because."}])
    with pytest.raises(FoundError, match=r"\['answer', 'question'\].*rename them to instruction/context/response"):
        load_found(str(odd))
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(FoundError, match="not a list of rows"):
        load_found(str(bad))


def test_a_hub_name_offline_fails_at_once_with_the_way_round(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(FoundError) as e:
        load_found("databricks/databricks-dolly-15k")
    assert time.monotonic() - start < 2
    message = str(e.value)
    assert "\n" not in message and "HF_HUB_OFFLINE" in message
    assert "datasets.load_dataset('databricks/databricks-dolly-15k', split='train').to_json(" in message
    assert message.endswith("pass databricks-dolly-15k.jsonl")


def test_an_unreachable_hub_fails_fast_without_calling_datasets(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(address, timeout):
        assert timeout <= found.HUB_TIMEOUT
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(FoundError, match=r"\(huggingface.co unreachable: Network is unreachable\): on a machine"):
        load_found("someone/some-dataset", split="test")


def test_about_source_keeps_the_rows_about_the_story_and_drops_the_rest(dolly_file):
    kept = about_source(load_found(str(dolly_file)), PASSAGES, TITLE)
    assert sorted(r["instruction"] for r in kept) == sorted(r["instruction"] for r in ON_TOPIC)
    assert [r["score"] for r in kept] == sorted((r["score"] for r in kept), reverse=True)
    why = {r["instruction"]: r["why"] for r in kept}
    assert why[ON_TOPIC[2]["instruction"]] == "title"  # "Sallow Ferry" without its "The"
    assert why[ON_TOPIC[1]["instruction"]] == "names"
    assert why[ON_TOPIC[4]["instruction"]] == "name and passage"
    willow = next(r for r in kept if r["instruction"] == ON_TOPIC[3]["instruction"])
    assert willow["passage_id"] == "ch02-p001" and willow["unit"] == 2 and willow["names"][0] == "Orla"
    assert len(about_source(load_found(str(dolly_file)), PASSAGES, TITLE, top=2)) == 2


def test_about_source_takes_your_own_names():
    rows = [dolly("Where does the miller keep his sacks?", "On the far bank.", "closed_qa")]
    assert about_source(rows, PASSAGES, TITLE) == []
    assert [r["why"] for r in about_source(rows, PASSAGES, TITLE, names=["miller", "bank"])] == ["names"]


def test_compare_puts_the_two_paths_side_by_side(dolly_file):
    kept = about_source(load_found(str(dolly_file)), PASSAGES, TITLE)
    table = compare(kept, PAIRS, PASSAGES)
    assert list(table.columns) == [PATH_A, PATH_B] and list(table.index) == found.ROWS
    a, b = table[PATH_A], table[PATH_B]
    assert (a["rows or pairs"], b["rows or pairs"]) == (6, 4)
    assert (a["Diversity: task categories"], b["Diversity: task categories"]) == (4, 4)
    assert b["Diversity: share of the largest category"] == 0.25
    assert a['Diversity: share of "who" lookups'] == round(1 / 6, 3) and b['Diversity: share of "who" lookups'] == 0.25
    assert a["Grounding: chapters or documents touched"] < b["Grounding: chapters or documents touched"] == 3
    assert b["Grounding: share of the chapters or documents touched"] == 1.0
    supported = "Grounding: share of answers the source supports"
    assert 0 < a[supported] < b[supported] == 1.0  # the poem is about the sea, not the story
    copied = "Quality: share of answers copying 12+ words of the source"
    assert a[copied] == round(1 / 6, 3) and b[copied] == 0.0  # the willow answer is the passage word for word
    assert b["Quality: median answer words"] == 12.5


def test_compare_with_unlabelled_rows_and_raw_rows():
    rows = [{**r, "category": ""} for r in ON_TOPIC]
    table = compare(about_source(rows, PASSAGES, TITLE), PAIRS, PASSAGES)
    assert table.loc["Diversity: task categories", PATH_A] == 0
    assert table["Path A: found"].isna().sum() == 1  # the largest category's share is unknown, not 100%
    with pytest.raises(FoundError, match="pass the rows about_source returned"):
        compare(rows, PAIRS, PASSAGES)


def test_chart_draws_the_shares_of_both_paths(dolly_file):
    kept = about_source(load_found(str(dolly_file)), PASSAGES, TITLE)
    fig = chart(compare(kept, PAIRS, PASSAGES))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "Which dataset teaches your source?"
    assert len(ax.patches) == 2 * sum("share" in label for label in found.ROWS)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [PATH_A, PATH_B]
