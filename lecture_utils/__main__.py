"""Command line for instructors: the same functions the notebooks call.

    python -m lecture_utils corpus stats [PATH]       chapters, passages, words as JSON
    python -m lecture_utils corpus fetch              download Pride and Prejudice into data/
    python -m lecture_utils teacher check             one real round trip to the configured teacher
    python -m lecture_utils teacher serve [--model M] run the embedded teacher in the foreground
    python -m lecture_utils teacher install NAME      download and verify an offline model
    python -m lecture_utils run-course --teacher replay|classroom|local|openai|endpoint --out DIR
    python -m lecture_utils factory ...               Stage 5 at scale (see --help)
    python -m lecture_utils export RUN_DIR            the dataset to the fine-tuning formats and a Hugging Face folder
    python -m lecture_utils evaluate RUN_DIR [--closed-book|--open-book] [--model M]   score a model on the test split
    python -m lecture_utils grade SUBMISSIONS --out report.csv
    python -m lecture_utils slides [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys

from lecture_utils.instructor.course import TEACHERS
from lecture_utils.settings import MODES


def _corpus(args: argparse.Namespace) -> int:
    from lecture_utils.gather import corpus

    if args.action == "fetch":
        print(corpus.fetch_book(args.path))
    else:
        print(json.dumps(corpus.stats_for_path(args.path), indent=2))
    return 0


def _teacher(args: argparse.Namespace) -> int:
    if args.action == "install":
        from lecture_utils.teacher.gguf import install_model

        print(install_model(args.name or "qwen2.5-coder-1.5b"))
        return 0
    if args.action == "serve":
        from lecture_utils.teacher.embedded import serve

        serve(model=args.model, port=args.port, host=args.host)
        return 0
    from lecture_utils.teacher.client import check

    print(json.dumps(check(args.mode), indent=2))
    return 0


def _run_course(args: argparse.Namespace) -> int:
    from lecture_utils.instructor.course import run_course

    result = run_course(teacher=args.teacher, out_dir=args.out, parameters=json.loads(args.parameters or "{}"))
    print(json.dumps({"out": str(result.out_dir), "seconds": result.seconds, "checks": result.checks}, indent=2))
    return 0


# Commands with options of their own: their module parses the rest of the command line.
PASSTHROUGH = {"factory": ("scale.factory_cli", "factory_main", "Stage 5 at scale"),
               "grade": ("instructor.grading", "grade_main", "grade a folder of submissions"),
               "slides": ("instructor.slides", "slides_main", "build the lecture slides"),
               "export": ("scale.hub", "export_main", "export RUN_DIR/dataset.jsonl, a Hugging Face folder included"),
               "evaluate": ("scale.evaluate", "evaluate_main", "score a model on the run's held-out test split")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lecture_utils", description="The Art of the Ask course kit.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("corpus", help="load and inspect the source text")
    c.add_argument("action", choices=["stats", "fetch"])
    c.add_argument("path", nargs="?", help="a book file or a folder of documents (default: BOOK_PATH or data/pg1342.txt)")
    c.set_defaults(func=_corpus)

    t = sub.add_parser("teacher", help="check, serve or install the teacher model")
    t.add_argument("action", choices=["check", "serve", "install"])
    t.add_argument("name", nargs="?", help="model to install: qwen2.5-coder-1.5b or smollm2-135m")
    t.add_argument("--mode", choices=MODES, help="default: from the environment")
    t.add_argument("--model", help="serve: a model name or a .gguf path")
    t.add_argument("--port", type=int, default=8080)
    t.add_argument("--host", default="127.0.0.1")
    t.set_defaults(func=_teacher)

    r = sub.add_parser("run-course", help="execute notebooks 1-5 headless with papermill")
    r.add_argument("--teacher", default="replay", choices=TEACHERS)
    r.add_argument("--out", default="runs/course")
    r.add_argument("--parameters", help='extra notebook parameters as JSON, e.g. \'{"N_PER_RUN": 5}\'')
    r.set_defaults(func=_run_course)

    for name, (_, _, help_) in PASSTHROUGH.items():
        sub.add_parser(name, help=f"{help_} (see: {name} --help)", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in PASSTHROUGH:
            module, func, _ = PASSTHROUGH[argv[0]]
            mod = __import__(f"lecture_utils.{module}", fromlist=[func])
            return getattr(mod, func)(argv[1:]) or 0
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
