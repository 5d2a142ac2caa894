"""Check a hand-made factual eval file against its source text.

    python bench/eval/check_eval.py bench/eval/pride_factual.jsonl [BOOK_OR_FOLDER]

For each item: all evidence terms co-occur within WINDOW characters in the item's chapter (book) or "source" file
(documents folder); one answer phrase occurs there; at least one passage of `corpus.load_corpus` holds every
evidence term (what retrieval scoring uses); the terms co-occur in at most MAX_PLACES places of the whole text.
"""
import itertools
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from lecture_utils.gather import corpus, files  # noqa: E402

WINDOW, MAX_PLACES = 300, 3


def norm(s):
    return re.sub(r"\s+", " ", s).lower()


def places(text, terms, window=WINDOW):
    """Start offsets of separate places where all terms fit inside one span of `window` characters."""
    spans = [[(m.start(), m.end()) for m in re.finditer(re.escape(t), text)] for t in terms]
    found = []
    for s, e in spans[0]:
        if found and s - found[-1] < window:
            continue
        near = [[x for x in occ if x[0] >= e - window and x[1] <= s + window] for occ in spans[1:]]
        if all(near) and any(max(x[1] for x in c) - min(x[0] for x in c) <= window
                             for c in itertools.product([(s, e)], *near)):
            found.append(s)
    return found


def verify(eval_path, source=None):
    """Check every item of `eval_path` against a book path or documents folder; print a table, return the rows."""
    src = Path(source) if source else corpus.resolve_book_path()
    passages = [norm(p.text) for p in corpus.load_corpus(src)]
    if src.is_dir():  # documents: one unit per file, keyed by the path inside the folder
        units = {p.relative_to(src).as_posix(): norm(files.read_text(p)) for p in sorted(src.rglob("*"))
                 if p.is_file() and p.suffix.lower() in files.DOC_SUFFIXES}
    elif src.suffix.lower() in (".md", ".rst"):  # a single document: its file name is the unit
        units = {src.name: norm(files.read_text(src))}
    else:
        book = corpus.load_book(src)
        units = {c.number: norm(book.text[c.body_start:c.end]) for c in book.chapters}
    whole = " ".join(units.values())
    rows = []
    for line in Path(eval_path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key = item.get("source", item.get("chapter"))
        text, terms = units.get(key, ""), [norm(t) for t in item["evidence"]]
        row = {"id": item["id"], "unit": key, "window": bool(places(text, terms)),
               "answer": any(norm(a) in text for a in item["answers"]),
               "passages": sum(all(t in p for t in terms) for p in passages),
               "places": len(places(whole, terms))}
        row["ok"] = row["window"] and row["answer"] and row["passages"] >= 1 and row["places"] <= MAX_PLACES
        rows.append(row)
    w = max([4] + [len(str(r["unit"])) for r in rows])
    print(f"{'id':6} {'unit':>{w}} window answer passages places  ok")
    for r in rows:
        print(f"{r['id']:6} {str(r['unit']):>{w}} {r['window']!s:6} {r['answer']!s:6} {r['passages']:8} "
              f"{r['places']:6}  {'OK' if r['ok'] else 'FAIL'}")
    print(f"{sum(r['ok'] for r in rows)}/{len(rows)} items pass; units covered: {len({r['unit'] for r in rows})}")
    return rows


if __name__ == "__main__":
    result = verify(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    sys.exit(0 if all(r["ok"] for r in result) else 1)
