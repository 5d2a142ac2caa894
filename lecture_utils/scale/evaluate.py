"""The next lecture's question, "is the tuned model better?": any OpenAI-compatible model answers the held-out test
split, and its answers are scored against the reference answers and their passages.

    python -m lecture_utils evaluate runs/demo --closed-book             # the teacher the environment configures
    python -m lecture_utils evaluate runs/demo --open-book --teacher endpoint --model my-tuned-model

Closed book: the question alone, with the dataset's system prompt, as a fine-tuned model is used. Open book: the
passages BM25 finds for it first (Stage 3's retrieval), as a RAG system would. Each answer gets the kit's own checks
(it holds the answer words Stage 2 wrote the question to, or the reference's; it names nobody the question, the
reference and the cited passages do not; it does not decline) and a judge's YES/NO against the reference (a small
judge says YES too easily: the checks come first). Correct = all of these. Beside them, not part of "correct":
whether every sentence is supported by the cited passages (lexical: a sentence that restates the question with the
wrong name still counts as supported). Per item: RUN_DIR/eval/<model>-<book>.csv;
the summary is the command's last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from lecture_utils.errors import KitError
from lecture_utils.prompts import OPEN_BOOK_PROMPT, REFERENCE_JUDGE_PROMPT, format_context
from lecture_utils.records import Passage, iter_jsonl
from lecture_utils.teacher.task import VERDICT_SCHEMA, Task, TaskError, done_records, run_many
from lecture_utils.text.grounding import SUPPORT_THRESHOLD, content_words, sentence_support
from lecture_utils.text.names import unknown_names
from lecture_utils.text.refusal import declines
from lecture_utils.text.spans import says
from lecture_utils.text.tokens import stem, with_digits

MODES = ("closed", "open")



class EvalError(KitError, ValueError):
    """An evaluation that cannot start; the message says what to run first."""


def tasks(system: str | None, judge_max_tokens: int = 12) -> dict[str, Task]:
    """The three calls of an evaluation: answer closed book, answer open book, judge against the reference."""
    return {"closed": Task("closed book", "{instruction}", None, system=system, max_tokens=200),
            "open": Task("open book", OPEN_BOOK_PROMPT, None, system=system, max_tokens=200),
            "judge": Task("reference judge", REFERENCE_JUDGE_PROMPT, VERDICT_SCHEMA, max_tokens=judge_max_tokens)}


def test_split(run_dir: str | Path) -> list[dict]:
    """The held-out rows notebook 5 or `export` wrote to RUN_DIR/export/hf."""
    if not Path(run_dir).is_dir():
        raise EvalError(f"{run_dir} is not a run directory: pass the RUN_DIR the notebooks wrote (e.g. runs/demo)")
    files = sorted((Path(run_dir) / "export" / "hf" / "data").glob("test-*.jsonl"))
    if not files:
        raise EvalError(f"no test split in {Path(run_dir) / 'export' / 'hf'}: run notebook 5, or "
                        f"`python -m lecture_utils export {run_dir}`, first")
    return list(iter_jsonl(files[-1]))


def out_path(run_dir: str | Path, teacher: Any, mode: str) -> Path:
    """Where an evaluation of this teacher's model in this mode is kept: RUN_DIR/eval/<model>-<mode>.jsonl."""
    model = re.sub(r"[^\w.-]+", "_", teacher.config.model or "model")
    return Path(run_dir) / "eval" / f"{model}-{mode}.jsonl"


def _stems(text: str) -> set[str]:
    return {stem(w) for w in content_words(with_digits(text))}


def _second_name(name: str, text: str, known: set[str]) -> bool:
    """Is `name` the second half of a person's full name whose first half the context has ("Elizabeth Bennet" where
    the book's sentence says "Elizabeth")? Then it names nobody else."""
    return any(first in known for first in re.findall(rf"\b([A-Z][a-z]+) {re.escape(name)}\b", text))


