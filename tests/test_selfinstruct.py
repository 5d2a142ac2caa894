"""Stage 2, Self-Instruct: seeds in three formats, teacher runs against the fake server, merging and novelty."""

from __future__ import annotations

import json
import re

import pytest
from fake_openai import reply, reply_json

from lecture_utils.ask import selfinstruct as si
from lecture_utils.prompts import CATEGORIES
from lecture_utils.records import Instruction
from lecture_utils.teacher.client import Teacher, TeacherConfig


def teacher_for(fake) -> Teacher:
    config = TeacherConfig(mode="endpoint", base_url=fake.base_url, model="fake-model", api_key="test",
                           server_kind="openai", cache="off", max_attempts=1, structured_attempts=1)
    return Teacher(config)


def items(*pairs: tuple[str, str]) -> dict:
    return {"instructions": [{"category": c, "instruction": i} for c, i in pairs]}


# --- seeds -------------------------------------------------------------------------------------------------------------


def test_load_seeds_alpaca_format(tmp_path):
    path = tmp_path / "seed_tasks.jsonl"
    rows = [
        {"id": "seed_task_0", "name": "a", "instruction": "Explain why Mr Collins visits Longbourn.",
         "instances": [{"input": "", "output": "To find a wife among the daughters."}], "is_classification": False},
        {"id": "seed_task_1", "name": "b", "instruction": "Summarise this letter.", "category": "style and narration",
         "instances": [{"input": "A short letter of our own.", "output": "It is short."}], "is_classification": False},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seeds = si.load_seeds(path)
    assert [s.instruction for s in seeds] == [r["instruction"] for r in rows]
    assert [s.category for s in seeds] == ["seed", "style and narration"]
    assert seeds[1].input == "A short letter of our own."
    assert all(s.origin == "seed" and s.run == -1 for s in seeds)
    assert len({s.id for s in seeds}) == 2


def test_load_seeds_simple_jsonl_and_plain_text(tmp_path):
    simple = tmp_path / "simple.jsonl"
    simple.write_text('{"instruction": "Describe the Netherfield ball.", "category": "plot and events"}\n\n'
                      '{"instruction": "Compare Jane and Elizabeth."}\n', encoding="utf-8")
    seeds = si.load_seeds(simple)
    assert [(s.instruction, s.category) for s in seeds] == [
        ("Describe the Netherfield ball.", "plot and events"), ("Compare Jane and Elizabeth.", "seed")]

    plain = tmp_path / "seeds.txt"
    plain.write_text("# my own seeds\n- Describe the Netherfield ball.\n2. Compare Jane and Elizabeth.\n\n"
                     "Why does Lydia go to Brighton?\n", encoding="utf-8")
    seeds = si.load_seeds(plain)
    assert [s.instruction for s in seeds] == ["Describe the Netherfield ball.", "Compare Jane and Elizabeth.",
                                              "Why does Lydia go to Brighton?"]
    assert {s.category for s in seeds} == {"seed"}


def test_load_seeds_errors_are_one_line_and_name_the_problem(tmp_path):
    with pytest.raises(si.TaxonomyError, match="not found") as e:
        si.load_seeds(tmp_path / "nope.jsonl")
    assert "\n" not in str(e.value)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "One good line here."}\n{"instruction": "Two good lines."}\n{"instruction": oops\n',
                   encoding="utf-8")
    with pytest.raises(si.TaxonomyError, match=r"bad\.jsonl:3: not valid JSON"):
        si.load_seeds(bad)

    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"instruction": "Fine."}\n{"prompt": "wrong key"}\n', encoding="utf-8")
    with pytest.raises(si.TaxonomyError, match=r"missing\.jsonl:2: no \"instruction\""):
        si.load_seeds(missing)

    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(si.TaxonomyError, match="no instructions"):
        si.load_seeds(empty)


