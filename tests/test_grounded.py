"""Passage-first questions and the checks that decide what a dataset may keep (issue 10), against the fake server.

The corpus is our own invented village, so nothing is quoted from anywhere."""

import dataclasses
import json

import pytest
from fake_openai import reply_json

from lecture_utils.answer import verify
from lecture_utils.answer.qa import answer_instruction, retrieve
from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.ask import passage_first, targets
from lecture_utils.curate.panel import checks_html
from lecture_utils.prompts import NOT_IN_TEXT, NOT_IN_TEXT_TYPE
from lecture_utils.records import Instruction, Passage, QAPair, Retrieved, read_jsonl
from lecture_utils.scale import export
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.text import spans

LIGHTHOUSE = ("Marla keeps the lighthouse at Fenwick. Every evening she climbs the ninety steps and trims the lamp, "
              "and on stormy nights she stays awake until the last fishing boat is home. Her brother Tobin bakes rye "
              "loaves for the harbour market, and he brings her one each Tuesday.")
MARKET = ("The harbour market opens at dawn on Tuesdays and Fridays. Wenna sells herring from a blue cart, and the "
          "old ferryman Ambrose mends nets for anyone who pays him in tobacco or in news from the mainland. When the "
          "weather turns, the stalls close early and everyone crowds into the inn by the quay.")
STORM = ("The great storm came in the autumn of the wreck. It tore the roof from the chapel and drove three boats onto "
         "the rocks below the cliffs; the village still rings the chapel bell on that night every year, and the "
         "children are told to listen for it from their beds.")


def book(chapters: int = 6, per_chapter: int = 3) -> list[Passage]:
    texts = [LIGHTHOUSE, MARKET, STORM]
    out = []
    for ch in range(1, chapters + 1):
        for k in range(per_chapter):
            text = texts[(ch + k) % 3]
            out.append(Passage(f"ch{ch:02d}-p{k + 1:03d}", "village.txt", text, 0, len(text), ch))
    return out


