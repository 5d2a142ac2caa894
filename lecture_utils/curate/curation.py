"""Stage 4, human curation: the review state that the panel (panel.py) shows and that tests drive directly.

Every decision is appended to a JSONL file the moment it is made (original and edited answer, checklist, timestamp),
so a kernel restart loses nothing: a new CurationState on the same files picks up at the first unreviewed pair.
The latest decision for a pair wins; earlier ones stay in the file as history.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from lecture_utils.curate.decisions import curated_pairs, decisions_that_count
from lecture_utils.errors import KitError
from lecture_utils.records import CHECKLIST, STATUSES, Decision, Passage, QAPair, append_jsonl, iter_jsonl, read_jsonl

FILTERS = ("all", "unreviewed", *STATUSES)


class CurationError(KitError, ValueError):
    """A review action that cannot be done as asked; the message says how to fix it."""


@dataclass
class Suggestion:
    """What the LLM judge proposes for a pair; it only pre-fills the checklist, the human decides."""

    scores: dict[str, int]
    suggested_status: str = ""
    rationale: str = ""

    def checklist(self) -> dict[str, bool]:
        return {item: self.scores.get(item, 0) >= 4 for item in CHECKLIST}


@dataclass
class ApplyResult:
    applied: int
    skipped: int  # the same decision was already the latest one for that pair


def _as_suggestion(value: Any) -> Suggestion:
    """Accept a judge.JudgeScore, a Suggestion or a plain dict with the same fields."""
    get = value.get if isinstance(value, Mapping) else lambda k, d=None: getattr(value, k, d)
    scores = {str(k).lower(): int(v) for k, v in (get("scores") or {}).items()}
    return Suggestion(scores, str(get("suggested_status", "") or ""), str(get("rationale", "") or ""))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "x", "ticked")
    return bool(value)


def normalize_checklist(value: Any) -> dict[str, bool]:
    """Turn a dict, a list of ticked items, or a string ("accuracy;clarity" or JSON) into {item: bool} for all five."""
    if value is None or (isinstance(value, str) and not value.strip()):
        ticked: dict[str, bool] = {}
    elif isinstance(value, str) and value.strip()[0] in "[{":
        try:
            return normalize_checklist(json.loads(value))
        except json.JSONDecodeError as e:
            raise CurationError(f"Checklist {value!r} is not valid JSON ({e.msg}); write e.g. accuracy;clarity.") from None
    elif isinstance(value, str):
        ticked = {name.strip().lower(): True for name in re.split(r"[,;|]", value) if name.strip()}
    elif isinstance(value, Mapping):
        ticked = {str(k).strip().lower(): _truthy(v) for k, v in value.items()}
    else:
        ticked = {str(name).strip().lower(): True for name in value}
    unknown = sorted(set(ticked) - set(CHECKLIST))
    if unknown:
        raise CurationError(f"Unknown checklist item(s) {', '.join(unknown)}; use {', '.join(CHECKLIST)}.")
    return {item: ticked.get(item, False) for item in CHECKLIST}


class CurationState:
    """The review of a list of pairs: position, filters, and the latest decision per pair, backed by a JSONL file."""

    def __init__(
        self,
        pairs: Iterable[QAPair],
        passages: Mapping[str, Passage] | Iterable[Passage],
        decisions_path: str | Path,
        suggestions: Mapping[str, Any] | Iterable[Any] | None = None,
        reviewer: str = "",
    ) -> None:
        self.pairs = list(pairs)
        self.passages = dict(passages) if isinstance(passages, Mapping) else {p.id: p for p in passages}
        self.decisions_path = Path(decisions_path)
        self.reviewer = reviewer
        if suggestions is not None and not isinstance(suggestions, Mapping):  # a list of judge scores with .pair_id
            suggestions = {getattr(s, "pair_id", None) or s["pair_id"]: s for s in suggestions}
        self.suggestions = {pid: _as_suggestion(s) for pid, s in (suggestions or {}).items()}
        self._index: dict[str, int] = {}
        for i, pair in enumerate(self.pairs):
            if pair.id in self._index:
                raise CurationError(f"Pair id {pair.id!r} appears twice in the pairs; ids must be unique.")
            self._index[pair.id] = i
        self.latest: dict[str, Decision] = {}
        self.stale = 0  # decisions made on an answer that has since changed (Stage 3 re-run): ignored
        self.orphans = 0  # decisions for pair ids not in this list
        self._load()
        self.status_filter = "all"
        self.category_filter = "all"
        self.position: int | None = None
        if self.pairs and self.first_unreviewed() is None:
            self.position = 0  # everything is reviewed: start at the top

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, suggestions: Mapping[str, Any] | None = None, reviewer: str = "") -> "CurationState":
        """Open a run directory's qa_pairs.jsonl and passages.jsonl, recording into its decisions.jsonl."""
        run_dir = Path(run_dir)
        pairs = read_jsonl(run_dir / "qa_pairs.jsonl", QAPair)
        passages = read_jsonl(run_dir / "passages.jsonl", Passage)
        return cls(pairs, passages, run_dir / "decisions.jsonl", suggestions, reviewer)

    def _load(self) -> None:
        if not self.decisions_path.exists():
            return
        decisions = list(iter_jsonl(self.decisions_path, Decision))
        for n, decision in enumerate(decisions, 1):
            if decision.status not in STATUSES:
                raise CurationError(
                    f"{self.decisions_path} record {n}: status {decision.status!r} is not one of "
                    f"{', '.join(STATUSES)}; fix or delete that line."
                )
        counted = decisions_that_count(self.pairs, decisions)  # the one rule, shared with export and grading
        self.latest, self.stale, self.orphans = counted.latest, counted.stale, counted.orphans

    # --- looking things up ---------------------------------------------------------------------------------------

    def pair(self, pair_id: str) -> QAPair | None:
        i = self._index.get(pair_id)
        return None if i is None else self.pairs[i]

    def status_of(self, pair_id: str) -> str:
        decision = self.latest.get(pair_id)
        return decision.status if decision else "unreviewed"

    def final_answer(self, pair_id: str) -> str:
        """The answer as it stands after review: the edit for a fixed pair, the original otherwise."""
        decision = self.latest.get(pair_id)
        if decision and decision.status == "fix":
            return decision.edited_answer
        return self.pair(pair_id).answer

    def suggestion(self, pair_id: str) -> Suggestion | None:
        return self.suggestions.get(pair_id)

    def checklist_for(self, pair_id: str) -> dict[str, bool]:
        """What the panel ticks: the reviewer's last checklist, else the judge's suggestion, else nothing."""
        if pair_id in self.latest:
            return normalize_checklist(self.latest[pair_id].checklist)
        if pair_id in self.suggestions:
            return self.suggestions[pair_id].checklist()
        return normalize_checklist(None)

    def retrieved_passages(self, pair: QAPair) -> list[tuple[str, float, Passage | None]]:
        """(passage id, retrieval score, passage or None if it is missing from the corpus) for each retrieved id."""
        return [(r.id, r.score, self.passages.get(r.id)) for r in pair.retrieved]

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self.pairs})

    # --- filters and navigation (always within the filtered view) ------------------------------------------------

    def view(self) -> list[int]:
        """Indices into self.pairs of the pairs that pass the status and category filters."""
        return [
            i
            for i, p in enumerate(self.pairs)
            if (self.status_filter == "all" or self.status_of(p.id) == self.status_filter)
            and (self.category_filter == "all" or p.category == self.category_filter)
        ]

    def set_filter(self, status: str | None = None, category: str | None = None) -> None:
        """Change either filter (None keeps it); if the current pair drops out, move to the first one in the view."""
        if status is not None and status not in FILTERS:
            raise CurationError(f"Unknown status filter {status!r}; use one of {', '.join(FILTERS)}.")
        if category is not None and category != "all" and category not in self.categories:
            raise CurationError(f"Unknown category {category!r}; use 'all' or one of {', '.join(self.categories)}.")
        self.status_filter = status if status is not None else self.status_filter
        self.category_filter = category if category is not None else self.category_filter
        view = self.view()
        if self.position not in view:
            self.position = view[0] if view else None

    @property
    def current(self) -> QAPair | None:
        return None if self.position is None else self.pairs[self.position]

    @property
    def view_index(self) -> int | None:
        """Where the current pair sits in the view (0-based), or None if it has left it (e.g. just decided)."""
        view = self.view()
        return view.index(self.position) if self.position in view else None

    def next(self) -> bool:
        """Move to the next pair in the view; False (and stay) at the end."""
        later = [i for i in self.view() if self.position is None or i > self.position]
        if later:
            self.position = later[0]
        return bool(later)

    def prev(self) -> bool:
        """Move to the previous pair in the view; False (and stay) at the start."""
        earlier = [i for i in self.view() if self.position is not None and i < self.position]
        if earlier:
            self.position = earlier[-1]
        return bool(earlier)

    def goto(self, i: int | str) -> QAPair:
        """Go to position i of the view (0-based), or to a pair id that is in the view."""
        view = self.view()
        if isinstance(i, str):
            if self._index.get(i) not in view:
                raise CurationError(f"Pair {i!r} is not in the current view; set the filters to 'all' first.")
            self.position = self._index[i]
        elif not 0 <= i < len(view):
            raise CurationError(f"goto({i}): the view has {len(view)} pairs (0 to {len(view) - 1}).")
        else:
            self.position = view[i]
        return self.pairs[self.position]

    def first_unreviewed(self) -> QAPair | None:
        """Jump to the first unreviewed pair in the view; None (and stay) if there is none."""
        for i in self.view():
            if self.pairs[i].id not in self.latest:
                self.position = i
                return self.pairs[i]
        return None

    # --- deciding ------------------------------------------------------------------------------------------------

    def _check(self, pair: QAPair, status: str, reason: str, edited: str) -> None:
        if status not in STATUSES:
            raise CurationError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
        if status == "fix" and not edited.strip():
            raise CurationError("Fix needs an edited answer, and it is empty: write the answer, or Discard the pair.")
        if status == "fix" and edited.strip() == pair.answer.strip():
            raise CurationError("Fix needs an edited answer that differs from the original: edit the answer first.")
        if status == "accept" and edited.strip() != pair.answer.strip():
            raise CurationError("The answer was edited: press Fix to keep the edit, or reset it to accept the original.")
        if status == "discard" and not reason.strip():
            raise CurationError("Discard needs a reason (e.g. 'not supported by the passages'): fill in the reason.")

    @staticmethod
    def _final(pair: QAPair, status: str, edited: str) -> str:
        """The answer text a decision records: the trimmed edit for a fix, the original for an accept."""
        return edited.strip() if status == "fix" else pair.answer if status == "accept" else edited

    def decide(
        self,
        status: str,
        reason: str = "",
        checklist: Any = None,
        edited_answer: str | None = None,
        reviewer: str = "",
        pair_id: str | None = None,
    ) -> Decision:
        """Record a decision on the current pair (or on pair_id) and append it to the decisions file at once."""
        pair = self.current if pair_id is None else self.pair(pair_id)
        if pair is None:
            raise CurationError(
                "No pair to decide on: the view is empty; change the filters." if pair_id is None
                else f"Unknown pair id {pair_id!r}; it is not among the pairs being reviewed."
            )
        edited = pair.answer if edited_answer is None else edited_answer
        self._check(pair, status, reason, edited)
        decision = Decision(
            pair_id=pair.id,
            status=status,
            reason=reason.strip(),
            checklist=normalize_checklist(checklist),
            original_answer=pair.answer,
            edited_answer=self._final(pair, status, edited),
            reviewer=reviewer or self.reviewer,
            timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        append_jsonl(self.decisions_path, decision)  # disk first: memory never claims a decision the file lacks
        self.latest[pair.id] = decision
        return decision

    def apply_decisions_file(self, path: str | Path, reviewer: str = "") -> ApplyResult:
        """Apply decisions from a JSONL or CSV file (pair_id, status, reason, edited_answer, checklist?) via decide().

        Every row is checked before any is applied; a row equal to the pair's latest decision is skipped, so a re-run
        adds nothing. Within one file, the last row for a pair wins.
        """
        path = Path(path)
        if not path.exists():
            raise CurationError(f"Decisions file {path} does not exist; check the path.")
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = list(iter_jsonl(path))
        by_pair: dict[str, dict] = {}
        for n, row in enumerate(rows, 1):
            pid = str(row.get("pair_id") or "").strip()
            if not pid:
                raise CurationError(f"{path} row {n} has no pair_id; every row needs pair_id and status.")
            by_pair[pid] = row
        unknown = [pid for pid in by_pair if pid not in self._index]
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise CurationError(f"{path}: {len(unknown)} unknown pair id(s): {shown}; nothing applied. Is it this run's file?")
        plans = []
        for pid, row in by_pair.items():
            pair = self.pair(pid)
            status = str(row.get("status") or "").strip().lower()
            reason = str(row.get("reason") or "").strip()
            edited = str(row.get("edited_answer") or "") or pair.answer
            given = row.get("checklist")
            try:
                self._check(pair, status, reason, edited)
                checklist = normalize_checklist(given)
            except CurationError as e:
                raise CurationError(f"{path}, pair {pid}: {e} Nothing applied.") from None
            plans.append((pair, status, reason, edited, checklist, given not in (None, "")))
        applied = skipped = 0
        for pair, status, reason, edited, checklist, has_checklist in plans:
            last = self.latest.get(pair.id)
            final = self._final(pair, status, edited)
            if (
                last is not None
                and (last.status, last.reason, last.edited_answer) == (status, reason, final)
                and (not has_checklist or normalize_checklist(last.checklist) == checklist)
            ):
                skipped += 1
                continue
            row_reviewer = str(by_pair[pair.id].get("reviewer") or "")
            self.decide(status, reason, checklist, edited, row_reviewer or reviewer or self.reviewer or f"file:{path.name}",
                        pair_id=pair.id)
            applied += 1
        return ApplyResult(applied, skipped)

    # --- progress and results ------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Pairs per status (latest decision), plus 'unreviewed'."""
        counts = {status: 0 for status in STATUSES}
        for pair in self.pairs:
            if pair.id in self.latest:
                counts[self.latest[pair.id].status] += 1
        counts["unreviewed"] = len(self.pairs) - sum(counts.values())
        return counts

    def progress(self) -> tuple[int, int]:
        """(reviewed, total)."""
        return len(self.pairs) - self.counts()["unreviewed"], len(self.pairs)

    def progress_text(self) -> str:
        done, total = self.progress()
        counts = self.counts()
        return f"{done} / {total} reviewed (" + ", ".join(f"{s} {counts[s]}" for s in STATUSES) + ")"

    def latest_decisions(self) -> list[Decision]:
        """The decision that counts for each reviewed pair, in pair order."""
        return [self.latest[p.id] for p in self.pairs if p.id in self.latest]

    def curated_records(self) -> list[QAPair]:
        """Accepted and fixed pairs, each carrying its final answer and who vouches for it (copies; the originals are
        untouched): decisions.curated_pairs, the same rule notebook 5 exports with."""
        return curated_pairs(self.pairs, self.latest_decisions())
