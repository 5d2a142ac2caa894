"""Exports: which curated pairs go in, the three formats as their tools read them, provenance, the dataset card."""

import json
from datetime import date

import pandas as pd
import pytest

from lecture_utils.curate.decisions import DecisionError, curated_pairs
from lecture_utils.records import Decision, QAPair, Retrieved
from lecture_utils.scale.export import curation_counts, export_dataset, write_dataset_card
from lecture_utils.scale.formats import (
    ExportError,
    read_export,
    validate_alpaca,
    validate_file,
    validate_openai_chat,
    validate_sharegpt,
)


def pair(i, answer=None, cited=("ch1-p001",), teacher="gpt-4o-mini"):
    return QAPair(id=f"qa-i{i}", instruction_id=f"i{i}", instruction=f"Why does the keeper trim lamp {i}?",
                  category="plot" if i % 2 else "character analysis", answer=answer or f"Because of storm {i}.",
                  retrieved=[Retrieved("ch1-p001", 3.2), Retrieved("ch2-p004", 1.1)], cited=list(cited),
                  teacher=teacher, prompt_version="2026-11-29.1", finish_reason="stop")


def decide(p, status, edited="", original=None):
    return Decision(pair_id=p.id, status=status, reason="r" if status == "discard" else "",
                    original_answer=p.answer if original is None else original,
                    edited_answer=edited or (p.answer if status == "accept" else ""))


def test_curated_pairs_keeps_accepted_and_fixed_with_the_edit():
    pairs = [pair(i) for i in range(6)]
    decisions = [
        decide(pairs[0], "accept"),
        decide(pairs[1], "fix", edited="  A better answer.  "),
        decide(pairs[2], "discard"),
        decide(pairs[3], "discard"), decide(pairs[3], "accept"),  # the latest decision wins
        decide(pairs[4], "accept"), decide(pairs[4], "accept", original="an older answer"),  # stale: voids it
    ]
    kept = curated_pairs(pairs, decisions)
    assert [p.id for p in kept] == ["qa-i0", "qa-i1", "qa-i3"]
    assert kept[1].answer == "A better answer." and pairs[1].answer == "Because of storm 1."  # copies
    counts = curation_counts(pairs, decisions)
    assert counts == {"pairs": 6, "accept": 2, "fix": 1, "discard": 1, "unreviewed": 2, "stale decisions": 1}
    as_dicts = [json.loads(json.dumps(d.__dict__)) for d in decisions]
    assert [p.id for p in curated_pairs(pairs, as_dicts)] == ["qa-i0", "qa-i1", "qa-i3"]


def test_a_fix_without_an_edit_is_a_clear_error():
    p = pair(1)
    with pytest.raises(DecisionError, match="qa-i1.*edited answer is empty"):
        curated_pairs([p], [Decision(p.id, "fix", original_answer=p.answer, edited_answer=" ")])


def test_export_writes_three_valid_formats_with_side_provenance(tmp_path):
    pairs = [pair(i) for i in range(12)]
    result = export_dataset(pairs, tmp_path / "export", source="an invented village chronicle")
    assert set(result.files) == {"alpaca", "sharegpt", "openai"} and result.count == 12
    for fmt, path in result.files.items():
        assert validate_file(path, fmt) == []

    alpaca = json.loads(result.files["alpaca"].read_text())
    assert alpaca[0] == {"instruction": "Why does the keeper trim lamp 0?", "input": "", "output": "Because of storm 0."}
    sharegpt = json.loads(result.files["sharegpt"].read_text())
    assert sharegpt[3]["conversations"] == [{"from": "human", "value": pairs[3].instruction},
                                            {"from": "gpt", "value": pairs[3].answer}]
    chat = [json.loads(line) for line in result.files["openai"].read_text().splitlines()]
    assert len(chat) == 12 and set(chat[0]) == {"messages"}
    assert [m["role"] for m in chat[0]["messages"]] == ["system", "user", "assistant"]
    assert chat[5]["messages"][2]["content"] == pairs[5].answer

    side = [json.loads(line) for line in result.provenance.read_text().splitlines()]
    assert len(side) == 12 and side[2]["line"] == 2 and side[2]["pair_id"] == "qa-i2"
    assert side[2]["cited"] == ["ch1-p001"] and side[2]["retrieved"] == ["ch1-p001", "ch2-p004"]
    assert side[2]["teacher"] == "gpt-4o-mini" and side[2]["prompt_version"] == "2026-11-29.1"
    assert result.card.exists() and result.warnings == []
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "README.md", "alpaca.json", "openai_chat.jsonl", "provenance.jsonl", "sharegpt.json"]


def test_provenance_in_a_field_or_not_at_all(tmp_path):
    pairs = [pair(i) for i in range(3)]
    inline = export_dataset(pairs, tmp_path / "a", provenance_mode="field")
    alpaca = read_export(inline.files["alpaca"], "alpaca")
    assert alpaca[0]["provenance"]["pair_id"] == "qa-i0" and validate_alpaca(alpaca) == []
    assert read_export(inline.files["sharegpt"], "sharegpt")[1]["provenance"]["instruction_id"] == "i1"
    assert inline.provenance.name == "provenance.jsonl"  # for the OpenAI file: its lines may hold only messages
    assert validate_file(inline.files["openai"], "openai") == []
    assert "OpenAI fine-tuning needs at least 10 examples" in inline.warnings[0]
    bare = export_dataset(pairs, tmp_path / "b", provenance_mode="none", formats=["alpaca"])
    assert bare.provenance is None and "provenance" not in read_export(bare.files["alpaca"], "alpaca")[0]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["README.md", "alpaca.json"]