@pytest.fixture
def teacher(fake_openai):
    t = Teacher(TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake", server_kind="llama.cpp"))
    yield t
    t.close()


def lighthouse() -> Passage:
    return Passage("ch01-p001", "village.txt", LIGHTHOUSE, 0, len(LIGHTHOUSE), 1)


# --- the span check -----------------------------------------------------------------------------------------------


def test_a_quote_is_found_despite_case_quote_marks_and_spacing():
    span = spans.find_span("every evening she climbs the  NINETY steps", LIGHTHOUSE)
    assert span == "Every evening she climbs the ninety steps"


def test_a_quote_with_one_word_changed_is_replaced_by_the_passages_own_words():
    span = spans.find_span("on stormy nights she stays awake until the final fishing boat is home", LIGHTHOUSE)
    assert span == "on stormy nights she stays awake until the last fishing boat is home."


def test_a_quote_that_is_not_in_the_passage_is_none():
    assert spans.find_span("Marla sells herring from a blue cart at dawn", LIGHTHOUSE) is None


HARBOUR = ("Captain Harrow sails the mail boat from Fenwick to the mainland every Tuesday and Friday. "
           "Marla keeps the lighthouse at Fenwick because her father kept it for forty years. "
           "\u201cYou will ruin your eyes up there,\u201d Tobin told Marla one winter, but Marla only laughed at Tobin. "
           "Old Ambrose mends the nets on the quay, and Wenna pays him in tobacco or in news from the mainland. "
           "He was not always so patient.")
SAILS = "Captain Harrow sails the mail boat from Fenwick to the mainland every Tuesday and Friday."
KEEPS = "Marla keeps the lighthouse at Fenwick because her father kept it for forty years."
MENDS = "Old Ambrose mends the nets on the quay, and Wenna pays him in tobacco or in news from the mainland."


def harbour() -> Passage:
    return Passage("ch02-p001", "village.txt", HARBOUR, 0, len(HARBOUR), 2)


def test_answer_sentences_are_narration_that_names_someone_with_an_answer_in_it():
    two = targets.answer_sentences(harbour(), 2)
    assert two == [targets.Target("character", SAILS, "Captain Harrow", "who"),
                   targets.Target("factual", KEEPS, "forty years", "how long")], "one of each type first"
    every = targets.answer_sentences(harbour(), 10)
    assert {t.sentence for t in every} == {SAILS, KEEPS}, "no dialogue, no 6-word sentence, none opening with 'He'"
    assert {(t.kind, t.answer) for t in every} >= {("why or how", "because her father kept it for forty years"),
                                                   ("character", "Marla")}


def test_the_kit_drafts_each_question_by_rule():
    sails, keeps = targets.answer_sentences(harbour(), 2)
    assert sails.draft == "Who sails the mail boat from Fenwick to the mainland every Tuesday and Friday?"
    assert keeps.draft == "Marla keeps the lighthouse at Fenwick because her father kept it for [how long]?"


def test_no_whom_question_about_a_person_after_an_inverted_passive():
    """'With great joy was he welcomed at the inn between Marla and Tobin': he is the one welcomed, so asking whom
    Captain Harrow welcomed turns the sentence round (the teacher wrote just such a question about the novel)."""
    sentence = ("Captain Harrow did not stay on the boat, and with great joy was he welcomed at the inn between "
                "Marla and Tobin.")
    known = {"Marla", "Tobin", "Captain"}
    assert [kind for kind, _, _ in targets.answers_of(sentence, known, ["character", "factual"])] == ["character"]
    plain = "Captain Harrow did not stay on the boat, and with great joy he welcomed Marla and Tobin at the inn."
    assert ("factual", "Marla", "whom") in targets.answers_of(plain, known, ["character", "factual"])


def test_a_speech_that_runs_on_from_the_passage_before_is_not_narration():
    text = ("the boat will not sail before the storm has passed over Fenwick harbour,\u201d said Marla to Tobin. "
            "Captain Harrow waited at the quay with Tobin until the evening tide came in.")
    assert targets.narration(text) == ["Captain Harrow waited at the quay with Tobin until the evening tide came in."]
    assert targets.narration("Marla rowed out with Tobin at dawn; the sea was calm. I think Tobin was right.") \
        == ["Marla rowed out with Tobin at dawn; the sea was calm."], "'I' and 'you' belong to a speech or a letter"


def test_a_passage_that_stops_mid_sentence_does_not_give_its_last_piece():
    cut = "Captain Harrow waited at the quay with Tobin until the tide came in. The next morning Marla saw Mr."
    assert targets.narration(cut) == ["Captain Harrow waited at the quay with Tobin until the tide came in."]


@pytest.mark.parametrize("question, reason", [
    ("Who is Captain Harrow?", "asks who someone is"),
    ("Who sails the mail boat with Captain Morrow?", "names Morrow"),
    ("Captain Harrow sails the mail boat from Fenwick to the mainland every Tuesday and Friday?", "gives its own answer away"),
    ("Does Captain Harrow sail the mail boat from Fenwick?", "gives its own answer away"),  # holds the answer words
    ("What is sailed every week to the mainland?", "names no one"),
    ("What does the passage say about the mail boat from Fenwick?", "the passage"),
    ("Who sails the mail boat from Fenwick to the mainland?", None),  # a "who" built from the sentence needs no name
    ("Who and Tobin sail the mail boat from Fenwick?", "not one plain sentence"),  # the subject was cut in two
    ("Who sails the mail boat; and from Fenwick to the mainland?", "not one plain sentence"),
    ("Where does she sail the mail boat from Fenwick every week?", "he or she before naming"),
    ("Who sails his own mail boat from Fenwick to the mainland?", None),  # "his": the person asked about
])
def test_a_question_must_stand_on_its_own_without_giving_its_answer_away(question, reason):
    got = passage_first.check_item(question, SAILS, harbour(), answer="Captain Harrow")
    assert (got is None) if reason is None else (reason in got)


def test_each_answer_becomes_one_checked_question(fake_openai, teacher):
    fake_openai.enqueue(
        reply_json({"question": "Who sails the mail boat from Fenwick to the mainland each week?"}),
        reply_json({"quote": "Captain Harrow"}),  # the round trip finds the answer
        reply_json({"question": "What does the passage say about Marla?"}),
    )
    kept, dropped = passage_first.questions_from_passage(teacher, harbour(), n=2)
    assert [k.instruction for k in kept] == ["Who sails the mail boat from Fenwick to the mainland each week?"]
    assert kept[0].id == "ch02-p001-q1" and kept[0].span == SAILS and kept[0].passage_id == "ch02-p001"
    assert kept[0].category == "character" and kept[0].checks["round_trip"] == 1.0
    assert kept[0].checks["answer"] == "Captain Harrow"
    assert [(d.question, d.quote) for d in dropped] == [("What does the passage say about Marla?", KEEPS)]
    assert "the passage" in dropped[0].reason
    sent = fake_openai.chat_requests[0].body["messages"][-1]["content"]
    assert SAILS in sent and sent.startswith("Passages from the source:\n[ch02-p001]"), "the passage comes first"
    assert "Draft: Who sails the mail boat" in sent and "Answer: Captain Harrow" in sent


def test_a_rewrite_that_loses_the_sentences_negation_gives_way_to_the_draft(fake_openai, teacher):
    never = "Captain Harrow never sailed the mail boat from Fenwick again after the winter storm."
    passage = Passage("ch03-p001", "village.txt", never, 0, len(never), 3)
    fake_openai.enqueue(
        reply_json({"question": "Who sailed the mail boat from Fenwick again after the winter storm?"}),  # the opposite
        reply_json({"quote": "Captain Harrow"}),
    )
    kept, dropped = passage_first.questions_from_passage(teacher, passage, n=1)
    assert [k.instruction for k in kept] == ["Who never sailed the mail boat from Fenwick again after the winter storm?"]
    assert dropped == []


def test_a_rewrite_that_gives_a_his_or_her_the_wrong_owner_gives_way_to_the_draft(fake_openai, teacher):
    """'Captain Harrow looked at her nephew' rewritten as 'Who looked at Marla's nephew?': the sentence never says
    whose nephew, the teacher guessed; the kit's own draft keeps 'her' (and drops Gutenberg's _italics_ marks)."""
    text = ("Marla rowed out at dawn. Captain Harrow looked at her nephew, wondering how _he_ would take the news of "
            "the storm.")
    passage = Passage("ch04-p001", "village.txt", text, 0, len(text), 4)
    fake_openai.enqueue(
        reply_json({"question": "Who looked at Marla's nephew, wondering how he would take the news of the storm?"}),
        reply_json({"quote": "Captain Harrow"}),
    )
    kept, dropped = passage_first.questions_from_passage(teacher, passage, n=1)
    assert [k.instruction for k in kept] == ["Who looked at her nephew, wondering how he would take the news of the "
                                             "storm?"]
    assert "Marla's nephew" in passage_first.check_item("Who looked at Marla's nephew and his boat?",
                                                        text.split(". ")[1], passage)
    assert passage_first._new_owner("Who looked at Tobin\u2019s nephew?", "Old Tobin's nephew looked at him.") == ""


def test_a_rewrite_that_fails_its_checks_gives_way_to_the_kits_draft(fake_openai, teacher):
    fake_openai.enqueue(reply_json({"question": "Who is Captain Harrow?"}), reply_json({"quote": "Captain Harrow"}))
    kept, _ = passage_first.questions_from_passage(teacher, harbour(), n=1)
    assert [k.instruction for k in kept] == ["Who sails the mail boat from Fenwick to the mainland every Tuesday and Friday?"]


def test_a_question_with_words_the_sentence_does_not_have_is_dropped(fake_openai, teacher):
    fake_openai.enqueue(
        reply_json({"question": "Who sails the mail boat from Fenwick to the mainland?"}),
        reply_json({"quote": "Captain Harrow"}),
        reply_json({"question": "How long did the winter storms keep Marla awake in the lighthouse at Fenwick?"}),
    )
    kept, dropped = passage_first.questions_from_passage(teacher, harbour(), n=2)
    assert len(kept) == 1 and dropped[0].reason.startswith("strays from the sentence")


def test_a_question_that_does_not_lead_back_to_its_answer_is_dropped(fake_openai, teacher):
    fake_openai.enqueue(
        reply_json({"question": "Who sails the mail boat from Fenwick to the mainland?"}),
        reply_json({"quote": "Marla keeps the lighthouse"}),  # the round trip lands elsewhere
    )
    kept, dropped = passage_first.questions_from_passage(teacher, harbour(), n=1)
    assert not kept and dropped[0].reason.startswith("round trip")


def test_a_teacher_that_never_sends_valid_json_lands_in_the_drops_file_with_its_reason(fake_openai, teacher, tmp_path):
    fake_openai.enqueue(*[reply_json({"nothing": "useful"})] * 2)
    summary = passage_first.generate(teacher, [harbour()], tmp_path / "q.jsonl", n=2)
    assert summary.failed == 1 and summary.kept == 0
    drops = read_jsonl(passage_first.drops_path(tmp_path / "q.jsonl"))
    assert drops[0]["passage_id"] == "ch02-p001" and drops[0]["reason"].startswith("no valid reply")
    again = passage_first.generate(teacher, [harbour()], tmp_path / "q.jsonl", n=2)
    assert again.asked == 0, "a passage already recorded is not asked again"


def test_a_passage_with_nothing_to_ask_about_is_dropped_with_its_reason_and_no_call(fake_openai, teacher, tmp_path):
    summary = passage_first.generate(teacher, [lighthouse()], tmp_path / "q.jsonl", n=2)
    assert summary.kept == 0 and not fake_openai.chat_requests
    assert read_jsonl(passage_first.drops_path(tmp_path / "q.jsonl"))[0]["reason"].startswith("no sentence of narration")



def test_a_passage_too_short_to_ask_about_gets_a_clear_error():
    short = Passage("ch01-p001", "v.txt", "Yes.", 0, 4, 1)
    with pytest.raises(passage_first.PassageFirstError, match="words or more"):
        passage_first.sample_passages([short], 5)


# --- sampling covers every chapter ----------------------------------------------------------------------------------


def test_sampling_takes_every_chapter_before_any_chapter_twice():
    passages = book(chapters=9, per_chapter=4)
    chosen = passage_first.sample_passages(passages, 9, seed=3)
    assert sorted(p.chapter for p in chosen) == list(range(1, 10))
    more = passage_first.sample_passages(passages, 14, seed=3)
    counts = {ch: sum(p.chapter == ch for p in more) for ch in range(1, 10)}
    assert set(counts.values()) == {1, 2}
    assert passage_first.sample_passages(passages, 14, seed=3) == more, "the same seed gives the same sample"


def test_sampling_prefers_narration_to_dialogue():
    talk = '"I will not," said Tobin. "You must," said Marla. "Never," said Tobin, "not while the lamp burns here."'
    passages = [Passage("ch01-p001", "v.txt", talk * 3, 0, 1, 1), Passage("ch01-p002", "v.txt", LIGHTHOUSE, 0, 1, 1)]
    assert passage_first.sample_passages(passages, 1)[0].id == "ch01-p002"


def test_sampling_prefers_passages_with_sentences_to_ask_about():
    passages = [Passage("ch01-p001", "v.txt", LIGHTHOUSE, 0, 1, 1), Passage("ch01-p002", "v.txt", HARBOUR, 0, 1, 1)]
    assert passage_first.sample_passages(passages, 1)[0].id == "ch01-p002"


def test_negatives_are_asked_against_a_far_passage_that_shares_no_name():
    passages = book(chapters=4, per_chapter=1)
    inst = Instruction("ch01-p001-q1", "How many steps does Marla climb?", "factual", origin="passage",
                       passage_id="ch02-p001", span="climbs the ninety steps")
    passages[1] = Passage("ch02-p001", "village.txt", LIGHTHOUSE, 0, 1, 2)
    negatives = passage_first.not_in_text_questions([inst], passages, every=1)
    assert len(negatives) == 1 and negatives[0].category == NOT_IN_TEXT_TYPE
    far = {p.id: p for p in passages}[negatives[0].passage_id]
    assert "Marla" not in far.text and far.chapter != 2


# --- the verifiers -----------------------------------------------------------------------------------------------


def make_pair(answer: str, **kw) -> QAPair:
    return QAPair("qa-x", "x", kw.pop("instruction", "How many steps does Marla climb each evening?"), "factual", answer,
                  retrieved=[Retrieved("ch01-p001", 1.0)], cited=["ch01-p001"], passage_id="ch01-p001",
                  span="climbs the ninety steps", checks=kw.pop("checks", {"span": True, "round_trip": 1.0}), **kw)


def test_a_supported_answer_with_a_yes_verdict_passes(fake_openai, teacher):
    fake_openai.enqueue(reply_json({"verdict": "YES"}))
    checked = verify.verify_pair(teacher, make_pair("Marla climbs the ninety steps every evening."), [lighthouse()])
    assert checked.passed is True and checked.checks["faithful"] == "YES" and checked.checks["names"] == []
    assert checked.checks["support"] >= 0.6 and checked.checks["round_trip"] == 1.0, "Stage 2's checks travel along"
    body = fake_openai.requests[-1].body
    assert LIGHTHOUSE[:40] in body["messages"][-1]["content"], "the verdict sees the passage"
    assert body["response_format"]["schema"]["properties"]["verdict"]["enum"] == ["YES", "NO"]


def test_a_true_answer_that_cites_another_passage_fails_cites(fake_openai, teacher):
    # the answer is in its own passage (retrieved first) but the teacher cited the other one it was shown
    other = Passage("ch02-p001", "village.txt", HARBOUR, 0, 1, 2)
    fake_openai.enqueue(reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}))
    wrong = dataclasses.replace(make_pair("Marla climbs the ninety steps every evening."), cited=["ch02-p001"],
                                retrieved=[Retrieved("ch01-p001", 1.0), Retrieved("ch02-p001", 0.5)])
    checked = verify.verify_pair(teacher, wrong, [lighthouse(), other])
    assert checked.checks["support"] >= 0.6 and checked.checks["cites"] < 0.6
    assert checked.passed is False and verify.failed_checks(checked) == ["cites"]
    right = verify.verify_pair(teacher, dataclasses.replace(wrong, cited=["ch01-p001"]), [lighthouse(), other])
    assert right.passed is True and right.checks["cites"] >= 0.6


