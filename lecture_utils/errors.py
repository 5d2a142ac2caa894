"""The one base of every error the kit raises on purpose. Its message says what happened and how to fix it, in one or
two lines; `.reason` is a short label a script, a failures file or a notebook can match on instead of the message."""

from __future__ import annotations

import re


class KitError(Exception):
    """Base of the kit's errors. A subclass's `reason` defaults to its name ("CorpusError" -> "corpus"); some set a
    more precise one per error ("HTTP 429", "replay miss", "spend cap")."""

    reason = "error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "reason" not in cls.__dict__:
            cls.reason = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__.removesuffix("Error")).lower() or "error"