def score(answer: str, row: dict, passages: Sequence[Passage], verdict: str | None, title: str = "") -> dict:
    """The kit's checks on one answer, and whether it counts as correct. `holds_answer`: every word of the answer
    Stage 2 wrote the question to ("Miss Bingley", "one mile"; numbers as numbers), or, for a pair without one, half
    the reference's words that the question does not already say; `other_names`: names neither the question, the
    reference nor the cited passages have (a fluent answer about the wrong person; the second half of a full name
    whose first half they have, "Elizabeth Bennet", is the same person)."""
    question = next(m["content"] for m in row["messages"] if m["role"] == "user")
    reference = row["messages"][-1]["content"]
    expected = (json.loads(row.get("checks") or "{}") or {}).get("answer")
    have = _stems(answer)
    if isinstance(expected, str) and _stems(expected):
        holds = says(with_digits(answer), with_digits(expected))  # Stage 3's "expected" check, numbers as numbers
    else:
        want = _stems(reference) - _stems(question)
        holds = bool(want) and len(want & have) >= len(want) / 2
    context = " ".join([question, reference] + [p.text for p in passages])
    said = set(re.findall(r"[a-z]+", context.lower()))
    named = answer.replace(title, " ") if title else answer  # the source's own title names nobody
    known = set(re.findall(r"\b[A-Z][a-z]{2,}\b", context))
    names = [n for n in unknown_names(named, context) if n.lower() not in said  # "Lamp" opening a sentence
             and not _second_name(n, named, known)]
    support = sentence_support(answer, [p.text for p in passages]) if passages and answer.strip() else []
    supported = bool(support) and all(s.score >= SUPPORT_THRESHOLD for s in support)
    refusal = declines(answer)
    correct = not refusal and holds and not names and verdict in (None, "YES")
    return {"refusal": refusal, "holds_answer": holds, "other_names": " ".join(names), "supported": supported,
            "judge": verdict or "", "correct": correct}


def evaluate(teacher: Any, rows: Sequence[dict], passages: Sequence[Passage], out: str | Path, *,
             mode: str = "closed", title: str = "the source", k: int = 3, judge: Any = None,
             progress: Any = None) -> list[dict]:
    """Ask `teacher` each row's question (closed or open book), score the answer, judge it with `judge` (a Teacher,
    or None for no judge); one record per row, appended to `out` as it is done (a rerun resumes)."""
    if mode not in MODES:
        raise EvalError(f"mode={mode!r}: use closed or open")
    by_id = {p.id: p for p in passages}
    system = rows[0]["messages"][0]["content"] if rows and rows[0]["messages"][0]["role"] == "system" else None
    calls = tasks(system)
    index = None
    if mode == "open":
        from lecture_utils.answer.retrieval import FastBM25Index

        index = FastBM25Index(passages)
    model = teacher.config.model or ""

    def work(row: dict) -> tuple[list, list]:
        question = next(m["content"] for m in row["messages"] if m["role"] == "user")
        values: dict[str, Any] = {"instruction": question, "title": title}
        if index is not None:
            values["context"] = format_context(index.search(question, k))
        answer = calls[mode].one(teacher, **values)["text"]
        verdict = None
        if judge is not None:
            try:
                verdict = calls["judge"].one(judge, title=title, instruction=question, answer=answer or "(no answer)",
                                             reference=row["messages"][-1]["content"])["verdict"]
            except TaskError:
                verdict = "?"
        cited = [by_id[c] for c in row.get("cited", []) if c in by_id]
        record = {"job": f"{mode}:{model}:{row['id']}", "id": row["id"], "mode": mode, "model": model,
                  "task_type": row.get("task_type", ""), "question": question, "answer": answer,
                  "reference": row["messages"][-1]["content"], **score(answer, row, cited, verdict, title)}
        return [record], []

    out = Path(out)
    failed = out.with_suffix(".failed.jsonl")
    run_many(rows, lambda r: f"{mode}:{model}:{r['id']}", work, out, failed, progress=progress)
    by_job = {f"{mode}:{model}:{r['id']}": r for r in rows}
    lost = done_records(failed, by_job)
    if lost:
        print(f"{len(lost)} of {len(rows)} questions got no answer ({mode} book; first: {lost[0]['reason'][:100]}): "
              f"they are left out of the scores; delete {failed} to ask them again")
    # scored again on reading: answers from an earlier run get today's checks
    return [{**rec, **score(rec["answer"], by_job[rec["job"]], [by_id[c] for c in by_job[rec["job"]].get("cited", [])
                                                               if c in by_id], rec["judge"] or None, title)}
            for rec in done_records(out, by_job)]