def test_an_invented_answer_fails_support_and_names_even_when_the_teacher_says_yes(fake_openai, teacher):
    fake_openai.enqueue(reply_json({"verdict": "YES"}))
    checked = verify.verify_pair(teacher, make_pair("Captain Harrow rows Marla across the bay to Penzance."),
                                 [lighthouse()])
    assert checked.passed is False
    assert set(verify.failed_checks(checked)) >= {"names", "support"}
    assert "Harrow" in checked.checks["names"]


def test_a_no_verdict_fails_the_pair(fake_openai, teacher):
    fake_openai.enqueue(reply_json({"verdict": "NO"}))
    checked = verify.verify_pair(teacher, make_pair("Marla climbs the ninety steps every evening."), [lighthouse()])
    assert checked.passed is False and verify.failed_checks(checked) == ["faithful"]


def test_a_no_verdict_on_an_answer_that_says_its_expected_words_goes_to_a_person_not_out(fake_openai, teacher):
    fake_openai.enqueue(reply_json({"verdict": "NO"}))
    pair = make_pair("Marla climbs the ninety steps every evening.",
                     checks={"span": True, "round_trip": 1.0, "answer": "ninety steps"})
    checked = verify.verify_pair(teacher, pair, [lighthouse()])
    assert checked.checks["expected"] is True and checked.checks["faithful"] == "NO", "the verdict is still stored"
    assert checked.passed is True and verify.failed_checks(checked) == [] and verify.doubts(checked) == ["faithful"]
    assert "the teacher doubts it" in checks_html(checked)
    wrong = make_pair("Marla climbs the hundred steps every evening.",
                      checks={"span": True, "round_trip": 1.0, "answer": "ninety steps"})
    fake_openai.enqueue(reply_json({"verdict": "NO"}))
    assert verify.failed_checks(verify.verify_pair(teacher, wrong, [lighthouse()])) == ["expected", "faithful"], \
        "without its expected words the verdict gates again"


