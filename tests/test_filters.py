import pandas as pd
import pytest

from lecture_utils.answer.filters import (
    UNSUITABLE_KEYWORDS,
    FilterConfig,
    FilterError,
    filter_instructions,
    is_not_in_text,
    language_problem,
    run_filters,
    unsuitable_keyword,
)
from lecture_utils.prompts import NOT_IN_TEXT
from lecture_utils.records import Instruction, QAPair, Retrieved

GOOD_ANSWER = ("The estate passes to the nearest male relative, so the daughters cannot inherit it and the family "
               "worries about their future [ch07-p001].")


def pair(instruction="Explain why the entail matters to the family.", answer=GOOD_ANSWER, **kw) -> QAPair:
    kw.setdefault("id", f"p{abs(hash((instruction, answer))) % 10**6}")
    kw.setdefault("retrieved", [Retrieved("ch07-p001", 3.2)])
    kw.setdefault("cited", ["ch07-p001"])
    kw.setdefault("finish_reason", "stop")
    return QAPair(instruction_id="i1", instruction=instruction, category="plot", answer=answer, **kw)


def only_removed_by(p: QAPair, config: FilterConfig | None = None) -> list[str]:
    return [r.filter for r in run_filters([p], config).removed]


def test_good_pair_survives_every_step():
    result = run_filters([pair()])
    assert len(result.kept) == 1 and result.removed == []


def test_empty_and_truncated_answers():
    assert only_removed_by(pair(answer="   ")) == ["empty answer"]
    assert only_removed_by(pair(finish_reason="length")) == ["truncated answer"]
    assert only_removed_by(pair(finish_reason="length"), FilterConfig(drop_truncated=False)) == []


def test_length_bounds():
    assert only_removed_by(pair(instruction="Summarize chapter one.")) == ["instruction length"]  # 3 words
    assert only_removed_by(pair(answer="Yes.")) == ["answer length"]
    long_answer = " ".join(["The family worries about the estate and the future."] * 80)
    assert only_removed_by(pair(answer=long_answer)) == ["answer length"]
    assert only_removed_by(pair(answer="Yes."), FilterConfig(min_answer_words=None)) == []


def test_unsuitable_keywords_are_alpaca_words_as_whole_words():
    assert set(UNSUITABLE_KEYWORDS) >= {"image", "draw", "plot", "go to", "audio", "diagram", "flowchart"}
    assert unsuitable_keyword("Draw a MAP of Longbourn and Netherfield") == "map"
    assert unsuitable_keyword("Please go to the library") == "go to"
    assert unsuitable_keyword("Describe the drawing room at Rosings") is None  # 'drawing' is not 'draw'
    assert unsuitable_keyword("Summarize the plot of the novel") == "plot"  # Alpaca's list is blunt; configurable
    assert only_removed_by(pair(instruction="Create a diagram of the Bennet family tree.")) == ["unsuitable task"]
    assert only_removed_by(pair(instruction="Create a diagram of the Bennet family tree."),
                           FilterConfig(unsuitable_keywords=())) == []


def test_instruction_must_start_with_a_letter():
    assert only_removed_by(pair(instruction='"Pride" is a theme: explain how it shapes Darcy.')) == [
        "starts with non-letter"]
    assert only_removed_by(pair(instruction="3 reasons why Darcy is disliked at the ball?")) == [
        "starts with non-letter"]


def test_answer_that_repeats_the_instruction():
    inst = "Explain why Elizabeth refuses the first proposal from Darcy."
    assert only_removed_by(pair(instruction=inst, answer="Elizabeth refuses the first proposal from Darcy.")) == [
        "repeats instruction"]


def test_a_full_sentence_answer_is_not_an_echo():
    # the answer restates the question around its answer (the person): that is an answer, not an echo
    who = pair(instruction="Who returned into Hertfordshire soon after the Gardiners had left it?",
               answer="Mr. Collins returned into Hertfordshire soon after the Gardiners had left it.")
    assert only_removed_by(who) == []
    echo = pair(instruction="Who returned into Hertfordshire soon after the Gardiners had left it?",
                answer="They returned into Hertfordshire soon after the Gardiners had left it.")
    assert only_removed_by(echo) == ["repeats instruction"]


