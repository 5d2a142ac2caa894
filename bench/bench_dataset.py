"""Is the dataset diverse, grounded and well made, on any source? The lecture's three qualities as figures, per source.

Two ways to run it:

  --run RUN_DIR [RUN_DIR ...]   read a finished course run (dataset.jsonl, the exported pairs: refusals left out) and
                                its Stage 2 files; teacher seconds come from the calls' recorded times
  --source PATH --taxonomy novel|docs --title T [--n 20]
                                write tasks from n sampled passages with the live teacher (Stage 2's default), answer
                                each kept task the Stage 3 way (retrieval, the grounded prompt, the checks), and
                                report the same figures for the pairs that pass

Printed per source, all measured in this run: kept pairs per sampled passage, each task type's share, the share of
"who" lookups, the share of answers holding a run of 12 words of the source outside quotation marks, chapters or
documents cited, and teacher seconds per kept pair. Targets (issue 18): >= 6 types each >= 8% and none above 30%,
"who" <= 25%, copying <= 15%, >= 0.5 kept per sampled passage on a new source, <= 60 s of teacher time per kept pair.

Usage: .venv/bin/python bench/bench_dataset.py --run runs/course
       .venv/bin/python bench/bench_dataset.py --source ../shared/data/click_docs --taxonomy docs --title "the click docs" --n 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lecture_utils.answer import qa, retrieval, verify
from lecture_utils.ask import grounded, taxonomy
from lecture_utils.gather import corpus
from lecture_utils.records import Passage, QAPair, iter_jsonl, read_jsonl
from lecture_utils.scale import quality


def load_source(path: str) -> list[Passage]:
    p = Path(path)
    return corpus.load_corpus(p, 800) if p.is_dir() else corpus.book_passages(corpus.load_book(p), 800)


def from_run(run: Path) -> dict:
    """Figures of a finished course run: the exported pairs (what dataset.jsonl holds, refusals left out)."""
    passages = read_jsonl(run / "passages.jsonl", Passage)
    pairs = [p for p in read_jsonl(run / "dataset.jsonl", QAPair) if not p.not_in_text]
    jobs = sum(1 for name in ("tasks.jsonl", "tasks.dropped.jsonl") if (run / name).exists()
               for _ in iter_jsonl(run / name))
    origin = {i["id"]: i.get("origin") for i in iter_jsonl(run / "instructions.jsonl")}
    usage = run / "usage.json"
    seconds = json.loads(usage.read_text()).get("seconds") if usage.exists() else None
    figures = quality.figures(pairs, passages, seconds=seconds)
    task_pairs = sum(origin.get(p.instruction_id) == "task" for p in pairs)
    figures["task_pairs_per_sampled_passage"] = round(task_pairs / jobs, 3) if jobs else None
    return figures


def from_source(source: str, kind: str, title: str, n: int, seed: int, out: Path) -> dict:
    """Stage 2's default and Stage 3's answer and checks on n passages of a source, with the live teacher."""
    from lecture_utils.teacher.client import connect

    passages = load_source(source)
    index = retrieval.BM25Index(passages)
    by_id = {p.id: p for p in passages}
    jobs = taxonomy.assign(taxonomy.sample(passages, n, seed=seed), taxonomy.resolve(kind), index, seed=seed)
    teacher = connect("local")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summary = grounded.generate(teacher, jobs, out / "tasks.jsonl", title=title)
    tasks, _ = grounded.load(out / "tasks.jsonl", jobs)
    pairs = []
    for t in tasks:
        pair = qa.answer_instruction(teacher, t, index, k=3)
        pairs.append(verify.verify_pair(teacher, pair, by_id))
    kept = [p for p in pairs if p.passed and not p.not_in_text]
    with (out / "pairs.jsonl").open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p.__dict__ | {"retrieved": [r.__dict__ for r in p.retrieved]}, ensure_ascii=False) + "\n")
    figures = quality.figures(kept, passages, sampled=len(jobs), seconds=teacher.usage.seconds)
    figures["stage2"] = str(summary)
    figures["wall_seconds"] = round(time.perf_counter() - started)
    teacher.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="*", default=[])
    ap.add_argument("--source")
    ap.add_argument("--taxonomy", default="novel")
    ap.add_argument("--title", default="the source")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_dataset")
    args = ap.parse_args(argv)
    results = {}
    for run in args.run:
        results[run] = from_run(Path(run))
    if args.source:
        results[args.source] = from_source(args.source, args.taxonomy, args.title, args.n, args.seed,
                                           Path(args.out) / Path(args.source).stem)
    if not results:
        ap.error("give --run RUN_DIR or --source PATH")
    for name, f in results.items():
        print(f"== {name}")
        for k, v in f.items():
            print(f"  {k}: {v}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
