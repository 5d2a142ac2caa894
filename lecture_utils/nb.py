"""Small conveniences the stage notebooks share: the run directory, saving figures, the check line."""

from __future__ import annotations

import json
import os
from pathlib import Path


def run_dir(path: str | Path) -> Path:
    """The run directory, created if needed; every stage reads and writes its files here.

    KIT_RUN_DIR in the environment wins: the test suite sets it so it never touches your own runs/demo.
    """
    path = Path(os.environ.get("KIT_RUN_DIR") or path).expanduser().resolve()
    (path / "figures").mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, run: Path, name: str) -> Path:
    """Save a figure as PNG under RUN_DIR/figures (the slides reuse them) and return the path."""
    out = Path(run) / "figures" / f"{name}.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def check(**counts) -> None:
    """Print the one line a grader reads: `CHECK {json}` with this stage's counts."""
    print("CHECK " + json.dumps(counts, sort_keys=True))