def test_a_negative_passes_only_when_the_answer_says_the_text_does_not_hold_it(teacher):
    neg = make_pair(NOT_IN_TEXT, not_in_text=True)
    neg.category = NOT_IN_TEXT_TYPE
    assert verify.verify_pair(teacher, neg, [lighthouse()]).passed is True
    wrong = make_pair("Marla climbs ninety steps.")
    wrong.category = NOT_IN_TEXT_TYPE
    assert verify.verify_pair(teacher, wrong, [lighthouse()]).passed is False


def test_the_gate_counts_each_check_once_in_its_funnel():
    good = make_pair("a", passed=True)
    good.checks = {"span": True, "names": [], "support": 0.9, "faithful": "YES"}
    bad_names = make_pair("b", passed=False)
    bad_names.id, bad_names.checks = "qa-b", {"names": ["Harrow"], "support": 0.2, "faithful": "YES"}
    bad_verdict = make_pair("c", passed=False)
    bad_verdict.id, bad_verdict.checks = "qa-c", {"names": [], "support": 0.9, "faithful": "NO"}
    kept, failed, funnel = verify.gate([good, bad_names, bad_verdict])
    assert [p.id for p in kept] == ["qa-x"] and len(failed) == 2
    removed = dict(zip(funnel.step, funnel.removed))
    assert removed["check: names"] == 1 and removed["check: support"] == 0 and removed["check: faithful"] == 1
    assert funnel.remaining.iloc[-1] == 1


