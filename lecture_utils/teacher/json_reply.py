"""Reading the JSON a model wrote, and checking it against the schema it was asked for: small models wrap JSON in
code fences, add prose around it and leave trailing commas; parse_json_loose finds the object anyway, and validate
says what in it does not match."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from lecture_utils.teacher.wire import AnswerError, preview

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.S)


def _outside_strings(text: str, start: int = 0):
    """Yield (index, char) for the characters of text[start:] that stand outside JSON string literals."""
    in_string, escaped = False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            yield i, ch


def _balanced_spans(text: str, limit: int = 20):
    """Yield each {...} or [...] span that closes properly (quotes respected), in order of its start."""
    starts = [i for i, ch in enumerate(text) if ch in "{["][:limit]
    for start in starts:
        depth = 0
        for i, ch in _outside_strings(text, start):
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    yield text[start:i + 1]
                    break


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that stand right before a closing } or ] (outside strings), a common model slip."""
    drop = set()
    for i, ch in _outside_strings(text):
        if ch == ",":
            j = i + 1
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] in "}]":
                drop.add(i)
    return "".join(ch for i, ch in enumerate(text) if i not in drop)


def parse_json_loose(text: str) -> Any:
    """Parse the JSON a model wrote: as is, else inside code fences, else the first {...}/[...] amid prose,
    each also with trailing commas removed. Raw control characters in strings are accepted."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    candidates += list(_balanced_spans(text))
    for candidate in candidates:
        for attempt in (candidate, _drop_trailing_commas(candidate)):
            try:
                return json.loads(attempt, strict=False)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object or array found in the reply (it began: {' '.join(text.split())[:60]!r})")


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str):
    import jsonschema

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"the schema is not valid JSON Schema: {e.message}") from None
    return cls(schema)


def check_schema(schema: dict) -> None:
    """Raise ValueError (one line) if `schema` is not a valid JSON Schema."""
    _validator(json.dumps(schema, sort_keys=True))


def validate(data: Any, schema: dict) -> list[str]:
    """Problems with `data` against the JSON schema, as short 'where: what' lines; empty if it is valid."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    problems = []
    for e in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        problems.append(f"{where}: {preview(e.message, 160)}")
    return problems


# --- errors, retries and the client -----------------------------------------------------------------------------


def valid_json(text: str, schema: dict) -> Any:
    """The JSON in a reply when it matches `schema`; else a retryable AnswerError saying what is wrong."""
    try:
        data = parse_json_loose(text)
    except ValueError as e:
        raise AnswerError("parse error", str(e), retryable=True) from None
    errors = validate(data, schema)
    if errors:
        raise AnswerError("parse error", f"{len(errors)} schema problem(s), first {errors[0]}", retryable=True)
    return data
