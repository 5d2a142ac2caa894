import pytest

from lecture_utils.prompts import NOT_IN_TEXT
from lecture_utils.records import Passage, QAPair, Retrieved
from lecture_utils.text.grounding import (
    GroundingError,
    add_grounding,
    check_citations,
    content_words,
    coverage_table,
    grounding_score,
    inline_citations,
    mark_unsupported,
    pair_grounding,
    sentence_support,
    support_score,
    uncited_chapters,
)

# A tiny corpus written for these tests.
PASSAGES = [
    Passage("ch01-p001", "book.txt", "The family lived at a quiet house. The eldest sister was kind to everyone.", 0, 70, 1),
    Passage("ch01-p002", "book.txt", "Elizabeth walked three miles to Netherfield to see her sister Jane, who was ill.",
            70, 150, 1),
    Passage("ch02-p001", "book.txt", "The estate was entailed on a cousin, so the daughters could not inherit it.",
            150, 230, 2),
    Passage("ch03-p001", "book.txt", "A letter arrived from London with news of the regiment.", 230, 290, 3),
]


def qa(answer, retrieved=("ch01-p002", "ch02-p001"), cited=("ch01-p002",), category="plot", **kw) -> QAPair:
    return QAPair(id=kw.pop("id", "q1"), instruction_id="i1", instruction="What happens?", category=category,
                  answer=answer, retrieved=[Retrieved(r, 1.0) for r in retrieved], cited=list(cited), **kw)


def test_content_words_drop_stop_words_and_citations():
    assert content_words("This is Darcy's estate, and these are the daughters [ch01-p002].") == [
        "darcy", "estate", "daughter"]


def test_support_score_hand_computed():
    # content words elizabeth, run, netherfield: 2 of 3 in the passage;
    # bigrams (elizabeth run), (run to), (to netherfield): 1 of 3. Score = 0.75 * 2/3 + 0.25 * 1/3.
    score = support_score("Elizabeth runs to Netherfield.", PASSAGES[1].text)
    assert score == pytest.approx(0.75 * 2 / 3 + 0.25 * 1 / 3)
    # 'walks' meets 'walked'; bigrams (elizabeth walk) and (to netherfield) of 3 are in the passage.
    assert support_score("Elizabeth walks to Netherfield.", PASSAGES[1].text) == pytest.approx(0.75 + 0.25 * 2 / 3)
    assert support_score("Elizabeth walked three miles to Netherfield.", PASSAGES[1].text) == pytest.approx(1.0)


def test_sentence_support_uses_the_best_single_passage():
    texts = [p.text for p in PASSAGES]
    answer = ("Elizabeth walked to Netherfield to see Jane. The estate was entailed on a cousin. "
              "A dragon burned Pemberley to the ground.")
    support = sentence_support(answer, texts)
    assert [s.supported for s in support] == [True, True, False]
    assert [s.passage for s in support[:2]] == [1, 2]
    assert answer[support[2].start:support[2].end] == "A dragon burned Pemberley to the ground."
    assert grounding_score(answer, texts) == pytest.approx(2 / 3)
    assert grounding_score(answer, texts, threshold=0.0) == 1.0
    assert grounding_score("", texts) == 0.0
    assert grounding_score(answer, PASSAGES) == pytest.approx(2 / 3)  # Passage objects work as well
    with pytest.raises(GroundingError, match="p.text"):
        grounding_score(answer, [{"text": "x"}])


def test_words_spread_over_two_passages_do_not_count_as_support():
    # Each half is in a different passage; neither passage supports the sentence on its own.
    sentence = "Elizabeth walked three miles to Netherfield because the estate was entailed on a cousin."
    assert max(support_score(sentence, p.text) for p in PASSAGES) < 0.6
    assert not sentence_support(sentence, [p.text for p in PASSAGES])[0].supported


def test_pair_grounding_skips_not_in_text_answers():
    assert pair_grounding(qa("Elizabeth walked three miles to Netherfield."), PASSAGES) == 1.0
    assert pair_grounding(qa("A dragon ate the cousin."), PASSAGES) == 0.0
    assert pair_grounding(qa(NOT_IN_TEXT, cited=(), not_in_text=True), PASSAGES) is None
    pairs = [qa("Elizabeth walked three miles to Netherfield. A dragon ate the cousin."), qa(NOT_IN_TEXT)]
    assert [p.grounding for p in add_grounding(pairs, PASSAGES)] == [0.5, None]
    assert pairs[0].grounding is None  # the input is left as it was


def test_check_citations():
    assert check_citations(qa("Elizabeth walked to Netherfield.")) == []
    problems = check_citations(qa("She walked.", cited=("ch01-p002", "ch09-p999")))
    assert problems == ["cites ch09-p999, which is not one of the retrieved passages"]
    assert check_citations(qa("She walked.", cited=())) == ["cites no passage, though it answers from the text"]
    assert check_citations(qa(NOT_IN_TEXT, cited=(), not_in_text=True)) == []
    assert "yet cites" in check_citations(qa(NOT_IN_TEXT, not_in_text=True))[0]


def test_inline_citations_are_checked_too():
    answer = "She walked [ch01-p002]. The letter came [ch03-p001; ch01-p002]."
    assert inline_citations(answer) == ["ch01-p002", "ch03-p001"]
    assert check_citations(qa(answer, cited=())) == ["cites ch03-p001, which is not one of the retrieved passages"]


def test_mark_unsupported_html_and_markdown():
    texts = [PASSAGES[1].text]
    answer = "Elizabeth walked three miles to Netherfield. A dragon <b>burned</b> Rome."
    marked = mark_unsupported(answer, texts)
    assert marked.startswith("Elizabeth walked three miles to Netherfield. <mark")
    assert "A dragon &lt;b&gt;burned&lt;/b&gt; Rome.</mark>" in marked  # escaped: answers are untrusted text
    md = mark_unsupported(answer, texts, fmt="markdown")
    assert md.endswith("_A dragon <b>burned</b> Rome._") and "**[unsupported" in md
    with pytest.raises(GroundingError, match="html"):
        mark_unsupported(answer, texts, fmt="pdf")


def test_coverage_table_and_uncited_chapters():
    pairs = [
        qa("a", cited=("ch01-p002", "ch01-p001"), retrieved=("ch01-p001", "ch01-p002"), id="q1"),  # ch1 once
        qa("b", cited=("ch02-p001",), category="theme", id="q2"),
        qa("c", cited=("ch01-p002", "ch02-p001"), category="theme", id="q3"),
        qa("d", cited=("ch99-p001",), id="q4"),  # unknown id: ignored here, flagged by check_citations
    ]
    table = coverage_table(pairs, PASSAGES)
    assert table.index.name == "chapter" and list(table.index) == [1, 2, 3]
    assert list(table.columns) == ["plot", "theme"]
    assert table.loc[1].tolist() == [1, 1]
    assert table.loc[2].tolist() == [0, 2]
    assert table.loc[3].tolist() == [0, 0]
    assert uncited_chapters(pairs, PASSAGES) == [3]


def test_coverage_of_documents_uses_sources():
    docs = [Passage("guide-s01-p001", "guide.md", "Install the tool.", 0, 17, None, "Install"),
            Passage("faq-s01-p001", "faq.md", "Ask questions here.", 0, 19, None, "FAQ")]
    pairs = [qa("x", cited=("guide-s01-p001",), retrieved=("guide-s01-p001",))]
    table = coverage_table(pairs, {p.id: p for p in docs})
    assert table.index.name == "source" and table.loc["guide.md", "plot"] == 1
    assert uncited_chapters(pairs, docs) == ["faq.md"]
