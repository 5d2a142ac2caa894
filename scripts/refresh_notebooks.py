"""Re-execute the committed notebooks on the replay teacher and keep only the outputs nbval compares.

Run after editing a notebook (maintainers only):  .venv/bin/python scripts/refresh_notebooks.py
Every output is cleared except those of the `check` cells, which carry `# NBVAL_CHECK_OUTPUT` so that
`pytest --nbval-lax notebooks` fails when a change alters a stage's counts. No book text is committed this way.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from lecture_utils.instructor.course import NOTEBOOKS, replay_environment  # noqa: E402


def refresh(names=NOTEBOOKS) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="refresh-"))
    os.environ.update(replay_environment())
    os.environ["KIT_RUN_DIR"] = str(run_dir)
    try:
        for name in names:
            path = REPO / "notebooks" / name
            nb = nbformat.read(path, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
                    if "check" in cell.metadata.get("tags", []) and "NBVAL_CHECK_OUTPUT" not in cell.source:
                        cell.source = "# NBVAL_CHECK_OUTPUT\n" + cell.source
            NotebookClient(nb, timeout=1800, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            for cell in nb.cells:
                cell.metadata.pop("execution", None)  # timestamps: churn in every diff, no information
                if cell.cell_type != "code":
                    continue
                if "check" in cell.metadata.get("tags", []):
                    cell.outputs = [o for o in cell.outputs if o.get("output_type") == "stream"]
                    for o in cell.outputs:
                        if o.get("name") != "stdout" or "CHECK " not in o.get("text", ""):
                            raise SystemExit(f"{name}: the check cell printed something unexpected: {o}")
                else:
                    cell.outputs, cell.execution_count = [], None
                if any(o.get("output_type") == "error" for o in cell.outputs):
                    raise SystemExit(f"{name}: a cell failed")
            nb.metadata.pop("widgets", None)
            nbformat.write(nb, path)
            print("refreshed", name)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    refresh(sys.argv[1:] or NOTEBOOKS)
