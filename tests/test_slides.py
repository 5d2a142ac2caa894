"""The lecture deck builds into one offline HTML file with notes on every slide and the run's figures inlined."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from lecture_utils.instructor.slides import (
    DEFAULT_SOURCE,
    Images,
    SlidesError,
    build_slides,
    markdown,
    parse_deck,
    slides_main,
)

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO.parent / "shared" / "lecture_plan.md"


def figure_png(path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([1, 2, 3], [3, 1, 2])
    ax.set_title(title)
    fig.savefig(path)
    plt.close(fig)


def deck_figures() -> list[str]:
    return re.findall(r"\(figure:([a-z0-9_.-]+)\)", DEFAULT_SOURCE.read_text())


def slide_sections(page: str) -> list[str]:
    return re.findall(r'<section class="slide.*?</section>', page, flags=re.S)


def test_deck_builds_offline_with_notes_and_the_runs_figures_inlined(tmp_path):
    names = deck_figures()
    assert len(names) >= 6, "every stage of Part 3 shows a figure"
    figures = tmp_path / "figures"
    figures.mkdir()
    present, absent = names[:-2], names[-2:]
    for name in present:
        figure_png(figures / name, name)

    deck = build_slides(DEFAULT_SOURCE, figures, tmp_path / "build" / "index.html")
    page = deck.path.read_text()

    assert not re.search(r"https?://", page)
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page):
        assert attr.startswith(("data:", "#")), attr
    assert "<link" not in page and "<script src" not in page

    sections = slide_sections(page)
    assert len(sections) == len(deck.slides) >= 15
    for k, section in enumerate(sections, 1):
        notes = re.search(r'<aside class="notes">(.*?)</aside>', section, flags=re.S).group(1)
        assert len(re.sub(r"<[^>]+>", "", notes).split()) >= 10, f"slide {k} has no real speaker notes"
    assert "-->" not in page.split("<style>")[1].split("</style>")[0] and "--&gt;" not in page  # no stray comment text

    assert sorted(deck.figures_used) == sorted(present) and deck.missing == absent
    assert page.count("data:image/png;base64,") == len(present)
    assert page.count("PLACEHOLDER: figure missing") == len(absent)
    for name in absent:
        assert name in page


def test_deck_covers_the_lecture_in_sixty_minutes():
    slides = parse_deck(DEFAULT_SOURCE.read_text())
    assert sum(s.minutes for s in slides) == 60
    assert all(s.minutes > 0 for s in slides)
    text = DEFAULT_SOURCE.read_text()
    for fact in ("175", "52,000", "$600", "Pre-training", "Instruction tuning", "RLHF", "Find it", "synthesize it",
                 "Stage 1", "Stage 2", "Stage 3", "Stage 4", "Stage 5", "Takeaways", "Lecture 11"):
        assert fact in text, fact


@pytest.mark.skipif(not PLAN.exists(), reason="the lecture plan (../shared/lecture_plan.md) is not beside the repo")
def test_deck_is_in_our_own_words():
    def grams(text: str, n: int = 7) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9$,']+", text.lower())
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}

    shared = grams(PLAN.read_text()) & grams(DEFAULT_SOURCE.read_text())
    assert not shared, f"phrases copied from the lecture plan: {sorted(' '.join(g) for g in shared)[:5]}"


def test_without_a_run_every_figure_is_a_labelled_placeholder(tmp_path):
    deck = build_slides(DEFAULT_SOURCE, tmp_path / "no-run", tmp_path / "index.html")
    assert deck.figures_used == [] and deck.missing == deck_figures()
    assert "base64" not in deck.path.read_text()


def test_markdown_subset(tmp_path):
    images = Images(None, tmp_path)
    out = markdown("## Title *it*\n\n- one **bold**\n  - nested `a<b`\n- two\n\n1. first\n2. second\n\n"
                   "> a quote\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\nx = '<tag>'\n```\n\nplain *text* here", images)
    assert "<h2>Title <em>it</em></h2>" in out
    assert "<ul><li>one <strong>bold</strong><ul><li>nested <code>a&lt;b</code></li></ul></li><li>two</li></ul>" in out
    assert "<ol><li>first</li><li>second</li></ol>" in out
    assert "<blockquote>a quote</blockquote>" in out
    assert "<th>a</th>" in out and "<td>2</td>" in out
    assert "<pre><code>x = &#x27;&lt;tag&gt;&#x27;</code></pre>" in out
    assert "<p>plain <em>text</em> here</p>" in out


def test_remote_images_and_missing_notes_are_refused(tmp_path):
    remote = tmp_path / "remote.md"
    remote.write_text("## A\n\n![logo](https://example.org/logo.png)\n\nNote:\n[1 min] notes\n")
    with pytest.raises(SlidesError, match="remote"):
        build_slides(remote, None, tmp_path / "a.html")
    silent = tmp_path / "silent.md"
    silent.write_text("## A\n\nNote:\n[1 min] fine\n\n---\n\n## B\n\nno notes here\n")
    with pytest.raises(SlidesError, match="slide 2 .* no speaker notes"):
        build_slides(silent, None, tmp_path / "b.html")
    assert not (tmp_path / "b.html").exists()


def test_command_line_builds_the_deck(tmp_path, capsys):
    out = tmp_path / "deck.html"
    assert slides_main(["--figures", str(tmp_path), "--out", str(out)]) == 0
    assert out.exists() and "60 planned minutes" in capsys.readouterr().out
