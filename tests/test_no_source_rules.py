"""No rule in lecture_utils is fitted to one source: its code and strings name no person or place of the demo novel.

Comments and docstrings may name them, since they explain an example; a list of characters, a regex for "Mr. Darcy"
or a prompt about Pride and Prejudice may not, since it would quietly do nothing (or mislead) on another source.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lecture_utils"
NAMES = ["Bennet", "Darcy", "Bingley", "Wickham", "Longbourn", "Netherfield", "Pemberley", "Collins", "Lydia",
         "Elizabeth", "Lizzy", "Austen", "Meryton", "Rosings", "Hunsford", "Gardiner", "Kitty", "Charlotte", "Lucas",
         "Derbyshire", "Pride and Prejudice", "de Bourgh"]
# any case: an identifier such as `darcy_regex` is as much a rule as a string; "_" splits identifier words
PATTERN = re.compile(r"\b(" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in NAMES) + r")\b", re.IGNORECASE)
SKIP = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT}
CODE = {tokenize.STRING, tokenize.NAME} | ({tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())


def statements(source: str) -> list[list[tokenize.TokenInfo]]:
    """The file's logical lines as token lists, without comments, blank-line and indent tokens."""
    out, line = [], []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in SKIP:
            continue
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if line:
                out.append(line)
            line = []
        else:
            line.append(tok)
    return out


def offences(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """'file:line: name' for each source name in the file's code or strings; docstrings (a statement that is only
    a string) are skipped."""
    found = []
    for line in statements(path.read_text(encoding="utf-8")):
        if all(tok.type == tokenize.STRING for tok in line):
            continue  # a docstring, or a string standing alone as a comment
        for tok in line:
            if tok.type in CODE:
                for m in PATTERN.finditer(tok.string.replace("_", " ")):
                    found.append(f"{path.relative_to(root)}:{tok.start[0]}: {m.group(0)!r}")
    return found


def test_the_checker_skips_comments_and_docstrings_but_not_strings_or_names(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""About Mr. Darcy."""\n'
                      "def f():\n"
                      '    """Lizzy, as an example."""\n'
                      "    # Pemberley in a comment\n"
                      '    who = "Mr. Bingley"\n'
                      "    darcy_rule = 1\n"
                      '    return f"{who} of Pride and Prejudice"\n', encoding="utf-8")
    assert offences(sample, root=tmp_path) == ["sample.py:5: 'Bingley'", "sample.py:6: 'darcy'",
                                               "sample.py:7: 'Pride and Prejudice'"]


def test_lecture_utils_names_no_person_or_place_of_one_source():
    found = [o for path in sorted(PACKAGE.rglob("*.py")) for o in offences(path)]
    assert not found, ("rules fitted to one source (find the names from the source, or take them as parameters):\n"
                       + "\n".join(found))