def summary(records: Sequence[dict]) -> dict:
    """Accuracy, agreement, support, refusals and judge YES as shares, and accuracy by task type."""
    n = len(records)

    def share(key: str, rs: Sequence[dict] = records) -> float:
        return round(sum(bool(r[key]) and r[key] != "NO" for r in rs) / len(rs), 3) if rs else 0.0

    by_type: dict[str, list] = defaultdict(list)
    for r in records:
        by_type[r["task_type"] or "(none)"].append(r)
    return {"n": n, "model": records[0]["model"] if n else "", "mode": records[0]["mode"] if n else "",
            "accuracy": share("correct"), "holds_answer": share("holds_answer"), "supported": share("supported"),
            "other_names": share("other_names"), "refusals": share("refusal"), "judge_yes": round(sum(r["judge"] == "YES" for r in records) / n, 3) if n else 0.0,
            "by_task_type": {t: {"n": len(rs), "accuracy": share("correct", rs)} for t, rs in sorted(by_type.items())}}


def chart(summaries: Sequence[dict], title: str = "How well does each model answer the held-out questions?"):
    """Closed book beside open book (or one model beside another): the share of answers that are correct, and the
    checks beside it."""
    from matplotlib.figure import Figure

    keys = ("accuracy", "holds_answer", "other_names", "supported", "judge_yes", "refusals")
    fig = Figure(figsize=(8.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(summaries))
    for i, s in enumerate(summaries):
        xs = [j + i * width for j in range(len(keys))]
        bars = ax.bar(xs, [s[k] for k in keys], width, label=f"{s['model']}, {s['mode']} book (n={s['n']})")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(keys))],
                  ["correct", "holds the\nreference's answer", "names someone\nelse", "supported by\nthe source",
                   "judge says\nYES", "refusals"])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of test questions")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=max(1, len(summaries)), fontsize=8)
    return fig


def evaluate_main(argv: list[str] | None = None) -> int:
    """`python -m lecture_utils evaluate RUN_DIR`: score a model on the run's held-out test split."""
    from lecture_utils.scale.runs import read_recipe
    from lecture_utils.settings import MODES as TEACHERS
    from lecture_utils.teacher.client import connect

    p = argparse.ArgumentParser(prog="python -m lecture_utils evaluate", description=evaluate_main.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--teacher", choices=TEACHERS, help="where the model is served (default: from the environment)")
    p.add_argument("--model", help="the model to evaluate (default: TEACHER_MODEL)")
    book = p.add_mutually_exclusive_group()
    book.add_argument("--closed-book", dest="mode", action="store_const", const="closed", help="the question alone (default)")
    book.add_argument("--open-book", dest="mode", action="store_const", const="open", help="BM25's passages first")
    p.add_argument("--k", type=int, default=3, help="open book: passages per question")
    p.add_argument("--limit", type=int, help="only the first N test questions")
    p.add_argument("--judge-model", help="the judge, on the same endpoint (default: the model evaluated)")
    p.add_argument("--no-judge", action="store_true", help="score with the kit's checks only")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    rows = test_split(run)[: args.limit]
    if not (run / "passages.jsonl").exists():
        raise EvalError(f"{run / 'passages.jsonl'} does not exist: run notebook 1 for this run directory")
    passages = list(iter_jsonl(run / "passages.jsonl", Passage))
    title = read_recipe(run).settings.get("TITLE") or "the source"  # notebook 5 records the run's TITLE
    mode = args.mode or "closed"
    teacher = connect(args.teacher, **({"model": args.model} if args.model else {}))
    judge = None if args.no_judge else (connect(args.teacher, model=args.judge_model) if args.judge_model else teacher)
    out = out_path(run, teacher, mode)
    records = evaluate(teacher, rows, passages, out, mode=mode, title=title, k=args.k, judge=judge)
    import pandas as pd

    if not records:
        raise EvalError(f"no question of the test split was answered (see {out.with_suffix('.failed.jsonl')}): check "
                        "the teacher with `python -m lecture_utils teacher check`, then run again")
    pd.DataFrame(records).drop(columns=["job"]).to_csv(out.with_suffix(".csv"), index=False)
    result = summary(records)
    out.with_suffix(".summary.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    chart([result]).savefig(out.with_suffix(".png"), dpi=110)
    print(f"{len(records)} answers scored -> {out.with_suffix('.csv')}")
    print(json.dumps(result))
    return 0