def test_verify_pairs_resumes_without_asking_twice(fake_openai, teacher, tmp_path):
    pairs = [make_pair("Marla climbs the ninety steps every evening.")]
    fake_openai.enqueue(reply_json({"verdict": "YES"}))
    first = verify.verify_pairs(teacher, pairs, [lighthouse()], tmp_path / "checked.jsonl")
    calls = len(fake_openai.requests)
    again = verify.verify_pairs(teacher, pairs, [lighthouse()], tmp_path / "checked.jsonl")
    assert len(fake_openai.requests) == calls and again[0].checks == first[0].checks


# --- the answer sees its own passage first ---------------------------------------------------------------------------


def test_a_passage_first_question_always_has_its_passage_first_in_the_context(fake_openai, teacher):
    passages = book(chapters=6)
    index = FastBM25Index(passages)
    inst = Instruction("ch05-p002-q1", "How many boats did the great storm drive onto the rocks?", "factual",
                       origin="passage", passage_id="ch05-p002", span="drove three boats onto the rocks")
    hits = retrieve(index, inst, k=3)
    assert hits[0][0].id == "ch05-p002" and len(hits) == 3
    fake_openai.enqueue(reply_json({"answer": "Three boats were driven onto the rocks.", "cited": ["ch05-p002"]}))
    pair = answer_instruction(teacher, inst, index, k=3)
    prompt = fake_openai.requests[-1].body["messages"][-1]["content"]
    assert "drove three boats onto the rocks" in prompt.split("Instruction:")[1], "the evidence line is in the prompt"
    assert pair.passage_id == "ch05-p002" and pair.span == inst.span and pair.retrieved[0].id == "ch05-p002"


