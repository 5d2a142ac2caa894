"""Stage 5's Hugging Face dataset folder: a train and a test split drawn by source unit, so nothing leaks.

    result = write_hf(pairs, passages, "runs/demo/export/hf", test_size=0.2, seed=0, source="Emma (...)")
    datasets.load_dataset("runs/demo/export/hf")   # {"train": ..., "test": ...}, offline

Each record is a chat (`messages`: system, user, assistant) with its provenance beside it: task type, cited passages
and their units (chapters or documents), the Stage 2 evidence, who vouches for it and each check's result. The test
split takes whole units, so no passage a test pair cites is cited by a train pair, and an instruction that also
appears in train (after case and spacing are ignored) is left out of test. README.md is the dataset card with the
YAML header the Hub reads (licence, language, task categories, size, configs and splits) above the kit's card.
The split files are named after their content (data/train-<hash>.jsonl): `datasets` caches a local folder by its
name and its file names, so a re-export under the same names would load the old rows.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from lecture_utils.records import Passage, QAPair
from lecture_utils.scale.export import write_dataset_card
from lecture_utils.scale.formats import DEFAULT_SYSTEM, ExportError, fill_system, source_title

SPLITS = ("train", "test")
# the Hub's licence identifiers are lower-case words joined by dashes ("cc-by-4.0", "mit", "other")
_LICENCE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


@dataclass
class HFResult:
    """What write_hf wrote: the folder, how many records each split holds and what was left out, and why."""

    folder: Path
    splits: dict[str, int]
    test_units: list[str]
    straddling: int = 0  # pairs citing units of both sides: in neither split
    repeated: int = 0  # test pairs whose instruction is also a train instruction: left out of test
    card: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)  # split -> its JSONL file
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        left = self.straddling + self.repeated
        return (f"{self.folder}: " + ", ".join(f"{n} {s}" for s, n in self.splits.items())
                + f" (test: {len(self.test_units)} whole chapters or documents)"
                + (f"; {left} left out so that nothing leaks" if left else ""))


def unit_of(passage: Passage) -> str:
    """The whole a passage belongs to: its chapter for a book, its document for a folder."""
    return f"chapter {passage.chapter}" if passage.chapter is not None else passage.source


def units_of(pair: QAPair, by_id: dict[str, Passage]) -> set[str]:
    """The units a pair rests on: those of the passage(s) its question was written from and of the passages its
    answer cites (a small teacher sometimes cites a passage of another chapter: both count, so neither leaks)."""
    ids = [pair.passage_id, *pair.related, *pair.cited]
    return {unit_of(by_id[i]) for i in ids if i in by_id}


def same_instruction(text: str) -> str:
    """An instruction as compared across splits: lower case, letters and digits only, single spaces."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def split_by_unit(pairs: Sequence[QAPair], passages: Iterable[Passage], test_size: float | int = 0.2,
                  seed: int = 0) -> tuple[list[QAPair], list[QAPair], dict[str, Any]]:
    """(train, test, how): whole units go to test, in an order shuffled by `seed`, until test holds `test_size`
    pairs (a share below 1, or a count). Pairs citing units on both sides are in neither; a test pair whose
    instruction is also in train is left out of test."""
    by_id = {p.id: p for p in passages}
    units = [units_of(p, by_id) for p in pairs]
    want = round(test_size * len(pairs)) if isinstance(test_size, float) and test_size < 1 else int(test_size)
    if want < 0 or want >= len(pairs) and want:
        raise ExportError(f"test_size={test_size} leaves no training pairs out of {len(pairs)}: use a share such as "
                          "0.2, or a smaller count")
    order = sorted({u for us in units for u in us})
    random.Random(seed).shuffle(order)
    test_units: set[str] = set()
    for unit in order:
        if sum(1 for us in units if us and us <= test_units) >= want:
            break
        test_units.add(unit)
    train = [p for p, us in zip(pairs, units) if not us & test_units]
    test = [p for p, us in zip(pairs, units) if us and us <= test_units]
    seen = {same_instruction(p.instruction) for p in train}
    kept = [p for p in test if same_instruction(p.instruction) not in seen]
    how = {"test_units": sorted(test_units, key=_natural), "straddling": len(pairs) - len(train) - len(test),
           "repeated": len(test) - len(kept)}
    return train, kept, how


