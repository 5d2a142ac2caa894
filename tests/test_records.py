"""The JSONL files every stage writes: whole lines, even after a writer was killed mid-line."""

import dataclasses
import json

import pytest

from lecture_utils.records import Decision, QAPair, Retrieved, append_jsonl, from_dict, read_jsonl, to_dict


def test_appending_after_a_torn_line_keeps_the_file_readable(tmp_path):
    path = tmp_path / "decisions.jsonl"
    append_jsonl(path, Decision(pair_id="p1", status="accept"))
    with path.open("a", encoding="utf-8") as f:
        f.write('{"pair_id": "p2", "stat')  # a writer killed mid-line
    append_jsonl(path, Decision(pair_id="p3", status="discard", reason="off topic"))
    assert [d.pair_id for d in read_jsonl(path, Decision)] == ["p1", "p3"]
    assert path.read_text(encoding="utf-8").endswith("\n")


def test_a_torn_last_line_is_skipped_when_reading(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"a": 1}\n{"a": 2', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}]


def test_a_jsonl_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    from lecture_utils.records import read_jsonl
    from lecture_utils.scale.found import FoundError, load_found

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"instruction": "caf\xe9"}\n')  # Latin-1, as an old editor saves it
    with pytest.raises(ValueError, match="not UTF-8 text .*save it as UTF-8 JSON Lines"):
        read_jsonl(path)
    with pytest.raises(FoundError, match="not UTF-8"):
        load_found(str(path))


def test_to_dict_is_plain_json_and_leaves_the_record_alone():
    pair = QAPair(id="qa-1", instruction_id="1", instruction="Who keeps the lighthouse?", category="plot",
                  answer="Marla does.", retrieved=[Retrieved("ch1-p001", 2.5)], cited=["ch1-p001"],
                  checks={"support": 0.9, "found": ["Marla"]}, evidence=["Marla keeps the light."])
    record = to_dict(pair)
    assert record == dataclasses.asdict(pair) and list(record) == [f.name for f in dataclasses.fields(QAPair)]
    assert record["retrieved"] == [{"id": "ch1-p001", "score": 2.5}]
    record["checks"]["found"].append("Tobin")
    record["cited"].clear()
    assert pair.checks["found"] == ["Marla"] and pair.cited == ["ch1-p001"]  # the factory writes it, nothing shared
    assert from_dict(QAPair, json.loads(json.dumps(to_dict(pair)))) == pair  # and it reads back as it was
