"""Stage 4's views of a CurationState: the ipywidgets panel, the HTML it is drawn with, and the tables that close
notebook 4. Nothing here decides anything; every button calls the state and the panel then redraws from it.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

from lecture_utils.curate.curation import FILTERS, CurationError, CurationState
from lecture_utils.records import CHECKLIST, QAPair
from lecture_utils.text.tokens import search_words  # highlight the same words BM25 matched on

GOLDEN_RULE = (
    "Golden rule: accept only what you'd be glad to hear your finished model say word for word; "
    "anything less, edit it or drop it."
)
REASONS = (
    "not supported by the passages",
    "factually wrong",
    "does not answer the instruction",
    "too long or padded",
    "unclear or wrong tone",
    "incomplete",
    "duplicate of another pair",
    "instruction is poor",
    "not in the text",
)


# --- the words an answer shares with its passages ---------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['’]\w+)*")  # a word as it appears on the page, "Mira's" included


def _content(text: str) -> set[str]:
    # search_words already drops stop words; two-letter leftovers and numbers highlight noise, not evidence
    return {t for t in search_words(text) if len(t) > 2 and not t.isdigit()}


def shared_words(answer: str, passage_text: str) -> set[str]:
    """Content words (as the retriever reads them: tokens.search_words) that the answer and the passage both contain."""
    return _content(answer) & _content(passage_text)


def highlight(passage_text: str, words: Iterable[str]) -> str:
    """The passage as HTML, with <mark> around every word whose token is in words; everything else escaped."""
    words = set(words)
    out, last = [], 0
    for m in _WORD.finditer(passage_text):
        out.append(html.escape(passage_text[last : m.start()]))
        word = html.escape(m.group())
        out.append(f"<mark>{word}</mark>" if words & set(search_words(m.group())) else word)
        last = m.end()
    out.append(html.escape(passage_text[last:]))
    return "".join(out)


# --- summaries for the end of the notebook ----------------------------------------------------------------------


# "support" (a gate) is the weakest sentence's score, not the share of supported sentences (pair.grounding, which
# notebook 3's chart shows): the same pair reads 0.30 here and 0.50 there, so each says which it is.
CHECK_LABELS = {"support": "support of its weakest sentence", "cites": "the same, by the passages it cites (0: none)",
                "round_trip": "round trip", "says_not_in_text": "says it is not in the text"}


def checks_html(pair: QAPair) -> str:
    """The automatic checks' results for a pair, each marked passed or failed (see verify.py), with its evidence."""
    from lecture_utils.answer.verify import doubts, failed_checks

    if not pair.checks:
        return ("" if pair.grounding is None
                else f"Grounding {pair.grounding:.2f} (share of answer sentences the passages support)")
    failed, doubted = set(failed_checks(pair)), set(doubts(pair))
    shown = []
    for name, value in pair.checks.items():
        if name.endswith("_found"):
            continue
        mark = "&#10007;" if name in failed else "?" if name in doubted else "&#10003;"
        color = "#b00020" if name in failed else "#b26a00" if name in doubted else "#1b5e20"
        text = ", ".join(value) if isinstance(value, list) else value
        label = CHECK_LABELS.get(name, name)
        shown.append(f"<span style='color:{color}'>{mark} {html.escape(label)}: {html.escape(str(text or 'ok'))}</span>")
    if pair.grounding is not None:  # the figure notebook 3's grounding chart shows for the same pair
        shown.append(f"sentences the passages support: {pair.grounding:.2f}")
    verdict = {True: "passed every check", False: "FAILED a check: read it carefully", None: "not checked"}[pair.passed]
    if doubted and pair.passed:
        verdict += "; the teacher doubts it (?): read it"
    evidence = f"<div>answering words ({html.escape(pair.passage_id)}): <i>{html.escape(pair.span)}</i></div>" if pair.span else ""
    return f"<div><b>Checks</b> ({verdict}): " + " · ".join(shown) + "</div>" + evidence


