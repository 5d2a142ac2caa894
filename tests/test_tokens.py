"""The kit's one tokenizer: plain words, the search preset, and the ascii-only option grounding scores depend on."""

from __future__ import annotations

from lecture_utils.answer import filters
from lecture_utils.text import grounding
from lecture_utils.text.dedup import rouge_tokens
from lecture_utils.text.tokens import SEARCH_STOP_WORDS, STOP_WORDS, search_words, words


def test_words_lower_case_and_keep_an_apostrophe_inside_a_word():
    assert words("Mr. Darcy\u2019s pride, and ELIZABETH's _prejudice_!") == ["mr", "darcy's", "pride", "and",
                                                                             "elizabeth's", "prejudice"]
    assert words("don\u2019t") == words("don't") == ["don't"]  # curly and straight apostrophes read the same
    assert words("'Tis well-known, o'clock 1813") == ["tis", "well", "known", "o'clock", "1813"]
    assert words("Caf\u00e9 na\u00efve") == ["caf\u00e9", "na\u00efve"]
    assert words("  ...  ") == []


def test_stop_words_are_left_out_when_asked():
    assert words("The cat and the hat", stop_words=STOP_WORDS) == ["cat", "hat"]
    assert STOP_WORDS < SEARCH_STOP_WORDS and {"dont", "upon", "also"} <= SEARCH_STOP_WORDS - STOP_WORDS


def test_search_words_fold_case_accents_possessives_and_stop_words():
    assert search_words("Mr. Darcy's pride, and Elizabeth\u2019s PREJUDICE!") == ["mr", "darcy", "pride", "elizabeth",
                                                                                "prejudice"]
    assert search_words("Don't you think she was... _very_ well?") == ["think"]
    assert search_words("The Caf\u00e9 on Rue Na\u00efve, 1813") == ["cafe", "rue", "naive", "1813"]
    assert search_words("well-known o'clock") == ["known", "oclock"]
    assert search_words("  the of and  ") == []


def test_ascii_only_splits_words_at_other_letters():
    # grounding's support scores were measured on a-z0-9 words; the option keeps them as they were
    assert words("t\u00eate-\u00e0-t\u00eate, Darcy's", ascii_only=True) == ["t", "te", "t", "te", "darcy's"]
    assert grounding.content_words("Darcy\u2019s letter [ch35-p001] arrives.") == ["darcy", "letter", "arrive"]


def test_rouge_tokens_stay_apart():
    # rouge-score's tokens: no apostrophes, so "darcy's" is two words there and one here
    assert rouge_tokens("Darcy's letter") == ["darcy", "s", "letter"]
    assert words("Darcy's letter") == ["darcy's", "letter"]


def test_the_language_filter_reads_curly_and_straight_apostrophes_alike():
    config = filters.FilterConfig()
    straight = "Consider Mr. Collins's respectability, and Charlotte's prudent, steady character."
    curly = straight.replace("'", "\u2019")
    assert filters.language_problem(straight, config) is None
    assert filters.language_problem(curly, config) is None  # "Collins’s" is one word, not "collins" and "s"
    assert filters.language_problem("Der Hund läuft schnell über die große Wiese zum alten Haus", config)
