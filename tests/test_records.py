"""The JSONL files every stage writes: whole lines, even after a writer was killed mid-line."""

import pytest

from lecture_utils.records import Decision, append_jsonl, read_jsonl


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