def summary(state: CurationState):
    """A DataFrame of the latest decisions: pair_id, category, status, reason, edited (answer changed)."""
    import pandas as pd

    rows = [
        {
            "pair_id": d.pair_id,
            "category": state.pair(d.pair_id).category,
            "status": d.status,
            "reason": d.reason,
            "edited": d.status == "fix",
        }
        for d in state.latest_decisions()
    ]
    return pd.DataFrame(rows, columns=["pair_id", "category", "status", "reason", "edited"])


def reason_counts(state: CurationState):
    """How often each (status, reason) occurs among the latest decisions, most frequent first."""
    table = summary(state)
    table["reason"] = table["reason"].replace("", "(none given)")
    counts = table.groupby(["status", "reason"]).size().reset_index(name="count")
    return counts.sort_values(["count", "status", "reason"], ascending=[False, True, True], ignore_index=True)


# --- the panel: a view over CurationState -----------------------------------------------------------------------


class CurationPanel:
    """An ipywidgets view of a CurationState; every button calls the state and re-renders from it."""

    def __init__(self, state: CurationState, reasons: Iterable[str] = REASONS) -> None:
        import ipywidgets as w

        self.state = state
        self._rendering = False  # set while render() writes widget values, so observers don't echo them back
        self.rule = w.HTML(f"<b>{html.escape(GOLDEN_RULE)}</b>")
        self.progress = w.Label()
        self.note = w.HTML()
        self.status_filter = w.Dropdown(options=FILTERS, description="Status")
        self.category_filter = w.Dropdown(options=["all", *state.categories], description="Category")
        self.where = w.HTML()
        self.instruction = w.HTML()
        self.answer = w.Textarea(layout=w.Layout(width="100%", height="8em"))
        self.reset_button = w.Button(description="Reset answer", tooltip="Put the original answer back")
        self.grounding = w.HTML()
        self.passages = w.HTML()
        self.checkboxes = {item: w.Checkbox(description=item.capitalize(), indent=False) for item in CHECKLIST}
        self.judge = w.HTML()
        self.reason = w.Combobox(options=list(dict.fromkeys([*reasons])), placeholder="reason (needed to discard)",
                                 ensure_option=False, layout=w.Layout(width="24em"))
        self.accept_button = w.Button(description="Accept", button_style="success")
        self.fix_button = w.Button(description="Fix", button_style="warning", tooltip="Keep your edited answer")
        self.discard_button = w.Button(description="Discard", button_style="danger")
        self.prev_button = w.Button(description="◀ Prev")
        self.next_button = w.Button(description="Next ▶")
        self.first_button = w.Button(description="First unreviewed")
        self.message = w.HTML()

        self.accept_button.on_click(lambda _: self._decide("accept"))
        self.fix_button.on_click(lambda _: self._decide("fix"))
        self.discard_button.on_click(lambda _: self._decide("discard"))
        self.prev_button.on_click(lambda _: self._move(self.state.prev, "This is the first pair in the view."))
        self.next_button.on_click(lambda _: self._move(self.state.next, "This is the last pair in the view."))
        self.first_button.on_click(lambda _: self._move(self.state.first_unreviewed, "No unreviewed pair in this view."))
        self.reset_button.on_click(lambda _: self._reset_answer())
        self.status_filter.observe(self._on_filter, names="value")
        self.category_filter.observe(self._on_filter, names="value")
        self.answer.observe(lambda _: self._render_passages(), names="value")

        self.widget = w.VBox([
            self.rule,
            w.HBox([self.progress, self.note]),
            w.HBox([self.status_filter, self.category_filter]),
            self.where,
            self.instruction,
            self.answer,
            w.HBox([self.reset_button, self.grounding]),
            self.passages,
            w.HBox(list(self.checkboxes.values())),
            self.judge,
            w.HBox([self.reason, self.accept_button, self.fix_button, self.discard_button]),
            w.HBox([self.prev_button, self.next_button, self.first_button]),
            self.message,
        ])
        self.render()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#1b5e20"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""

    def _decide(self, status: str) -> None:
        pair = self.state.current
        try:
            self.state.decide(
                status,
                reason=self.reason.value,
                checklist={item: box.value for item, box in self.checkboxes.items()},
                edited_answer=self.answer.value,
            )
        except (CurationError, OSError) as e:
            self._say(str(e), error=True)
            return
        moved = self.state.next() or self.state.first_unreviewed() is not None
        done, total = self.state.progress()
        tail = "" if moved else (" All pairs reviewed." if done == total else " End of this view.")
        self._say(f"Saved: {status} {pair.id}.{tail}")
        self.render(keep_message=True)

    def _move(self, step, at_edge: str) -> None:
        moved = step()
        self.render()
        if not moved:
            self._say(at_edge)

    def _reset_answer(self) -> None:
        if self.state.current is not None:
            self.answer.value = self.state.current.answer

    def _on_filter(self, _change) -> None:
        if self._rendering:
            return
        try:
            self.state.set_filter(self.status_filter.value, self.category_filter.value)
        except CurationError as e:
            self._say(str(e), error=True)
        self.render()

    def _render_passages(self) -> None:
        pair = self.state.current
        if pair is None:
            self.passages.value = ""
            return
        blocks = []
        for pid, score, passage in self.state.retrieved_passages(pair):
            cited = " · <b>cited</b>" if pid in pair.cited else ""
            head = f"<div><code>{html.escape(pid)}</code> BM25 {score:.2f}{cited}</div>"
            if passage is None:
                body = f"<i>passage {html.escape(pid)} is not in the corpus</i>"
            else:
                body = highlight(passage.text, shared_words(self.answer.value, passage.text))
            blocks.append(
                head + '<div style="white-space:pre-wrap;max-height:14em;overflow:auto;'
                f'border:1px solid #ccc;padding:4px;margin-bottom:6px">{body}</div>'
            )
        stray = [c for c in pair.cited if c not in {r.id for r in pair.retrieved}]
        if stray:
            blocks.append(f"<div style='color:#b00020'>Cites passages it was not given: {html.escape(', '.join(stray))}</div>")
        self.passages.value = "".join(blocks) or "<i>no passages were retrieved for this pair</i>"

    def render(self, keep_message: bool = False) -> None:
        """Write the state into the widgets."""
        state, pair = self.state, self.state.current
        self._rendering = True
        try:
            self.progress.value = state.progress_text()
            ignored = [f"{state.stale} old decision(s) ignored: the answer changed since"] if state.stale else []
            ignored += [f"{state.orphans} decision(s) for pairs not in this list"] if state.orphans else []
            self.note.value = f"<i style='color:#555'>({'; '.join(ignored)})</i>" if ignored else ""
            self.status_filter.value = state.status_filter
            self.category_filter.options = ["all", *state.categories]
            self.category_filter.value = state.category_filter
            if not keep_message:
                self._say("")
            for button in (self.accept_button, self.fix_button, self.discard_button):
                button.disabled = pair is None
            if pair is None:
                self.where.value = "<i>No pairs in this view: change the filters.</i>"
                self.instruction.value = self.grounding.value = self.judge.value = ""
                self.answer.value = ""
                self._render_passages()
                return
            view, at = state.view(), state.view_index
            place = f"{at + 1} of {len(view)} in view" if at is not None else f"left the view ({len(view)} in view)"
            self.where.value = (
                f"Pair <code>{html.escape(pair.id)}</code> · {place} · category <i>{html.escape(pair.category)}</i>"
                f" · status <b>{state.status_of(pair.id)}</b>"
                + (" · teacher said: not in the text" if pair.not_in_text else "")
            )
            self.instruction.value = f"<h4>{html.escape(pair.instruction)}</h4>"
            self.answer.value = state.final_answer(pair.id)
            last = state.latest.get(pair.id)
            self.reason.value = last.reason if last else ""
            self.grounding.value = checks_html(pair)
            for item, ticked in state.checklist_for(pair.id).items():
                self.checkboxes[item].value = ticked
            hint = state.suggestion(pair.id)
            self.judge.value = "" if hint is None else (
                f"<div style='color:#555'>Judge suggests <b>{html.escape(hint.suggested_status or '?')}</b> ("
                + ", ".join(f"{k} {v}" for k, v in hint.scores.items())
                + f"): {html.escape(hint.rationale)}</div>"
            )
            self._render_passages()
        finally:
            self._rendering = False
