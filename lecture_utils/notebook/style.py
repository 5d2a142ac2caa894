"""The kit's figure style and the small helpers every plot shares: a style context that hands back a figure pyplot no
longer tracks, integer count axes, wrapped labels, an empty-data message, chapter ticks, and reading one field of
records given as a DataFrame, dicts or dataclasses. (No backend is chosen here: matplotlib falls back to Agg by itself
where there is no display.)"""

from __future__ import annotations

import functools
import textwrap
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STYLE = {
    "font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
    "legend.fontsize": 10, "figure.titlesize": 14, "axes.spines.top": False, "axes.spines.right": False,
    "figure.dpi": 100, "savefig.dpi": 120,
}
WIDE = (9.5, 4.8)  # fits a notebook cell at full width
STATUS_COLORS = {"accept": "#2e8b57", "fix": "#e69f00", "discard": "#c0392b"}
NEW, REPEAT, SAME, ZERO = "#2e8b57", "#e69f00", "#b0b0b0", "#c0392b"


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw inside the kit's style and hand back a figure pyplot no longer tracks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with plt.rc_context(STYLE):
            fig = fn(*args, **kwargs)
        plt.close(fig)
        return fig

    return wrapper


def counts_axis(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5 instructions


def wrap(label: Any, width: int = 24) -> str:
    return textwrap.fill(str(label), width)


def nothing(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def field_of(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, dict):
        return item.get(name, default)
    return getattr(item, name, default)


def column(data: Any, name: str) -> list:
    """One field of every record, whether the data is a DataFrame, a list of dicts or a list of dataclasses."""
    if isinstance(data, pd.DataFrame):
        return list(data[name]) if name in data.columns else []
    return [field_of(item, name) for item in data]


def chapter_axis(ax, chapters: Sequence[Any]) -> None:
    """Tick every chapter when there are few, every fifth (plus chapter 1) when there are many."""
    positions = np.arange(len(chapters))
    if len(chapters) <= 30 or not all(isinstance(c, (int, np.integer)) for c in chapters):
        ax.set_xticks(positions, [str(c) for c in chapters], rotation=0 if len(chapters) <= 30 else 90)
        return
    shown = [i for i, c in enumerate(chapters) if c == 1 or c % 5 == 0]
    ax.set_xticks(shown, [str(chapters[i]) for i in shown])
    ax.set_xticks(positions, minor=True)


def per_chapter(counts: Any, n_chapters: int | None) -> pd.Series:
    if isinstance(counts, pd.Series):
        series = counts
    elif isinstance(counts, dict):
        series = pd.Series(counts)
    else:  # a plain list of counts is chapters 1..len
        series = pd.Series(list(counts), index=range(1, len(list(counts)) + 1))
    if len(series) and all(isinstance(c, (int, np.integer)) for c in series.index):
        last = max(int(max(series.index)), n_chapters or 0)
        series = series.reindex(range(1, last + 1), fill_value=0)
    return series.fillna(0).astype(int)


def all_strings(data: Any) -> bool:
    return not isinstance(data, pd.DataFrame) and all(isinstance(x, str) for x in data)