def test_shipped_seeds_are_complete_and_in_alpaca_format():
    seeds = si.load_seeds()
    assert len(seeds) >= 12
    assert {s.category for s in seeds} <= set(CATEGORIES)
    assert len({s.category for s in seeds}) >= 5
    raw = [json.loads(line) for line in si.SEEDS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert [r["id"] for r in raw] == [f"seed_task_{i}" for i in range(len(raw))]
    for r in raw:
        assert r["is_classification"] is False and r["name"]
        output = r["instances"][0]["output"].strip()
        assert output and len(re.findall(r"[.!?](?:\s|$)", output)) <= 3, r["name"]
    # near-copies among the seeds would be dropped by our own dedup
    kept, dropped = si.merge_and_dedup(seeds)
    assert dropped.empty and len(kept) == len(seeds)


# --- teacher runs ------------------------------------------------------------------------------------------------------


def test_generate_run_asks_for_n_items_and_labels_them(fake_openai):
    fake_openai.enqueue(reply_json(items(
        ("character analysis", "Why does Elizabeth laugh at Mr Collins's letter?"),
        ("themes and ideas", "  How does pride  blind Darcy at first?  "),
        ("plot and events", "What happens at the Netherfield ball?"))))
    got = si.generate_run(teacher_for(fake_openai), n=3, run=2, temperature=0.9, seed=7,
                          examples=["Describe the Meryton assembly."], title="Pride and Prejudice")
    assert [i.id for i in got] == ["i02-001", "i02-002", "i02-003"]
    assert got[1].instruction == "How does pride blind Darcy at first?"
    assert got[1].category == "themes and ideas"
    assert all(i.run == 2 and i.origin == "teacher" for i in got)

    body = fake_openai.chat_requests[-1].body
    assert body["temperature"] == 0.9 and body["seed"] == 7
    # the source's name reaches both prompts; no default prompt names one book
    assert body["messages"][0]["role"] == "system" and "expert on Pride and Prejudice" in body["messages"][0]["content"]
    assert "expert on Pride and Prejudice" in body["messages"][-1]["content"]
    prompt = body["messages"][-1]["content"]
    assert "write 3 new" in prompt and "- Describe the Meryton assembly." in prompt
    assert all(f"- {c}" in prompt for c in CATEGORIES)
    schema = body["response_format"]["json_schema"]["schema"]["properties"]["instructions"]
    assert schema["minItems"] == schema["maxItems"] == 3
    assert schema["items"]["properties"]["category"]["enum"] == CATEGORIES


def test_default_examples_come_from_the_shipped_seeds_and_vary_with_the_seed():
    seeds = {s.instruction for s in si.load_seeds()}
    a, b = si.pick_examples(3, seed=1), si.pick_examples(3, seed=2)
    assert set(a) <= seeds and set(b) <= seeds and len(a) == 3
    assert a == si.pick_examples(3, seed=1) and a != b
    mine = ["Describe the ball at Netherfield.", "Why does Jane go to London?", "Who is Mr Gardiner?"]
    assert sorted(si.pick_examples(3, seed=5, source=mine)) == sorted(mine)


def test_examples_are_drawn_from_the_seeds_given(fake_openai):
    fake_openai.enqueue(reply_json(items(("plot and events", "What happens at the Netherfield ball?"))))
    mine = [Instruction("s1", "Explain why Mr Gardiner lives in Gracechurch Street.", "seed", -1, "seed")]
    si.generate_run(teacher_for(fake_openai), n=1, run=1, seed=3, seeds=mine)
    prompt = fake_openai.chat_requests[-1].body["messages"][-1]["content"]
    assert "- Explain why Mr Gardiner lives in Gracechurch Street." in prompt


def test_a_malformed_run_is_reported_and_the_others_are_kept(fake_openai):
    fake_openai.enqueue(
        reply_json(items(("plot and events", "Describe the first meeting at Meryton."),
                         ("relationships", "How do Jane and Elizabeth support each other?"))),
        reply("Sure! Here are some great questions: 1. What is love?"),
        reply_json(items(("themes and ideas", "What does the novel say about reputation?"),
                         ("style and narration", "How does the narrator treat Mr Collins?"))),
    )
    with pytest.warns(UserWarning, match="run 2"):
        result = si.generate_taxonomy(teacher_for(fake_openai), runs=[(0.7, 1), (0.9, 2), (1.0, 3)], n=2)
    assert [i.run for i in result.instructions] == [1, 1, 3, 3]
    assert len({i.id for i in result.instructions}) == 4
    assert [(r.run, r.count, bool(r.error)) for r in result.runs] == [(1, 2, False), (2, 0, True), (3, 2, False)]
    assert result.cut_off == []
    assert "\n" not in result.failures[0].error and "JSON" in result.failures[0].error
    table = result.table()
    assert list(table.columns) == ["id", "run", "origin", "category", "instruction"] and len(table) == 4
    assert "fake-model" in result.teacher


def test_cut_off_instructions_are_set_aside_and_counted(fake_openai):
    # what a small model really produced: a raw quote inside the JSON string ended it after "of"
    fake_openai.enqueue(reply_json(items(("plot and events", "Describe the plot of"),
                                         ("themes and ideas", "Explain the themes of"),
                                         ("relationships", "How does Jane's friendship with Charlotte change?"))))
    result = si.generate_taxonomy(teacher_for(fake_openai), runs=[(0.7, 1)], n=3)
    assert [i.instruction for i in result.instructions] == ["How does Jane's friendship with Charlotte change?"]
    assert [i.instruction for i in result.cut_off] == ["Describe the plot of", "Explain the themes of"]
    assert (result.runs[0].count, result.runs[0].cut_off) == (1, 2)
    assert "2 cut off" in repr(result)


@pytest.mark.parametrize("text, cut", [
    ("Describe the plot of", True), ("Discuss the social and historical background of", True),
    ("Compare and contrast the plot of", True), ("Describe the Netherfield ball.", False),
    ("Why does Lydia elope?", False), ("List the daughters in order of age", False), ("", True),
])
def test_looks_cut_off(text, cut):
    assert si.looks_cut_off(text) is cut


def test_when_every_run_fails_the_error_says_why(fake_openai):
    fake_openai.enqueue(reply("no json"), reply("still no json"))
    with pytest.warns(UserWarning), pytest.raises(si.TaxonomyError, match="every taxonomy run failed"):
        si.generate_taxonomy(teacher_for(fake_openai), runs=[(0.7, 1), (0.7, 2)], n=2)


def test_a_reply_of_the_wrong_shape_is_a_clear_error():
    class ShapeTeacher:
        def structured(self, *args, **kwargs):
            return type("Reply", (), {"data": ["a list, not an object"]})()

    with pytest.raises(si.TaxonomyError, match="run 4: the reply has no \"instructions\" list"):
        si.generate_run(ShapeTeacher(), n=2, run=4, examples=[])


def test_a_prompt_with_an_unknown_placeholder_is_a_clear_error():
    with pytest.raises(si.TaxonomyError, match=r"unknown placeholder 'topic'"):
        si.build_seed_prompt(3, [], None, "Write {n} questions about {topic}.")


# --- merging and novelty ---------------------------------------------------------------------------------------------


def _ins(id_, text, run, origin="teacher", category="plot and events"):
    return Instruction(id=id_, instruction=text, category=category, run=run, origin=origin)


def test_merge_and_dedup_drops_teacher_copies_of_seeds_and_keeps_seeds():
    seed = _ins("seed-001", "Explain who will inherit Longbourn when Mr Bennet dies.", -1, "seed")
    copy = _ins("i01-001", "Explain who will inherit Longbourn after Mr Bennet dies.", 1)
    fresh = _ins("i01-002", "Describe how Mrs Bennet reacts to Lydia's marriage.", 1)
    again = _ins("i02-001", "Describe how Mrs Bennet reacts to Lydia's wedding.", 2)
    kept, dropped = si.merge_and_dedup([copy, fresh, again, seed])  # the seed comes last but must win
    assert [k.id for k in kept] == ["seed-001", "i01-002"]
    assert list(dropped["id"]) == ["i01-001", "i02-001"]
    assert list(dropped["closest_id"]) == ["seed-001", "i01-002"]
    assert (dropped["score"] > 0.7).all()


def test_novelty_by_run_counts_what_each_run_adds():
    data = [
        _ins("s1", "Describe the Netherfield ball in detail.", -1, "seed"),
        _ins("a1", "Why does Charlotte marry Mr Collins?", 1),
        _ins("a2", "How does Darcy insult Elizabeth at the first assembly?", 1),
        _ins("a3", "Describe the Netherfield ball in full detail.", 1),  # repeats the seed
        _ins("b1", "Why does Charlotte agree to marry Mr Collins?", 2),  # repeats run 1
        _ins("b2", "What does Lady Catherine demand of Elizabeth?", 2),
        _ins("b3", "What does Lady Catherine demand from Elizabeth?", 2),  # repeats run 2 itself
        _ins("c1", "Why does Charlotte marry Mr Collins?", 3),
    ]
    table = si.novelty_by_run(data)
    assert list(table["label"]) == ["seeds", "run 1", "run 2", "run 3"]
    assert list(table["generated"]) == [1, 3, 3, 1]
    assert list(table["new"]) == [1, 2, 1, 0]
    assert list(table["repeats_earlier"]) == [0, 1, 1, 1]
    assert list(table["repeats_same_run"]) == [0, 0, 1, 0]
    assert list(table["unique_so_far"]) == [1, 3, 4, 4]
