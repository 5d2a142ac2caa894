"""The kit's one rule for where sentences end (text/sentences.py), used by passage cuts, answer-first targets,
evidence, claims and support scores."""

import pytest

from lecture_utils.gather.corpus import book_passages, clean_book
from lecture_utils.text.sentences import ends_sentence, sentence_spans, split_sentences


def test_titles_initials_and_decimals_do_not_end_a_sentence():
    text = ("Mr. Darcy and Mrs. Bennet meet Dr. Jones at 3.5 miles from town. J. Austen wrote it! "
            "Did she? Yes... it is true.")
    assert split_sentences(text) == [
        "Mr. Darcy and Mrs. Bennet meet Dr. Jones at 3.5 miles from town.",
        "J. Austen wrote it!",
        "Did she?",
        "Yes... it is true.",
    ]


def test_dialogue_tags_stay_with_their_speech_and_narration_after_it_is_its_own():
    text = "\u201cOh! my dear,\u201d said she, \u201cwe shall have a ball.\u201d She left the room. \u201cNo!\u201d cried Kitty."
    assert split_sentences(text) == ["\u201cOh! my dear,\u201d said she, \u201cwe shall have a ball.\u201d",
                                     "She left the room.", "\u201cNo!\u201d cried Kitty."]


def test_a_quotation_opening_before_a_title_and_a_no_that_ends_a_reply():
    assert split_sentences("'Mr. Darcy is here,' said she. He bowed.") == ["'Mr. Darcy is here,' said she.",
                                                                          "He bowed."]
    text = "\u201cWill you dance?\u201d \u201cNo.\u201d Elizabeth turned away. See No. 5 above."
    assert split_sentences(text) == ["\u201cWill you dance?\u201d", "\u201cNo.\u201d", "Elizabeth turned away.",
                                     "See No. 5 above."]
    assert ends_sentence("She answered no.")


def test_a_possessive_or_an_italic_close_ends_a_sentence():
    # "husband\u2019s." is no initial, and Project Gutenberg closes italics with "_"
    text = "They dined at her husband\u2019s. The party went on. It was _very_ late._ Everyone slept."
    assert split_sentences(text) == ["They dined at her husband\u2019s.", "The party went on.",
                                     "It was _very_ late._", "Everyone slept."]


def test_citations_stay_with_their_sentence():
    text = "The estate is entailed. [ch02-p001] Elizabeth walks [ch01-p002]. She is tired."
    assert split_sentences(text) == ["The estate is entailed. [ch02-p001]", "Elizabeth walks [ch01-p002].",
                                     "She is tired."]
    assert split_sentences("") == []


def test_lists_and_line_breaks():
    text = "Three reasons:\n1. The estate is entailed\n2. Mr. Collins proposes. He is refused.\n- Jane falls ill"
    assert split_sentences(text) == ["Three reasons:", "1. The estate is entailed", "2. Mr. Collins proposes.",
                                     "He is refused.", "- Jane falls ill"]
    assert [text[s:e] for s, e in sentence_spans(text)] == split_sentences(text)


def test_ends_sentence_knows_a_text_cut_mid_way():
    assert ends_sentence("She left the room.") and ends_sentence("\u201cNo!\u201d") and ends_sentence("It was late._")
    assert not ends_sentence("She left the room and") and not ends_sentence("He bowed to Mr.")
    assert not ends_sentence("")


@pytest.mark.filterwarnings("ignore:.*START/END markers")
def test_passage_cuts_never_fall_after_a_title():
    # a paragraph long enough to be cut: a cut after "Mr." would start a passage with "Collins replied ...",
    # and a question written from it would make Collins the one who replied
    sentence = "The visitor waited by the window while Mr. Collins replied at length about the parish and its needs. "
    book = clean_book("CHAPTER I.\n\n" + sentence * 40, source="test.txt", title="Test")
    passages = book_passages(book, target_chars=600)
    assert len(passages) > 3
    assert all(not p.text.startswith("Collins") and ends_sentence(p.text) for p in passages)