def test_export_refuses_bad_requests(tmp_path):
    with pytest.raises(ExportError, match="no pairs"):
        export_dataset([], tmp_path)
    with pytest.raises(ExportError, match="unknown format"):
        export_dataset([pair(1)], tmp_path, formats=["csv"])
    with pytest.raises(ExportError, match="appears twice"):
        export_dataset([pair(1), pair(1)], tmp_path)
    with pytest.raises(ExportError, match="empty answer"):
        export_dataset([pair(1, answer=" ")], tmp_path)


def test_validators_catch_what_the_tools_reject():
    assert validate_alpaca({"instruction": "x"})  # not a list
    assert any("'output' must be a string" in p for p in validate_alpaca([{"instruction": "a", "input": ""}]))
    assert any("'instruction' is empty" in p for p in validate_alpaca([{"instruction": " ", "input": "", "output": "b"}]))

    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    assert validate_sharegpt([good]) == []
    with_system = {"conversations": [{"from": "system", "value": "s"}] + good["conversations"]}
    assert validate_sharegpt([with_system]) == []
    swapped = {"conversations": list(reversed(good["conversations"]))}
    assert any("expected 'human'" in p for p in validate_sharegpt([swapped]))
    assert any("last turn" in p for p in validate_sharegpt([{"conversations": good["conversations"][:1]}]))
    assert any("empty value" in p for p in validate_sharegpt([{"conversations": [
        {"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}]))

    ok = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert validate_openai_chat([ok]) == []
    assert any("unexpected keys" in p for p in validate_openai_chat([{**ok, "provenance": {}}]))
    assert any("role 'bot'" in p for p in validate_openai_chat([{"messages": [{"role": "bot", "content": "a"}]}]))
    assert any("no assistant" in p for p in validate_openai_chat([{"messages": [{"role": "user", "content": "q"}]}]))
    assert any("non-empty string" in p for p in validate_openai_chat([{"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": None}]}]))
    assert any("over the" in p for p in validate_openai_chat([ok], max_tokens=0))


def test_a_broken_file_on_disk_is_reported(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text('[{"instruction": "a", ')
    with pytest.raises(ExportError, match="not valid JSON"):
        validate_file(path, "alpaca")
    lines = tmp_path / "chat.jsonl"
    lines.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    assert any("no assistant" in p for p in validate_file(lines, "openai"))


def test_dataset_card_says_what_where_who_when_and_licence(tmp_path):
    pairs = [pair(i) for i in range(4)] + [pair(9, teacher="qwen2.5-coder-1.5b-instruct")]
    funnel = pd.DataFrame({"step": ["generated", "dedup", "filters"], "removed": [0, 3, 2], "remaining": [10, 7, 5]})
    card = write_dataset_card(tmp_path / "README.md", pairs, source="an invented village chronicle",
                              counts={"generated": 10, "accepted": 4, "fixed": 1, "discarded": 5}, filters=funnel,
                              licence="CC-BY-4.0", source_licence="The chronicle is in the public domain.",
                              today=date(2026, 11, 29)).read_text()
    for expected in ("5 instruction-answer pairs", "an invented village chronicle", "gpt-4o-mini",
                     "qwen2.5-coder-1.5b-instruct", "2026-11-29.1", "2026-11-29", "CC-BY-4.0", "public domain",
                     "| dedup | 3 | 7 |", "| discarded | 5 |", "| plot |", "Provenance", "Limitations"):
        assert expected in card, expected


def test_the_system_prompt_title_and_licence_line_come_from_the_source(tmp_path):
    pairs = [pair(i) for i in range(3)]
    result = export_dataset(pairs, tmp_path / "a", ["openai"], source="The Lighthouse Chronicle (invented #7)")
    chat = [json.loads(line) for line in result.files["openai"].read_text().splitlines()]
    assert chat[0]["messages"][0]["content"] == ("You are an expert on The Lighthouse Chronicle. "
                                                 "Answer accurately and concisely.")
    card = result.card.read_text()
    assert card.startswith("# Instructions about The Lighthouse Chronicle\n")
    assert "Check the source's licence before you share this dataset." in card
    # nothing given: neutral words, never a particular book
    plain = export_dataset(pairs, tmp_path / "b", ["openai"]).card.read_text()
    assert plain.startswith("# Instructions about the source\n") and "expert on the source." in plain
    own = export_dataset(pairs, tmp_path / "c", ["openai"], system="Answer as {title} would {{braces}}.", title="Mine",
                         source="Harbour notes", source_licence="CC0 source.").card.read_text()
    assert own.startswith("# Mine\n") and "Answer as Harbour notes would {{braces}}." in own and "CC0 source." in own
    bare = export_dataset(pairs, tmp_path / "d", ["openai"], system=None).files["openai"].read_text().splitlines()
    assert [m["role"] for m in json.loads(bare[0])["messages"]] == ["user", "assistant"]  # None: no system prompt


def test_the_cards_curation_table_adds_up_to_the_exported_pairs_when_refusals_are_left_out(tmp_path):
    pairs = [pair(i) for i in range(5)]
    refusals = [pair(i, answer="The passages do not contain the answer.", cited=()) for i in range(5, 8)]
    for p in refusals:
        p.not_in_text = True
    result = export_dataset(pairs + refusals, tmp_path, counts={"reviewed by a person (Stage 4)": 2,
                                                                "factory pairs that passed every check": 6})
    card = result.card.read_text(encoding="utf-8")
    assert result.count == 5
    assert '| left out: "the passages do not say" answers | -3 |' in card
    assert "| exported | 5 |" in card
    assert "**5 instruction-answer pairs**" in card
    assert "answers cite 1 distinct passages of the source (2 were retrieved for them)" in card  # cited, not retrieved
