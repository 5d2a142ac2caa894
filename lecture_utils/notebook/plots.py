"""The kit's plots: each takes plain data (lists, dicts, DataFrames) and returns a titled, labelled matplotlib Figure.

Nothing here calls show(): a notebook displays the returned figure, a script saves it with fig.savefig(path).
Figures are closed in pyplot before they are returned, so a notebook shows each one once and loops leak nothing.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap, PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from lecture_utils.notebook.style import (
    NEW,
    REPEAT,
    SAME,
    STATUS_COLORS,
    WIDE,
    ZERO,
    all_strings,
    chapter_axis,
    column,
    counts_axis,
    field_of,
    nothing,
    per_chapter,
    styled,
    wrap,
)
from lecture_utils.prompts import CATEGORIES

# --- Stage 1 ------------------------------------------------------------------------------------------------------


@styled
def passage_lengths(passages: Iterable[Any], bins: int = 40) -> Figure:
    """Histogram of passage lengths in characters (passages, dicts with "text", strings or plain lengths)."""
    lengths = []
    for p in passages:
        text = field_of(p, "text", p)
        lengths.append(int(text) if isinstance(text, (int, np.integer)) else len(str(text)))
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    ax.set_title(f"Passage lengths ({len(lengths):,} passages)")
    ax.set_xlabel("characters per passage")
    ax.set_ylabel("passages")
    if not lengths:
        nothing(ax, "no passages")
        return fig
    ax.hist(lengths, bins=bins, color="#4c72b0", edgecolor="white")
    median = float(np.median(lengths))
    ax.axvline(median, color="0.2", linestyle="--", linewidth=1.5,
               label=f"median {median:,.0f} (min {min(lengths):,}, max {max(lengths):,})")
    ax.legend(loc="upper right", frameon=False)
    return fig


@styled
def character_mentions(data: pd.DataFrame) -> Figure:
    """Heatmap of who is mentioned where: a chapters x characters table of counts (coverage.character_mentions)."""
    table = data.loc[:, data.sum(axis=0).sort_values(ascending=False, kind="stable").index]  # most mentioned on top
    fig, ax = plt.subplots(figsize=(10, 5.6), layout="constrained")
    ax.set_title("Who is mentioned where: mentions per chapter")
    ax.set_xlabel("chapter" if table.index.name in (None, "chapter") else str(table.index.name))
    ax.set_ylabel("character")
    if table.empty or table.to_numpy().sum() == 0:
        nothing(ax, "no mentions found")
        return fig
    values = table.to_numpy().T
    # square-root colour scale: a few Elizabeth-heavy chapters would otherwise wash out everyone else
    image = ax.imshow(values, aspect="auto", cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=max(values.max(), 1)),
                      interpolation="nearest")
    ax.set_yticks(np.arange(len(table.columns)), list(table.columns))
    chapter_axis(ax, list(table.index))
    ax.spines[:].set_visible(False)
    fig.colorbar(image, ax=ax, label="mentions", shrink=0.9, pad=0.01)
    return fig


# --- Stage 2 ------------------------------------------------------------------------------------------------------


@styled
def category_counts(instructions: Any, categories: Sequence[str] | None = None) -> Figure:
    """Horizontal bars: instructions per category (every category shown, zeros included)."""
    cats = [str(c) for c in (column(instructions, "category") if not all_strings(instructions) else instructions)]
    counts = Counter(cats)
    order = list(categories or CATEGORIES)
    order += sorted(c for c in counts if c not in order)
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    ax.set_title(f"Instructions per category ({len(cats):,} instructions)")
    ax.set_xlabel("instructions")
    ax.set_ylabel("category")
    values = [counts.get(c, 0) for c in order]
    y = np.arange(len(order))
    ax.barh(y, values, color=["#4c72b0" if v else ZERO for v in values])
    ax.set_yticks(y, [wrap(c, 30) for c in order])
    ax.invert_yaxis()
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v}", va="center", fontsize=10, color=ZERO if v == 0 else "0.15")
    ax.set_xlim(0, max(values + [1]) * 1.12)
    counts_axis(ax.xaxis)
    return fig


def yield_by_type(asked: Sequence[str], kept: Sequence[str]) -> Figure:
    """Horizontal bars per task type: tasks asked for, and how many of them the checks kept."""
    asked_n, kept_n = Counter(asked), Counter(kept)
    order = list(dict.fromkeys(asked))
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    ax.set_title(f"Which task types does the teacher carry? ({sum(kept_n.values())} of {len(asked)} tasks kept)")
    ax.set_xlabel("tasks")
    y = np.arange(len(order))
    ax.barh(y, [asked_n[t] for t in order], color="#d9d9d9", label="asked for")
    ax.barh(y, [kept_n.get(t, 0) for t in order], color="#4c72b0", label="kept by the checks")
    ax.set_yticks(y, [wrap(t, 30) for t in order])
    ax.invert_yaxis()
    for yi, t in zip(y, order):
        ax.text(asked_n[t], yi, f" {kept_n.get(t, 0)}/{asked_n[t]}", va="center", fontsize=10, color="0.15")
    ax.set_xlim(0, max(list(asked_n.values()) + [1]) * 1.2)
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    counts_axis(ax.xaxis)
    return fig


def dataset_qualities(figures: dict) -> Figure:
    """Task-type shares of a dataset (quality.figures), with the lines a balanced dataset stays between, and its
    "who" and copying shares in the title."""
    types = figures.get("types") or {}
    order = list(types)
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    ax.set_title(f"What kinds of task? {figures['pairs']} pairs: \"who\" lookups {figures['who_share']:.0%}, answers "
                 f"copying 12+ words of the source {figures['copied_share']:.0%}")
    y = np.arange(len(order))
    ax.barh(y, [types[t] for t in order], color="#4c72b0")
    ax.set_yticks(y, [wrap(t, 30) for t in order])
    ax.invert_yaxis()
    for yi, t in zip(y, order):
        ax.text(types[t], yi, f" {types[t]:.0%}", va="center", fontsize=10, color="0.15")
    ax.axvline(0.08, color="0.5", linestyle=":", label="8%: a type worth teaching")
    ax.axvline(0.30, color="#c44e52", linestyle="--", label="30%: no type above this")
    ax.set_xlim(0, max(list(types.values()) + [0.35]) * 1.15)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of the pairs")
    ax.legend(loc="lower right")
    return fig


@styled
def similarity_hist(sims: Sequence[float], threshold: float = 0.7, xlabel: str = "ROUGE-L similarity of a pair",
                    title: str | None = None) -> Figure:
    """Histogram of similarities with the dedup threshold marked; bars past it are what dedup would remove."""
    values = np.asarray(list(sims), dtype=float)
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    ax.set_title(title or f"How similar are the instructions? ({len(values):,} pairs)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pairs" if "pair" in xlabel else "instructions")
    if not len(values):
        nothing(ax, "nothing to compare")
        return fig
    edges = np.linspace(0, 1, 41)
    counts, _ = np.histogram(np.clip(values, 0, 1), bins=edges)
    colors = [ZERO if left >= threshold - 1e-9 else "#4c72b0" for left in edges[:-1]]
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=colors, edgecolor="white")
    above = int((values > threshold).sum())
    ax.axvline(threshold, color="0.15", linestyle="--", linewidth=1.5,
               label=f"threshold {threshold:g}: {above:,} above it ({above / len(values):.1%})")
    ax.axvline(float(values.mean()), color="#e69f00", linestyle="-", linewidth=2, zorder=3,
               label=f"mean {values.mean():.2f}")
    ax.set_xlim(0, 1)
    counts_axis(ax.yaxis)
    ax.legend(loc="upper right", frameon=False)
    return fig


@styled
def novelty_by_run(table: pd.DataFrame) -> Figure:
    """Stacked bars per run (new / repeats an earlier run / repeats itself) and the running count of unique ones."""
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    ax.set_title("What each run adds: new instructions versus repeats")
    ax.set_xlabel("run (in order)")
    ax.set_ylabel("instructions")
    if table is None or len(table) == 0:
        nothing(ax, "no runs")
        return fig
    labels = list(table["label"]) if "label" in table else [str(r) for r in table["run"]]
    x = np.arange(len(table))
    new = table["new"].to_numpy()
    earlier = table["repeats_earlier"].to_numpy()
    same = table["repeats_same_run"].to_numpy() if "repeats_same_run" in table else np.zeros_like(new)
    width = 0.6
    ax.bar(x, new, width, color=NEW, label="new")
    ax.bar(x, earlier, width, bottom=new, color=REPEAT, label="repeats an earlier run")
    ax.bar(x, same, width, bottom=new + earlier, color=SAME, label="repeats its own run")
    height = float(max((new + earlier + same).max(), table["unique_so_far"].max() if "unique_so_far" in table else 0))
    for xi, n in zip(x, new):
        if n:  # the count of new ones sits inside its own segment, clear of the line
            ax.text(xi, n / 2, f"+{n}", ha="center", va="center", fontsize=11, color="white", fontweight="bold")
    if "unique_so_far" in table:
        ax.plot(x, table["unique_so_far"], color="0.2", marker="o", linewidth=1.5, label="unique so far")
        for xi, total in zip(x, table["unique_so_far"]):
            ax.annotate(f"{total}", (xi, total), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=10)
    ax.set_xticks(x, labels)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_ylim(0, height * 1.25 + 1)
    counts_axis(ax.yaxis)
    ax.legend(loc="upper left", frameon=False, ncols=2)
    return fig


@styled
def chapter_coverage(counts: Any, n_chapters: int | None = None, title: str | None = None,
                     ylabel: str = "instructions") -> Figure:
    """Bars per chapter (1..n, zeros marked in red): which chapters the instructions or pairs touch."""
    series = per_chapter(counts, n_chapters)
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    zeros = [c for c, v in series.items() if v == 0]
    ax.set_title(title or f"Chapters touched: {len(series) - len(zeros)} of {len(series)}")
    ax.set_xlabel("chapter")
    ax.set_ylabel(ylabel)
    if series.empty:
        nothing(ax, "no chapters")
        return fig
    x = np.arange(len(series))
    ax.bar(x, series.to_numpy(), color="#4c72b0", width=0.8)
    zero_x = [i for i, v in enumerate(series.to_numpy()) if v == 0]
    if zero_x:
        ax.scatter(zero_x, [0] * len(zero_x), marker="x", color=ZERO, s=30, zorder=3, clip_on=False,
                   label=f"untouched ({len(zero_x)})")
        ax.legend(loc="upper right", frameon=False)
    chapter_axis(ax, list(series.index))
    ax.set_xlim(-0.7, len(series) - 0.3)
    ax.set_ylim(0, max(series.max(), 1) * 1.1)
    counts_axis(ax.yaxis)
    return fig


# --- Stages 3-4 ---------------------------------------------------------------------------------------------------


@styled
def funnel(df: pd.DataFrame) -> Figure:
    """Horizontal funnel: what remains after each step, and how many that step removed."""
    fig, ax = plt.subplots(figsize=(WIDE[0], max(2.8, 0.55 * len(df) + 1.4)), layout="constrained")
    start = int(df["remaining"].iloc[0] + df["removed"].iloc[0]) if len(df) else 0
    end = int(df["remaining"].iloc[-1]) if len(df) else 0
    ax.set_title(f"Filter funnel: {start:,} in, {end:,} kept")
    ax.set_xlabel("remaining after the step (pale red: what the step removed)")
    ax.set_ylabel("step")
    if not len(df):
        nothing(ax, "no steps")
        return fig
    y = np.arange(len(df))
    remaining = df["remaining"].to_numpy()
    removed = df["removed"].to_numpy()
    ax.barh(y, remaining, color="#4c72b0")
    ax.barh(y, removed, left=remaining, color=ZERO, alpha=0.35)
    for yi, r, d in zip(y, remaining, removed):
        ax.text(r + d, yi, f" {r:,}" + (f"  (−{d:,})" if d else ""), va="center", fontsize=10, color="0.15")
    ax.set_yticks(y, [wrap(s, 26) for s in df["step"]])
    ax.invert_yaxis()
    ax.set_xlim(0, max(start, 1) * 1.22)
    counts_axis(ax.xaxis)
    return fig


@styled
def coverage_heatmap(df: pd.DataFrame, n_chapters: int | None = None, categories: Sequence[str] | None = None) -> Figure:
    """Chapters x categories heatmap; chapters nothing draws on are marked, so the next round can aim at them.

    `df` is either wide (index chapter, columns category, values counts) or long (one row per pair with
    "chapter" and "category" columns)."""
    if {"chapter", "category"} <= set(df.columns):
        long = df.dropna(subset=["chapter"])
        wide = pd.crosstab(long["chapter"].astype(int) if len(long) else long["chapter"], long["category"])
    else:
        wide = df
    order = [c for c in (categories or CATEGORIES) if c in wide.columns] + [c for c in wide.columns
                                                                             if c not in (categories or CATEGORIES)]
    if categories:
        order = list(categories) + [c for c in order if c not in categories]
    wide = wide.reindex(columns=order, fill_value=0)
    if len(wide) and all(isinstance(c, (int, np.integer)) for c in wide.index):
        wide = wide.reindex(range(1, max(int(max(wide.index)), n_chapters or 0) + 1), fill_value=0)
    elif n_chapters:
        wide = wide.reindex(range(1, n_chapters + 1), fill_value=0)
    wide = wide.fillna(0)
    empty_chapters = [c for c, total in wide.sum(axis=1).items() if total == 0]
    fig, ax = plt.subplots(figsize=(10, 4.8), layout="constrained")
    ax.set_title(f"Coverage: chapter × category ({len(empty_chapters)} of {len(wide)} chapters with nothing)")
    ax.set_xlabel("chapter (× = nothing cites it)")
    ax.set_ylabel("category")
    if wide.empty or wide.to_numpy().sum() == 0:
        nothing(ax, "nothing cited yet")
        return fig
    values = wide.to_numpy().T.astype(float)
    masked = np.ma.masked_where(values == 0, values)  # zeros stay white, so gaps jump out
    top = int(max(values.max(), 1))
    # a few distinct shades (counts here are small integers); zero cells are masked and stay white
    shades = plt.get_cmap("YlGnBu")(np.linspace(0.35, 1.0, min(top, 9)))  # the palest shades look like zero
    cmap = ListedColormap(shades).with_extremes(bad="white")
    image = ax.imshow(masked, aspect="auto", cmap=cmap, interpolation="nearest", vmin=0.5, vmax=top + 0.5)
    ax.set_yticks(np.arange(len(wide.columns)), [wrap(c, 30) for c in wide.columns])
    ax.set_xticks(np.arange(-0.5, len(wide), 1), minor=True)
    ax.set_yticks(np.arange(-0.5, len(wide.columns), 1), minor=True)
    ax.grid(which="minor", color="0.9", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    chapter_axis(ax, list(wide.index))
    ax.tick_params(axis="x", which="minor", length=0)
    positions = [i for i, c in enumerate(wide.index) if c in empty_chapters]
    ax.scatter(positions, [len(wide.columns) - 0.5 + 0.35] * len(positions), marker="x", color=ZERO, s=25,
               clip_on=False, zorder=3)
    ax.spines[:].set_visible(False)
    bar = fig.colorbar(image, ax=ax, label="pairs", shrink=0.9, pad=0.01)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return fig


@styled
def decision_summary(decisions: Any, top_reasons: int = 8) -> Figure:
    """Review outcome: decisions per status, and the most common reasons split by status (last decision per pair)."""
    table = decisions.copy() if isinstance(decisions, pd.DataFrame) else pd.DataFrame(
        [{"pair_id": field_of(d, "pair_id"), "status": field_of(d, "status"), "reason": field_of(d, "reason")}
         for d in decisions], columns=["pair_id", "status", "reason"])
    if "pair_id" in table and table["pair_id"].notna().any():
        table = table.drop_duplicates("pair_id", keep="last")  # the file is append-only: a later decision wins
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.8), layout="constrained", width_ratios=[1, 2.2])
    fig.suptitle(f"Review decisions ({len(table):,} pairs)")
    left.set_title("Status")
    left.set_xlabel("status")
    left.set_ylabel("pairs")
    right.set_title("Top reasons")
    right.set_xlabel("pairs")
    right.set_ylabel("reason")
    if table.empty:
        nothing(left, "no decisions yet")
        nothing(right, "no decisions yet")
        return fig
    statuses = list(STATUS_COLORS) + sorted(set(table["status"]) - set(STATUS_COLORS))
    counts = table["status"].value_counts()
    values = [int(counts.get(s, 0)) for s in statuses]
    left.bar(statuses, values, color=[STATUS_COLORS.get(s, "0.6") for s in statuses])
    for i, v in enumerate(values):
        left.text(i, v, f"{v}", ha="center", va="bottom", fontsize=10)
    left.set_ylim(0, max(values + [1]) * 1.15)
    counts_axis(left.yaxis)
    counts_axis(right.xaxis)
    reasons = table.assign(reason=table["reason"].fillna("").astype(str).str.strip().replace("", "(no reason given)"))
    cross = pd.crosstab(reasons["reason"], reasons["status"])
    cross = cross.loc[cross.sum(axis=1).sort_values(ascending=False, kind="stable").index[:top_reasons]]
    y = np.arange(len(cross))
    offset = np.zeros(len(cross))
    for s in statuses:
        if s in cross:
            right.barh(y, cross[s].to_numpy(), left=offset, color=STATUS_COLORS.get(s, "0.6"), label=s)
            offset += cross[s].to_numpy()
    # two lines at most: a long reason would run into its neighbours (the whole text is in the decisions table)
    right.set_yticks(y, [textwrap.fill(r, 40, max_lines=2, placeholder=" ...") for r in cross.index])
    right.invert_yaxis()
    right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


@styled
def grounding_scores(pairs: Sequence[Any], threshold: float = 0.6) -> Figure:
    """One bar per answer: the share of its sentences the retrieved passages support ("not in the text" answers grey)."""
    pairs = list(pairs)
    fig, ax = plt.subplots(figsize=(WIDE[0], max(2.8, 0.38 * len(pairs) + 1.4)), layout="constrained")
    ax.set_title(f"Grounding: share of each answer's sentences the passages support ({len(pairs)} answers)")
    ax.set_xlabel("supported sentences (share)")
    ax.set_ylabel("instruction")
    if not pairs:
        nothing(ax, "no answers")
        return fig
    y = np.arange(len(pairs))
    scores = [p.grounding if p.grounding is not None else 0.0 for p in pairs]
    colors = [SAME if p.not_in_text else (NEW if s >= threshold else REPEAT) for p, s in zip(pairs, scores)]
    ax.barh(y, scores, color=colors)
    for yi, p, score in zip(y, pairs, scores):  # zero-width bars need their number, or they look like missing data
        ax.text(score + 0.01, yi, "not in the text" if p.not_in_text else f"{score:.2f}", va="center", fontsize=9,
                color="0.35")
    ax.set_yticks(y, [wrap(textwrap.shorten(p.instruction, 60, placeholder="..."), 44) for p in pairs], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.axvline(threshold, color="0.3", linestyle="--", linewidth=1)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in (NEW, REPEAT, SAME)],
              labels=["well supported", "check these first", "not in the text"], loc="lower right", frameon=False)
    return fig