def test_a_negative_sees_only_its_far_passage(fake_openai, teacher):
    passages = book(chapters=6)
    index = FastBM25Index(passages)
    neg = Instruction("x-neg", "How many boats did the great storm drive onto the rocks?", NOT_IN_TEXT_TYPE,
                      origin="passage", passage_id="ch01-p002")
    assert [p.id for p, _ in retrieve(index, neg, k=3)] == ["ch01-p002"]


# --- the dataset card states only what is true -------------------------------------------------------------------------


def test_the_card_counts_person_and_automatic_reviews_apart_and_leaves_refusals_out(tmp_path):
    person = make_pair("Marla climbs ninety steps.", review="person")
    person.id = "qa-1"
    auto = make_pair("She trims the lamp every evening.", review="checks", passed=True)
    auto.id = "qa-2"
    idk = make_pair(NOT_IN_TEXT, review="checks", not_in_text=True)
    idk.id = "qa-3"
    result = export.export_dataset([person, auto, idk], tmp_path, ["alpaca"])
    card = result.card.read_text(encoding="utf-8")
    assert result.count == 2, "an 'I don't know' answer is not a training target by default"
    assert "**1 reviewed by a person**" in card and "**1 passed the automatic checks only**" in card
    assert "a person reviewed every pair" not in card
    assert "1 of the 2 pairs were never read by a person" in card
    assert "left out" in card
    prov = [json.loads(line) for line in (tmp_path / "provenance.jsonl").read_text().splitlines()]
    assert [p["review"] for p in prov] == ["person", "checks"]
    with_refusals = export.export_dataset([person, auto, idk], tmp_path / "r", ["alpaca"], refusals=True)
    assert with_refusals.count == 3


def test_a_card_of_person_reviewed_pairs_says_so(tmp_path):
    person = make_pair("Marla climbs ninety steps.", review="person")
    card = export.export_dataset([person], tmp_path, ["alpaca"]).card.read_text(encoding="utf-8")
    assert "a person reviewed every pair" in card


def test_a_question_that_adds_a_situation_the_sentence_does_not_describe_is_dropped():
    reason = passage_first.check_item("What does Captain Harrow do when the storm sinks his boat?", SAILS, harbour())
    assert reason == "question adds a situation the sentence does not describe"
    assert passage_first.check_item("Where does Captain Harrow sail when he takes the mail boat from Fenwick?",
                                    SAILS, harbour()) is None


def test_an_answer_about_the_wrong_person_fails_the_expected_check(teacher, fake_openai):
    passages = {"ch01-p001": lighthouse()}
    right = make_pair("Marla climbs the ninety steps every evening.", checks={"span": True, "answer": "Marla"})
    wrong = make_pair("Tobin climbs the ninety steps every evening.", checks={"span": True, "answer": "Marla"})
    assert verify.verify_pair(teacher, right, passages, llm_checks=False).checks["expected"] is True
    checked = verify.verify_pair(teacher, wrong, passages, llm_checks=False)
    assert checked.checks["expected"] is False and not checked.passed and "expected" in verify.failed_checks(checked)
