import math

import pytest
from fake_openai import reply, reply_json

from lecture_utils.curate.judge import (
    JUDGE_PROMPT,
    JudgeError,
    JudgeScore,
    agreement_table,
    cohen_kappa,
    judge_messages,
    judge_pair,
    judge_pairs,
    judge_schema,
    suggested_status,
)
from lecture_utils.records import CHECKLIST, Decision, Passage, QAPair, Retrieved
from lecture_utils.teacher.client import StructuredOutputError, Teacher, TeacherConfig

PASSAGES = [
    Passage("ch1-p001", "tale.txt", "Marla kept the lighthouse on the northern cape for thirty winters.", 0, 66, 1),
    Passage("ch1-p002", "tale.txt", "Her brother Tobin sailed south each spring to sell salted fish.", 66, 130, 1),
    Passage("ch2-p001", "tale.txt", "The lamp went dark the night the storm took the pier.", 130, 184, 2),
]
PAIR = QAPair(id="q1", instruction_id="i1", instruction="Who kept the lighthouse, and for how long?",
              category="plot", answer="Marla kept it for thirty winters.",
              retrieved=[Retrieved("ch1-p001", 2.0), Retrieved("ch2-p001", 0.5)], cited=["ch1-p001"])
GOOD = {"rationale": "Fully backed by the first passage.", "accuracy": 5, "helpfulness": 4, "clarity": 5,
        "conciseness": 5, "completeness": 4}


@pytest.fixture
def teacher(fake_openai):
    t = Teacher(TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake-judge",
                              server_kind="openai"))
    yield t
    t.close()


def test_prompt_shows_the_judge_the_retrieved_passages_only():
    text = judge_messages(PAIR, PASSAGES)
    assert "[ch1-p001] Marla kept the lighthouse" in text and "[ch2-p001] The lamp went dark" in text
    assert "Tobin" not in text  # not retrieved for this pair
    assert PAIR.instruction in text and PAIR.answer in text
    for criterion in CHECKLIST:
        assert criterion in JUDGE_PROMPT


def test_judge_pair_through_a_real_teacher(fake_openai, teacher):
    fake_openai.enqueue(reply_json(GOOD))
    score = judge_pair(teacher, PAIR, PASSAGES)
    assert score == JudgeScore("q1", {c: GOOD[c] for c in CHECKLIST}, GOOD["rationale"], "accept", "fake-judge")
    body = fake_openai.chat_requests[-1].body
    assert body["response_format"]["json_schema"]["schema"] == judge_schema()
    assert "Marla kept the lighthouse" in body["messages"][-1]["content"]
    assert body["messages"][0]["role"] == "system"


def test_judge_reply_out_of_range_is_retried_then_reported(fake_openai, teacher):
    fake_openai.enqueue(reply_json({**GOOD, "accuracy": 9}), reply_json({**GOOD, "accuracy": 2}))
    assert judge_pair(teacher, PAIR, PASSAGES).suggested_status == "discard"  # second reply was valid
    fake_openai.enqueue(*[reply("I think it is fine.")] * 3)
    with pytest.raises(StructuredOutputError):
        judge_pair(teacher, PAIR, PASSAGES)


def test_judge_pairs_keeps_going_after_a_failure(fake_openai, teacher):
    other = QAPair(id="q2", instruction_id="i2", instruction="Why did the lamp go dark?", category="plot",
                   answer="A storm took the pier.", retrieved=[Retrieved("ch2-p001", 1.0)], cited=["ch2-p001"])
    fake_openai.enqueue(*[reply("no json")] * 3, reply_json({**GOOD, "conciseness": 3}))
    scores = judge_pairs(teacher, [PAIR, other], {p.id: p for p in PASSAGES})
    assert scores[0].scores == {} and scores[0].suggested_status == "" and "no valid JSON" in scores[0].error
    assert scores[1].suggested_status == "fix"


def test_missing_passages_is_a_clear_error(teacher):
    with pytest.raises(JudgeError, match="passages.jsonl"):
        judge_pair(teacher, PAIR, [PASSAGES[1]])


def test_suggested_status_rule():
    base = {c: 5 for c in CHECKLIST}
    assert suggested_status(base) == "accept"
    assert suggested_status({**base, "clarity": 4, "completeness": 4}) == "accept"
    assert suggested_status({**base, "conciseness": 3}) == "fix"
    assert suggested_status({**base, "accuracy": 2}) == "discard"
    assert suggested_status({**base, "helpfulness": 1}) == "discard"
    with pytest.raises(JudgeError, match="accuracy"):
        suggested_status({"clarity": 5})


def test_cohen_kappa_hand_computed():
    # Observed agreement 7/10. Judge: 5 accept, 3 fix, 2 discard; human the same mix.
    # Chance agreement (5*5 + 3*3 + 2*2) / 100 = 0.38, so kappa = (0.7 - 0.38) / (1 - 0.38) = 0.32 / 0.62.
    judge = ["accept"] * 5 + ["fix"] * 3 + ["discard"] * 2
    human = ["accept"] * 4 + ["fix"] * 3 + ["discard"] * 2 + ["accept"]
    assert cohen_kappa(judge, human) == pytest.approx(0.32 / 0.62)
    # Two raters, 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15. p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(["yes", "no"], ["no", "yes"]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(["accept"] * 3, ["accept"] * 3))


def test_kappa_and_table_align_judge_scores_with_decisions_by_pair_id():
    judged = [JudgeScore("q1", {}, "", "accept"), JudgeScore("q2", {}, "", "fix"), JudgeScore("q3", {}, "", "accept"),
              JudgeScore("q4", {}, "", "")]  # q4: the judge failed, so it is left out
    decisions = [Decision("q3", "discard"), Decision("q1", "accept"), Decision("q2", "accept"), Decision("q2", "fix"),
                 Decision("q4", "accept")]  # q2 was changed: the last decision counts
    table = agreement_table(judged, decisions)
    assert table.index.name == "judge" and table.columns.name == "human"
    assert list(table.index) == ["accept", "fix", "discard"]
    assert table.loc["accept", "accept"] == 1 and table.loc["fix", "fix"] == 1 and table.loc["accept", "discard"] == 1
    assert table.values.sum() == 3
    assert cohen_kappa(judged, decisions) == cohen_kappa(["accept", "fix", "accept"], ["accept", "fix", "discard"])


def test_agreement_input_errors():
    with pytest.raises(JudgeError, match="length"):
        cohen_kappa(["accept"], ["accept", "fix"])
    with pytest.raises(JudgeError, match="review some pairs"):
        agreement_table({}, {})
    with pytest.raises(JudgeError, match="both"):
        cohen_kappa(["accept"], {"q1": "accept"})