def test_refusals_are_dropped():
    p = pair(answer="I'm sorry, but as an AI I cannot help with questions about this book at all.")
    assert only_removed_by(p) == ["refusal"]
    assert only_removed_by(p, FilterConfig(drop_refusals=False)) == []


def test_not_in_text_answers_kept_or_dropped_by_setting():
    flagged = pair(answer=NOT_IN_TEXT, not_in_text=True, cited=[])
    worded = pair(answer="The context does not contain any information about her age.", cited=[])
    assert is_not_in_text(flagged) and is_not_in_text(worded)
    assert not is_not_in_text(pair())
    assert run_filters([flagged, worded]).removed == []  # kept by default, short as they are
    dropped = run_filters([flagged, worded], FilterConfig(keep_not_in_text=False))
    assert [r.filter for r in dropped.removed] == ["not in text", "not in text"]


def test_an_answer_that_speaks_of_the_passages_is_dropped_but_a_corridor_is_not():
    told = pair(answer="The passage describes how Mr. Collins admires the furniture of his apartment at Rosings.")
    given = pair(answer="According to the provided context, the estate passes to the nearest male relative.")
    corridor = pair(answer="Elizabeth met him in the passage, and the passage was dark and narrow at that hour.")
    assert only_removed_by(told) == only_removed_by(given) == ["speaks of the passages"]
    assert only_removed_by(corridor) == []
    worded = pair(answer="The provided passages do not contain the answer.", cited=[])
    assert only_removed_by(worded) == []  # a "not in the text" answer: its own step decides
    assert only_removed_by(told, FilterConfig(context_patterns=[])) == []


def test_language_check_without_a_model():
    assert language_problem("Explain why the family worries about the future of the estate.", FilterConfig()) is None
    assert "a-z" in language_problem("Объясните, почему семья беспокоится о будущем.", FilterConfig())
    assert "English" in language_problem("Explique pourquoi la famille Bennet craint pour sa maison et ses filles.",
                                         FilterConfig())
    p = pair(answer="La famille Bennet craint pour sa maison parce que les filles ne peuvent pas hériter du domaine.")
    assert only_removed_by(p) == ["language"]


def test_funnel_counts_each_record_once_in_order():
    pairs = [pair(), pair(answer=""), pair(answer="", finish_reason="length"), pair(finish_reason="length"),
             pair(instruction="Draw Pemberley in pencil for the class.")]
    result = run_filters(pairs)
    funnel = result.funnel
    assert isinstance(funnel, pd.DataFrame) and list(funnel.columns) == ["step", "removed", "remaining"]
    assert funnel.iloc[0].tolist() == ["input", 0, 5]
    counts = dict(zip(funnel.step, funnel.removed))
    assert counts["empty answer"] == 2 and counts["truncated answer"] == 1 and counts["unsuitable task"] == 1
    assert funnel.remaining.iloc[-1] == len(result.kept) == 1
    assert funnel.removed.sum() == len(result.removed) == 4
    assert result.removed_by("truncated answer") == [pairs[3]]
    assert all(r.reason for r in result.removed)


def test_instruction_only_variant():
    items = [Instruction("i1", "Explain how Darcy's pride shows at the first ball.", "character"),
             Instruction("i2", "Plot the marriages on a graph.", "plot"),
             "Why?",
             "Quelle est la morale de cette histoire pour les jeunes filles de la famille?"]
    result = filter_instructions(items)
    assert result.kept == [items[0]]
    assert [r.filter for r in result.removed] == ["instruction length", "unsuitable task", "language"]
    assert "empty answer" not in set(result.funnel.step)


def test_wrong_record_type_is_a_clear_error():
    with pytest.raises(FilterError, match="QAPair"):
        run_filters([{"instruction": "x", "answer": "y"}])
    with pytest.raises(FilterError, match="Instruction records or strings"):
        filter_instructions([42])
