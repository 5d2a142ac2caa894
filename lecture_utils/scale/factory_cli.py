"""`python -m lecture_utils factory RUN_DIR ...`: Stage 5 from a terminal, with the factory or the Batch API."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path
from typing import Any

from lecture_utils.scale.batch import run_batch
from lecture_utils.scale.estimate import estimate_run
from lecture_utils.scale.factory import FactoryConfig, FactoryError, run_factory
from lecture_utils.scale.runs import failures_path, iter_instructions, read_recipe
from lecture_utils.settings import MODES
from lecture_utils.teacher.client import TeacherConfig, connect


def factory_main(argv: list[str] | None = None) -> int:
    """`python -m lecture_utils factory RUN_DIR ...`: Stage 3 at scale over RUN_DIR/instructions.jsonl."""
    p = argparse.ArgumentParser(prog="python -m lecture_utils factory", description=factory_main.__doc__)
    p.add_argument("run_dir", help="the run directory, e.g. runs/demo")
    p.add_argument("--instructions", help="default RUN_DIR/instructions.jsonl")
    p.add_argument("--passages", help="default RUN_DIR/passages.jsonl; or give --corpus")
    p.add_argument("--corpus", help="a book file or a folder of documents to load passages from instead")
    p.add_argument("--out", help="default RUN_DIR/qa_pairs.jsonl")
    p.add_argument("--failures", help="default RUN_DIR/qa_pairs.failures.jsonl")
    p.add_argument("--teacher", choices=MODES, help="default: from the environment")
    p.add_argument("--model", help="the teacher model (default: TEACHER_MODEL)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default 8; 2 for the embedded teacher)")
    p.add_argument("--rpm", type=float, help="requests per minute budget")
    p.add_argument("--tpm", type=float, help="tokens per minute budget")
    p.add_argument("--timeout", type=float, help="seconds per attempt")
    p.add_argument("--attempts", type=int, default=FactoryConfig.max_attempts)
    p.add_argument("--k", type=int, help="passages per instruction (default: K from the run's notebook 3, else 3)")
    p.add_argument("--max-tokens", type=int, help=f"default {FactoryConfig.max_tokens}")
    p.add_argument("--temperature", type=float, help=f"default {FactoryConfig.temperature}")
    p.add_argument("--limit", type=int, help="only the first N instructions")
    p.add_argument("--retry-failures", action="store_true", help="try the items in the failures file again")
    p.add_argument("--drop-not-in-text", action="store_true", help="send 'not in the passages' answers to failures")
    p.add_argument("--max-cost", type=float, help="US dollars: stop before a request could take the spend past this "
                   "(kept across resumes in OUT.spend.txt; run again with a higher cap to go on)")
    p.add_argument("--price-in", type=float, help="the model's input price, US dollars per million tokens")
    p.add_argument("--price-out", type=float, help="the model's output price, US dollars per million tokens")
    p.add_argument("--target-kept", type=int, help="stop asking once this many answers pass the free checks")
    p.add_argument("--estimate", action="store_true", help="print the estimate and stop")
    p.add_argument("--batch", action="store_true", help="use the OpenAI Batch API (half price, within 24 hours)")
    p.add_argument("--no-wait", action="store_true", help="with --batch: submit (or check) and return at once")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    run_dir = Path(args.run_dir)
    instructions_path = Path(args.instructions or run_dir / "instructions.jsonl")
    if not instructions_path.exists():
        raise FactoryError(f"{instructions_path} does not exist: run notebook 2 for this run directory, or pass --instructions")
    from lecture_utils.answer.retrieval import FastBM25Index
    from lecture_utils.records import Passage, iter_jsonl

    if args.corpus:
        from lecture_utils.gather.corpus import load_corpus

        passages = load_corpus(args.corpus)
    else:
        passages_path = Path(args.passages or run_dir / "passages.jsonl")
        if not passages_path.exists():
            raise FactoryError(f"{passages_path} does not exist: run notebook 1 for this run directory, or pass --corpus BOOK_OR_FOLDER")
        passages = list(iter_jsonl(passages_path, Passage))
    index = FastBM25Index(passages)
    overrides: dict[str, Any] = {"model": args.model} if args.model else {}
    if args.batch and (args.max_cost or args.target_kept):
        raise FactoryError("--max-cost and --target-kept work with the factory, not --batch (the Batch API takes the "
                           "whole file at once): drop one of them")
    if (args.price_in is None) != (args.price_out is None):
        raise FactoryError("give both --price-in and --price-out (US dollars per million tokens)")
    teacher: Any = TeacherConfig.from_env(args.teacher, **overrides) if args.estimate else None
    if teacher is None:
        teacher = connect(args.teacher, **overrides)
    if args.price_in is not None:  # this model's price, over the kit's table and TEACHER_PRICES
        config_ = teacher.config if hasattr(teacher, "engine") else teacher
        if hasattr(teacher, "close"):
            teacher.close()  # the factory opens its own connections from the config
        teacher = dataclasses.replace(config_, prices={**(config_.prices or {}),
                                                       config_.model or "": (args.price_in, args.price_out)})
    recipe = read_recipe(run_dir)  # the prompts and K the run's notebooks used, so a student's edits run at scale
    config = recipe.config(concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm, timeout_s=args.timeout,
                           max_attempts=args.attempts, k=args.k, max_tokens=args.max_tokens,
                           temperature=args.temperature, retry_failures=args.retry_failures,
                           keep_not_in_text=not args.drop_not_in_text, progress=not args.no_progress,
                           max_cost_usd=args.max_cost, target_kept=args.target_kept)
    differ = [n for n in recipe.changed if n in ("RAG_PROMPT", "RAG_SYSTEM", "K")]
    print(f"prompts and settings from {run_dir}: " + (f"{', '.join(differ)} differ from the kit's defaults"
                                                       if differ else "the kit's defaults"), file=sys.stderr)
    out = Path(args.out or run_dir / "qa_pairs.jsonl")
    failures = failures_path(out, args.failures)
    items: Any = instructions_path
    if args.limit is not None:
        items = list(itertools.islice(iter_instructions(instructions_path), args.limit))
    estimate = estimate_run(items, index, teacher, config, out=out, failures=failures)
    print(f"estimate: {estimate}" + (" (the Batch API charges half)" if args.batch else ""), file=sys.stderr)
    if args.estimate:
        return 0
    if args.batch:
        print(run_batch(items, index, out, failures, teacher=teacher, config=config, wait=not args.no_wait))
        return 0
    run_factory(items, index, out, failures, teacher=teacher, config=config)
    return 0
