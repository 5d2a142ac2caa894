"""Stage 4: the review state (driven directly) and the panel (driven through its buttons). Tiny made-up story."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from lecture_utils.curate.curation import CurationError, CurationState
from lecture_utils.curate.panel import CurationPanel, highlight, reason_counts, shared_words, summary
from lecture_utils.records import CHECKLIST, Decision, Passage, QAPair, Retrieved, read_jsonl, write_jsonl

PASSAGES = [
    Passage("p1", "story.txt", "Mira keeps bees on the hill above the old mill. Each autumn she sells honey in Dunmore.", 0, 86, 1),
    Passage("p2", "story.txt", "Her brother Tomas mends clocks and cannot stand the noise of the market.", 87, 160, 1),
    Passage("p3", "story.txt", "The mill stopped turning after the flood moved the river away from the village.", 161, 241, 2),
]


def make_pairs() -> list[QAPair]:
    def qa(i: int, category: str, instruction: str, answer: str, ids: list[str]) -> QAPair:
        return QAPair(f"q{i}", f"i{i}", instruction, category, answer, [Retrieved(p, 2.0 - n / 2) for n, p in enumerate(ids)],
                      cited=ids[:1], grounding=0.5 + i / 10)

    return [
        qa(1, "character", "What does Mira keep?", "Mira keeps bees and sells their honey in Dunmore.", ["p1", "p2"]),
        qa(2, "character", "What is Tomas's trade?", "Tomas mends clocks.", ["p2"]),
        qa(3, "plot", "Why did the mill stop?", "The mill stopped because the miller retired.", ["p3"]),
        qa(4, "plot", "Where is the honey sold?", "It is sold in Dunmore each autumn, as the text says at length.", ["p1"]),
        qa(5, "character", "What does Tomas dislike?", "The noise of the market.", ["p2"]),
    ]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "run" / "decisions.jsonl"


@pytest.fixture
def state(path):
    return CurationState(make_pairs(), PASSAGES, path, reviewer="ana")


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_decide_writes_one_line_per_decision_with_original_edit_and_utc_time(state, path):
    assert state.current.id == "q1" and state.progress() == (0, 5)
    d = state.decide("accept", checklist={"accuracy": True, "clarity": True})
    assert isinstance(d, Decision) and d.reviewer == "ana"
    state.goto("q3")
    state.decide("fix", reason="wrong cause", edited_answer="The flood moved the river away, so the mill stopped.")
    rows = lines(path)
    assert [r["pair_id"] for r in rows] == ["q1", "q3"]
    assert rows[0]["checklist"] == {"accuracy": True, "helpfulness": False, "clarity": True, "conciseness": False,
                                    "completeness": False}
    assert rows[1]["original_answer"] == "The mill stopped because the miller retired."
    assert rows[1]["edited_answer"] == "The flood moved the river away, so the mill stopped."
    stamp = datetime.fromisoformat(rows[1]["timestamp"])
    assert stamp.utcoffset().total_seconds() == 0
    assert state.progress() == (2, 5)
    assert state.counts() == {"accept": 1, "fix": 1, "discard": 0, "unreviewed": 3}
    assert state.progress_text() == "2 / 5 reviewed (accept 1, fix 1, discard 0)"


def test_bad_decisions_give_clear_one_line_errors_and_write_nothing(state, path):
    attempts = [
        ("Fix needs an edited answer", dict(status="fix")),
        ("differs from the original", dict(status="fix", edited_answer="  " + state.current.answer + "\n")),
        ("Discard needs a reason", dict(status="discard", reason="   ")),
        ("Unknown status 'maybe'", dict(status="maybe")),
        ("press Fix", dict(status="accept", edited_answer="Mira keeps goats.")),
        ("Unknown checklist item", dict(status="accept", checklist=["acuracy"])),
        ("Unknown pair id", dict(status="accept", pair_id="q99")),
    ]
    for expected, kwargs in attempts:
        with pytest.raises(CurationError, match=expected) as caught:
            state.decide(**kwargs)
        assert "\n" not in str(caught.value)
    assert not path.exists() and state.progress() == (0, 5)


def test_latest_decision_wins_and_history_stays_in_the_file(state, path):
    state.decide("accept")
    state.decide("discard", reason="not supported by the passages")
    assert state.status_of("q1") == "discard"
    assert state.counts()["accept"] == 0 and state.counts()["discard"] == 1
    assert [r["status"] for r in lines(path)] == ["accept", "discard"]


def test_navigation_and_filters_stay_within_the_view(state):
    assert state.next() and state.current.id == "q2"
    assert state.prev() and state.current.id == "q1"
    assert not state.prev() and state.current.id == "q1"
    state.set_filter(category="plot")
    assert state.current.id == "q3" and [state.pairs[i].id for i in state.view()] == ["q3", "q4"]
    assert state.next() and state.current.id == "q4"
    assert not state.next() and state.current.id == "q4"
    assert state.goto(0).id == "q3" and state.view_index == 0
    with pytest.raises(CurationError, match="the view has 2 pairs"):
        state.goto(2)
    with pytest.raises(CurationError, match="not in the current view"):
        state.goto("q1")
    with pytest.raises(CurationError, match="Unknown category 'poetry'"):
        state.set_filter(category="poetry")
    with pytest.raises(CurationError, match="Unknown status filter"):
        state.set_filter(status="done")

    state.set_filter(status="all", category="all")
    state.goto("q2")
    state.decide("discard", reason="too short")
    state.goto("q4")
    state.decide("accept")
    state.set_filter(status="unreviewed")
    assert [state.pairs[i].id for i in state.view()] == ["q1", "q3", "q5"]
    state.goto("q3")
    assert state.next() and state.current.id == "q5"
    state.set_filter(status="discard")
    assert state.current.id == "q2" and len(state.view()) == 1
    state.set_filter(status="fix")
    assert state.current is None and not state.next()
    with pytest.raises(CurationError, match="view is empty"):
        state.decide("accept")


def test_first_unreviewed_respects_the_category_filter(state):
    for pid in ("q1", "q2"):
        state.goto(pid)
        state.decide("accept")
    state.goto("q1")
    assert state.first_unreviewed().id == "q3"
    state.set_filter(category="character")
    assert state.first_unreviewed().id == "q5"
    state.decide("accept")
    assert state.first_unreviewed() is None and state.current.id == "q5"


def test_restart_resumes_at_first_unreviewed_with_decisions_reloaded(state, path):
    state.decide("accept")
    state.next()
    state.decide("fix", edited_answer="Tomas repairs clocks for a living.")
    state.goto("q4")
    state.decide("discard", reason="too long or padded")

    again = CurationState(make_pairs(), {p.id: p for p in PASSAGES}, path)
    assert again.current.id == "q3"
    assert again.counts() == state.counts() and again.progress() == (3, 5)
    assert again.final_answer("q2") == "Tomas repairs clocks for a living."
    assert again.checklist_for("q1") == {item: False for item in CHECKLIST}

    again.decide("accept")
    again.goto("q5")
    again.decide("accept")
    done = CurationState(make_pairs(), PASSAGES, path)
    assert done.progress() == (5, 5) and done.current.id == "q1"
    assert len(lines(path)) == 5  # appended, never rewritten


def test_decision_on_an_answer_that_changed_since_is_not_trusted(state, path):
    state.decide("accept")
    pairs = make_pairs()
    pairs[0].answer = "Mira keeps goats."  # Stage 3 was re-run and produced a new answer
    again = CurationState(pairs, PASSAGES, path)
    assert again.status_of("q1") == "unreviewed" and again.stale == 1 and again.current.id == "q1"
    assert "1 old decision(s) ignored" in CurationPanel(again).note.value


def test_torn_last_line_is_skipped_on_resume(state, path):
    state.decide("accept")
    with path.open("a", encoding="utf-8") as f:
        f.write('{"pair_id": "q2", "stat')
    again = CurationState(make_pairs(), PASSAGES, path)
    assert again.progress() == (1, 5) and again.current.id == "q2"


def test_curated_records_and_summary(state):
    state.decide("accept")
    state.next()
    state.decide("fix", reason="too terse", edited_answer="He mends clocks.")
    state.next()
    state.decide("discard", reason="not supported by the passages")
    state.next()
    state.decide("discard", reason="not supported by the passages")
    curated = state.curated_records()
    assert [(p.id, p.answer) for p in curated] == [
        ("q1", "Mira keeps bees and sells their honey in Dunmore."),
        ("q2", "He mends clocks."),
    ]
    assert state.pair("q2").answer == "Tomas mends clocks."  # the input list is not modified

    table = summary(state)
    assert list(table.columns) == ["pair_id", "category", "status", "reason", "edited"]
    assert table.set_index("pair_id").loc["q2", "edited"] and not table.set_index("pair_id").loc["q1", "edited"]
    reasons = reason_counts(state)
    assert reasons.iloc[0].to_dict() == {"status": "discard", "reason": "not supported by the passages", "count": 2}
    assert set(reasons["reason"]) == {"not supported by the passages", "too terse", "(none given)"}


def test_apply_decisions_file_jsonl_is_idempotent(state, path, tmp_path):
    plan = tmp_path / "plan.jsonl"
    write_jsonl(plan, [
        {"pair_id": "q1", "status": "accept", "checklist": {"accuracy": True}},
        {"pair_id": "q3", "status": "fix", "reason": "wrong cause", "edited_answer": "A flood moved the river."},
        {"pair_id": "q4", "status": "discard", "reason": "padded"},
    ])
    result = state.apply_decisions_file(plan)
    assert (result.applied, result.skipped) == (3, 0)
    assert state.status_of("q3") == "fix" and state.final_answer("q3") == "A flood moved the river."
    assert state.latest["q1"].checklist["accuracy"] and state.latest["q1"].reviewer == "ana"

    again = CurationState(make_pairs(), PASSAGES, path)
    result = again.apply_decisions_file(plan)
    assert (result.applied, result.skipped) == (0, 3)
    assert len(lines(path)) == 3


def test_apply_decisions_file_csv_and_changed_rows(state, path, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text(
        "pair_id,status,reason,edited_answer,checklist\n"
        "q2,accept,,,accuracy;clarity\n"
        'q5,fix,terse,"Tomas dislikes the noise of the market.",\n'
        "q5,discard,changed my mind,,\n",  # the last row for a pair wins
        encoding="utf-8",
    )
    assert state.apply_decisions_file(plan).applied == 2
    assert state.status_of("q5") == "discard"
    assert state.latest["q2"].checklist == {"accuracy": True, "helpfulness": False, "clarity": True,
                                            "conciseness": False, "completeness": False}
    assert state.apply_decisions_file(plan).applied == 0
    state.goto("q5")
    state.decide("accept")
    assert state.apply_decisions_file(plan).applied == 1  # the file disagrees with the latest decision again
    assert state.status_of("q5") == "discard"


def test_apply_decisions_file_rejects_unknown_ids_and_bad_rows_before_applying_any(state, path, tmp_path):
    plan = tmp_path / "plan.jsonl"
    write_jsonl(plan, [{"pair_id": "q1", "status": "accept"}, {"pair_id": "zz9", "status": "accept"},
                       {"pair_id": "zz8", "status": "accept"}])
    with pytest.raises(CurationError, match=r"2 unknown pair id\(s\): zz9, zz8; nothing applied"):
        state.apply_decisions_file(plan)
    write_jsonl(plan, [{"pair_id": "q1", "status": "accept"}, {"pair_id": "q2", "status": "discard"}])
    with pytest.raises(CurationError, match="pair q2: Discard needs a reason"):
        state.apply_decisions_file(plan)
    with pytest.raises(CurationError, match="does not exist"):
        state.apply_decisions_file(tmp_path / "nope.csv")
    assert not path.exists()


def test_suggestions_prefill_the_checklist_but_do_not_decide(path):
    hint = {"scores": {"Accuracy": 5, "helpfulness": 4, "clarity": 3, "conciseness": 2, "completeness": 4},
            "suggested_status": "accept", "rationale": "Matches passage p1."}
    state = CurationState(make_pairs(), PASSAGES, path, suggestions={"q1": hint})
    assert state.checklist_for("q1") == {"accuracy": True, "helpfulness": True, "clarity": False,
                                         "conciseness": False, "completeness": True}
    assert state.status_of("q1") == "unreviewed" and not path.exists()
    state.decide("accept", checklist=["accuracy"])
    assert state.checklist_for("q1")["helpfulness"] is False  # the human's ticks replace the judge's
    as_list = CurationState(make_pairs(), PASSAGES, path, suggestions=[{"pair_id": "q2", **hint}])
    assert as_list.suggestion("q2").rationale == "Matches passage p1." and as_list.suggestion("q1") is None


def test_shared_words_and_highlight():
    answer = "Mira sells the honey in Dunmore every autumn."
    words = shared_words(answer, PASSAGES[0].text)
    assert {"mira", "honey", "dunmore", "autumn"} <= words
    assert "the" not in words and "in" not in words
    assert shared_words("Tomas's clocks", PASSAGES[1].text) == {"tomas", "clocks"}
    marked = highlight("Bees <and> honey & Mira's hill", {"honey", "mira"})
    assert "<mark>honey</mark>" in marked and "&lt;and&gt;" in marked and "&amp;" in marked
    assert "<mark>Mira&#x27;s</mark>" in marked
    assert "<mark>Bees</mark>" not in marked and marked.count("<mark>") == 2


def test_panel_clicks_reach_disk_and_show_errors(path):
    hint = {"scores": {c: 5 for c in CHECKLIST}, "suggested_status": "accept", "rationale": "All supported."}
    state = CurationState(make_pairs(), PASSAGES, path, suggestions={"q1": hint})
    panel = CurationPanel(state)
    assert "Golden rule" in panel.rule.value
    assert panel.progress.value == "0 / 5 reviewed (accept 0, fix 0, discard 0)"
    assert all(box.value for box in panel.checkboxes.values()) and "All supported." in panel.judge.value
    assert "<mark>Mira</mark>" in panel.passages.value and "<mark>Dunmore</mark>" in panel.passages.value
    assert "0.60" in panel.grounding.value

    panel.checkboxes["conciseness"].value = False
    panel.accept_button.click()
    assert lines(path)[0]["status"] == "accept" and lines(path)[0]["checklist"]["conciseness"] is False
    assert state.current.id == "q2" and panel.progress.value.startswith("1 / 5")

    panel.fix_button.click()
    assert "Fix needs an edited answer" in panel.message.value and len(lines(path)) == 1
    panel.answer.value = "Tomas repairs clocks."
    panel.fix_button.click()
    assert lines(path)[-1]["edited_answer"] == "Tomas repairs clocks." and state.current.id == "q3"

    panel.discard_button.click()
    assert "Discard needs a reason" in panel.message.value
    panel.reason.value = "not supported by the passages"
    panel.discard_button.click()
    assert lines(path)[-1] == {**lines(path)[-1], "pair_id": "q3", "status": "discard"}

    assert state.current.id == "q4"
    panel.prev_button.click()
    assert state.current.id == "q3" and "not supported" in panel.reason.value
    panel.prev_button.click()
    assert state.current.id == "q2" and panel.answer.value == "Tomas repairs clocks."
    panel.first_button.click()
    assert state.current.id == "q4"
    panel.status_filter.value = "discard"
    assert state.status_filter == "discard" and state.current.id == "q3"
    panel.status_filter.value = "all"
    panel.category_filter.value = "plot"
    assert [state.pairs[i].id for i in state.view()] == ["q3", "q4"]
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()

    # A restart: a new state and panel on the same file pick up at the first unreviewed pair.
    resumed = CurationPanel(CurationState(make_pairs(), PASSAGES, path))
    assert resumed.state.current.id == "q4" and resumed.progress.value.startswith("3 / 5")


def test_from_run_dir_reads_the_stage_files_and_rejects_a_hand_broken_decision(tmp_path):
    write_jsonl(tmp_path / "qa_pairs.jsonl", make_pairs())
    write_jsonl(tmp_path / "passages.jsonl", PASSAGES)
    state = CurationState.from_run_dir(tmp_path, reviewer="ana")
    state.decide("accept")
    assert read_jsonl(tmp_path / "decisions.jsonl", Decision)[0].pair_id == "q1"
    assert CurationState.from_run_dir(tmp_path).current.id == "q2"
    with (tmp_path / "decisions.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"pair_id": "q2", "status": "ok"}) + "\n")
    with pytest.raises(CurationError, match="record 2: status 'ok' is not one of accept, fix, discard"):
        CurationState.from_run_dir(tmp_path)