def _natural(unit: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", unit)]


def hf_record(pair: QAPair, system: str | None, by_id: dict[str, Passage]) -> dict:
    """One row: the chat a fine-tuning tool reads, then where it came from (the same columns on every row)."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": pair.instruction.strip()},
                 {"role": "assistant", "content": pair.answer.strip()}]
    checks = {k: v for k, v in pair.checks.items() if not k.endswith("_found")}
    return {"id": pair.id, "messages": messages, "task_type": pair.category or "",
            "cited": list(pair.cited), "units": sorted(units_of(pair, by_id), key=_natural),
            "evidence": list(pair.evidence), "reference": pair.reference or "", "review": pair.review or "none",
            "checks": json.dumps(checks, sort_keys=True, default=str), "teacher": pair.teacher or "",
            "prompt_sha": pair.prompt_sha or pair.prompt_version or ""}


# The columns' types, stated: otherwise a split whose rows all have no evidence is read as a list of nulls, and
# load_dataset fails to put it beside a split whose evidence has text (seen on Treasure Island).
FEATURES = ("dataset_info:\n  features:\n  - name: id\n    dtype: string\n"
            "  - name: messages\n    list:\n    - name: role\n      dtype: string\n    - name: content\n"
            "      dtype: string\n"
            + "".join(f"  - name: {n}\n    sequence: string\n" for n in ("cited", "units", "evidence"))
            + "".join(f"  - name: {n}\n    dtype: string\n"
                      for n in ("task_type", "reference", "review", "checks", "teacher", "prompt_sha")))


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def yaml_header(*, title: str, licence: str | None, language: str, n: int, files: dict[str, str]) -> str:
    """The card's YAML front matter: what the Hub shows and what load_dataset reads to find the splits."""
    licence_id = licence if licence and _LICENCE_ID.match(licence) else ("other" if licence else "unknown")
    listed = "".join(f"  - split: {s}\n    path: {path}\n" for s, path in files.items())
    return ("---\n"
            f"license: {licence_id}\n"
            f"language:\n- {language}\n"
            "task_categories:\n- question-answering\n- text-generation\n"
            f"size_categories:\n- {size_category(n)}\n"
            f"pretty_name: {json.dumps(title)}\n"
            "tags:\n- synthetic\n- instruction-tuning\n- rag\n"
            "configs:\n- config_name: default\n  data_files:\n" + listed + FEATURES + "---\n\n")


def write_hf(pairs: Iterable[QAPair], passages: Sequence[Passage], out_dir: str | Path, *,
             test_size: float | int = 0.2, seed: int = 0, system: str | None = DEFAULT_SYSTEM, source: str = "",
             title: str | None = None, licence: str | None = None, language: str = "en", refusals: bool = False,
             **card: Any) -> HFResult:
    """Write the Hugging Face dataset folder (data/train-<hash>.jsonl, data/test-<hash>.jsonl, README.md) to out_dir.
    `card` takes write_dataset_card's other arguments (counts, filters, figures, notes, ...)."""
    pairs = [p for p in pairs if refusals or not p.not_in_text]
    if len(pairs) < 2:
        raise ExportError(f"{len(pairs)} pair(s) to split: a train and a test split need at least two; accept more "
                          "pairs in notebook 4 or run the factory further")
    by_id = {p.id: p for p in passages}
    train, test, how = split_by_unit(pairs, passages, test_size, seed)
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    system = fill_system(system, source)
    splits = {"train": train, "test": test} if test else {"train": train}
    for old in (out / "data").glob("*.jsonl"):
        if old.name.split("-")[0] in SPLITS:
            old.unlink()
    files = {}
    for name, rows in splits.items():
        text = "".join(json.dumps(hf_record(p, system, by_id), ensure_ascii=False) + "\n" for p in rows)
        files[name] = f"data/{name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}.jsonl"
        (out / files[name]).write_text(text, encoding="utf-8")
    title = title or f"Instructions about {source_title(source)}"
    held = train + test
    if card.get("figures") is not None:  # measured again on what the folder holds
        from lecture_utils.scale.quality import figures

        card["figures"] = figures(held, passages)
    card["counts"] = {**(card.get("counts") or {}), "exported (refusals left out)": len(pairs),
                      "left out of both splits: they rest on chapters or documents on both sides": how["straddling"],
                      "left out of test: the instruction is also a train instruction": how["repeated"],
                      "train": len(train), "test": len(test)}
    result = HFResult(out, {k: len(v) for k, v in splits.items()}, how["test_units"], how["straddling"],
                      how["repeated"], out / "README.md")
    drawn = (f"The test split holds {len(test)} pairs from {len(how['test_units'])} whole chapters or documents "
             f"({', '.join(how['test_units'])}), drawn at random with seed {seed} until it held about {test_size} "
             "of the pairs: no passage a test pair was written from or cites belongs to a chapter or document a "
             "train pair was written from or cites, and no instruction is in both. "
             f"Left out of both: {how['straddling']} pairs resting on chapters or documents on both sides; left out "
             "of test: "
             f"{how['repeated']} whose instruction is also a train instruction.") if test else (
        "There is no test split: the pairs come from too few chapters or documents to hold one out.")
    notes = "\n\n".join(x for x in (card.pop("notes", ""), "### Splits\n\n" + drawn) if x)
    write_dataset_card(result.card, held, files=None, title=title, source=source, system=system,
                       licence=licence, notes=notes, provenance_mode="columns", **card)
    body = result.card.read_text(encoding="utf-8")
    body = body.replace("## Contents\n\n", "## Contents\n\n- `datasets.load_dataset(\"path/to/this/folder\")` gives "
                        + " and ".join(f"`{s}` ({len(v)})" for s, v in splits.items())
                        + "; each row is a chat (`messages`) with its provenance as columns\n", 1)
    result.card.write_text(yaml_header(title=title, licence=licence, language=language, n=len(train) + len(test),
                                       files=files) + body, encoding="utf-8")
    result.files = {k: out / v for k, v in files.items()}
    return result


def export_main(argv: list[str] | None = None) -> int:
    """`python -m lecture_utils export RUN_DIR`: RUN_DIR/dataset.jsonl (notebook 5) to RUN_DIR/export, the
    Hugging Face folder included."""
    import argparse

    import pandas as pd

    from lecture_utils.records import iter_jsonl
    from lecture_utils.scale.export import export_dataset
    from lecture_utils.scale.formats import FORMATS
    from lecture_utils.scale.quality import figures
    from lecture_utils.scale.runs import read_recipe

    p = argparse.ArgumentParser(prog="python -m lecture_utils export", description=export_main.__doc__)
    p.add_argument("run_dir")
    p.add_argument("--out", help="default RUN_DIR/export")
    p.add_argument("--test-size", type=float, default=0.2, help="share of the pairs held out (or a count, >= 1)")
    p.add_argument("--seed", type=int, default=0, help="which chapters or documents go to the test split")
    p.add_argument("--licence", help="the dataset's licence, a Hub identifier such as cc-by-4.0")
    p.add_argument("--language", default="en")
    p.add_argument("--refusals", action="store_true", help="also export 'the passages do not say' answers")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    for name, stage in (("dataset.jsonl", 5), ("passages.jsonl", 1)):
        if not (run / name).exists():
            raise ExportError(f"{run / name} does not exist: run notebook {stage} for this run directory first")
    pairs = list(iter_jsonl(run / "dataset.jsonl", QAPair))
    passages = list(iter_jsonl(run / "passages.jsonl", Passage))
    settings = read_recipe(run).settings  # notebook 5 records the run's TITLE, SOURCE and the card's source line
    title = settings.get("TITLE") or "the source"
    where = settings.get("SOURCE")
    source = settings.get("SOURCE_NAME") or (f"{title} ({where})" if where else title)
    kept = [x for x in pairs if args.refusals or not x.not_in_text]
    measured = figures(kept, passages)
    funnel = run / "factory" / "funnel.csv"  # what notebook 5's filters and checks stopped
    filters = pd.read_csv(funnel) if funnel.exists() else None
    counts = {"reviewed in Stage 4 (by a person or the judge), refusals included": sum(
        x.review in ("person", "judge") for x in pairs), "factory pairs that passed every check": sum(
        x.review == "checks" for x in pairs)}
    out = Path(args.out or run / "export")
    size = int(args.test_size) if args.test_size >= 1 else args.test_size
    print(export_dataset(pairs, out, FORMATS, source=source, figures=measured, licence=args.licence,
                         refusals=args.refusals, filters=filters, counts=counts))
    print(write_hf(pairs, passages, out / "hf", test_size=size, seed=args.seed, source=source, licence=args.licence,
                   language=args.language, refusals=args.refusals, figures=measured, filters=filters, counts=counts))
    print(f"upload (needs a token): huggingface-cli upload YOUR_NAME/YOUR_DATASET {out / 'hf'} --repo-type dataset")
    return 0
