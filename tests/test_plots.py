"""Every plot returns a titled, labelled, readable Figure that renders to PNG, and shows what its data says."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from lecture_utils.ask import coverage
from lecture_utils.notebook import plots
from lecture_utils.prompts import CATEGORIES
from lecture_utils.records import Decision, Instruction, Passage


def texts_of(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text().strip()]


def check(fig: Figure, path, xlabel: bool = True, ylabel: bool = True) -> str:
    """The figure is titled, its first axes labelled, every text at least 10 pt, and it renders; returns the title."""
    assert isinstance(fig, Figure)
    title = fig.get_suptitle() or fig.axes[0].get_title()
    assert title.strip()
    ax = fig.axes[0]
    assert not xlabel or ax.get_xlabel().strip()
    assert not ylabel or ax.get_ylabel().strip()
    small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text) if t.get_text().strip() and t.get_fontsize() < 10]
    assert not small, f"text below 10 pt: {small[:3]}"
    fig.savefig(path)
    assert path.stat().st_size > 5_000
    return title


@pytest.fixture(autouse=True)
def no_figures_left_open():
    before = len(plt.get_fignums())
    yield
    assert len(plt.get_fignums()) == before, "plot functions must close their figures in pyplot"


def _instructions() -> list[Instruction]:
    texts = [("Describe the Netherfield ball.", "plot and events"), ("Describe Darcy's first proposal.", "plot and events"),
             ("Explain the entail on Longbourn.", "social and historical context"),
             ("Explain how Jane falls ill at Netherfield.", "plot and events"),
             ("Why does Charlotte accept Mr Collins?", "character analysis"),
             ("Compare the two proposals.", "creative and comparative"), ("Describe the visit to Pemberley.", "relationships"),
             ("Summarise chapter 34.", "plot and events")]
    return [Instruction(f"i{k:03d}", t, c, run=1) for k, (t, c) in enumerate(texts)]


def test_passage_lengths(tmp_path):
    passages = [Passage(f"ch01-p{k:03d}", "b.txt", "word " * (50 + 10 * k), 0, 1, 1) for k in range(30)]
    title = check(plots.passage_lengths(passages), tmp_path / "lengths.png")
    assert "30 passages" in title
    fig = plots.passage_lengths([100, 200, 300])  # plain lengths work too
    assert any("median 200" in t for t in texts_of(fig))


def test_character_mentions_draws_the_counted_table(tmp_path):
    table = pd.DataFrame({"Elizabeth": [5, 0, 9], "Darcy": [1, 4, 0]}, index=pd.Index([1, 2, 3], name="chapter"))
    fig = plots.character_mentions(table)
    check(fig, tmp_path / "mentions.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["Elizabeth", "Darcy"]  # most mentioned first
    passages = [Passage("ch01-p001", "b.txt", "Lizzy laughed, and Darcy did not; Elizabeth saw it.", 0, 50, 1),
                Passage("ch02-p001", "b.txt", "A letter from Jane reached Elizabeth.", 50, 87, 2)]
    fig = plots.character_mentions(coverage.character_mentions(passages))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "Elizabeth" and {"Darcy", "Jane"} <= set(labels)


def test_category_counts_shows_every_category_including_zeros(tmp_path):
    fig = plots.category_counts(_instructions())
    title = check(fig, tmp_path / "categories.png")
    assert "8 instructions" in title
    labels = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_yticklabels()]
    assert labels == CATEGORIES
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths[CATEGORIES.index("plot and events")] == 4 and widths[CATEGORIES.index("themes and ideas")] == 0
    assert "8 instructions" in plots.category_counts([i.category for i in _instructions()]).axes[0].get_title()


def test_similarity_hist_marks_the_threshold(tmp_path):
    sims = [0.1, 0.2, 0.25, 0.3, 0.72, 0.9, 0.4]
    fig = plots.similarity_hist(sims, threshold=0.7)
    check(fig, tmp_path / "sims.png")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("threshold 0.7: 2 above" in t for t in legend)


def test_novelty_by_run(tmp_path):
    table = pd.DataFrame({"run": [-1, 1, 2], "label": ["seeds", "run 1", "run 2"], "generated": [16, 20, 20],
                          "new": [16, 17, 9], "repeats_earlier": [0, 2, 10], "repeats_same_run": [0, 1, 1],
                          "unique_so_far": [16, 33, 42]})
    fig = plots.novelty_by_run(table)
    check(fig, tmp_path / "novelty.png")
    shown = texts_of(fig)
    assert {"+16", "+17", "+9", "42"} <= set(shown)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["seeds", "run 1", "run 2"]


def test_chapter_coverage_keeps_zero_chapters_visible(tmp_path):
    counts = pd.Series({1: 3, 2: 0, 5: 2})
    fig = plots.chapter_coverage(counts, n_chapters=61)
    title = check(fig, tmp_path / "chapters.png")
    assert "3 of 61" not in title and "2 of 61" in title
    assert len(fig.axes[0].patches) == 61  # one bar per chapter, empty ones included
    assert any("untouched (59)" in t for t in texts_of(fig))


def test_funnel(tmp_path):
    df = pd.DataFrame({"step": ["generated", "length bounds", "refusal or not in the text"],
                       "removed": [0, 12, 21], "remaining": [240, 228, 207]})
    fig = plots.funnel(df)
    title = check(fig, tmp_path / "funnel.png")
    assert "240 in, 207 kept" in title
    assert any("228  (−12)" in t for t in texts_of(fig))


def test_coverage_heatmap_wide_and_long(tmp_path):
    long = pd.DataFrame({"chapter": [1, 1, 3, 3, 3], "category": ["plot and events", "relationships", "plot and events",
                                                                  "plot and events", "themes and ideas"]})
    fig = plots.coverage_heatmap(long, n_chapters=10)
    title = check(fig, tmp_path / "coverage.png")
    assert "8 of 10 chapters with nothing" in title
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (3, 10) and image[0, 2] == 2
    wide = pd.crosstab(long["chapter"], long["category"])
    assert "8 of 10" in plots.coverage_heatmap(wide, n_chapters=10).axes[0].get_title()


def test_decision_summary_counts_the_last_decision_per_pair(tmp_path):
    decisions = [Decision("p1", "fix", "too long"), Decision("p1", "accept", ""), Decision("p2", "discard", "not in the text"),
                 Decision("p3", "discard", "not in the text"), Decision("p4", "accept", "good")]
    fig = plots.decision_summary(decisions)
    title = check(fig, tmp_path / "decisions.png")
    assert "4 pairs" in title
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [2, 0, 2]  # accept, fix, discard
    reasons = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert reasons[0] == "not in the text" and "too long" not in reasons


def test_a_long_review_reason_takes_two_lines_so_labels_do_not_run_into_each_other(tmp_path):
    long = ("right (Darcy), but the copied sentence opens 'on the contrary', which leans on the sentence before it "
            "(Bingley's delight in the assembly)")
    fig = plots.decision_summary([Decision("p1", "fix", long), Decision("p2", "accept", "right")])
    check(fig, tmp_path / "decisions.png")
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert all(label.count("\n") <= 1 for label in labels)
    assert any(label.startswith("right (Darcy)") and label.endswith("...") for label in labels)


@pytest.mark.parametrize("call", [
    lambda: plots.passage_lengths([]),
    lambda: plots.category_counts([]),
    lambda: plots.similarity_hist([]),
    lambda: plots.chapter_coverage(pd.Series(dtype=int)),
    lambda: plots.funnel(pd.DataFrame(columns=["step", "removed", "remaining"])),
    lambda: plots.decision_summary([]),
    lambda: plots.novelty_by_run(pd.DataFrame(columns=["run", "label", "new", "repeats_earlier"])),
    lambda: plots.coverage_heatmap(pd.DataFrame(columns=["chapter", "category"]), n_chapters=61),
    lambda: plots.character_mentions(pd.DataFrame()),
])
def test_empty_data_gives_a_figure_that_says_so(call, tmp_path):
    fig = call()
    assert isinstance(fig, Figure) and (fig.get_suptitle() or fig.axes[0].get_title())
    fig.savefig(tmp_path / "empty.png")


def test_grounding_scores_labels_every_answer_even_a_zero():
    from lecture_utils.records import QAPair

    pairs = [QAPair(id=f"p{i}", instruction_id=f"i{i}", instruction=f"Question number {i}?", category="c",
                    answer="a", grounding=g, not_in_text=nit) for i, (g, nit) in enumerate([(1.0, False), (0.0, False), (None, True)])]
    fig = plots.grounding_scores(pairs)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["1.00", "0.00", "not in the text"]
