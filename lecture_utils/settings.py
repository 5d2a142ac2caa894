"""Settings: the one place that reads the environment, the .env file and knows where the repository's files are.

    settings.get("TEACHER_MODEL")        # the environment first, then .env at the repository root, else None
    settings.REPO_ROOT / "notebooks"

Secrets (OPENAI_API_KEY, TEACHER_API_KEY) are read here like any other setting and handed to the teacher's client;
nothing in the kit writes them to a cache, a log or a dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

from lecture_utils.errors import KitError

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
ENV_FILE = REPO_ROOT / ".env"
DEFAULT_CACHE_PATH = DATA_DIR / "replay_cache.jsonl"
DEFAULT_BOOK = DATA_DIR / "pg1342.txt"

# The teacher modes, in the order the CLI lists them; the two replay modes answer from the replay cache.
MODES = ("local", "openai", "endpoint", "replay", "classroom")
REPLAY_MODES = ("replay", "classroom")
CACHE_MODES = ("off", "record", "replay")


class SettingError(KitError, ValueError):
    """A setting has a value the kit cannot use; the message names it and says what it takes."""


def _dotenv() -> dict[str, str]:
    if not ENV_FILE.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(ENV_FILE).items() if v is not None}


def environment() -> dict[str, str]:
    """Every setting: .env at the repository root, overridden by the real environment."""
    return {**_dotenv(), **os.environ}


def get(name: str, default: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """A setting's value with surrounding blanks removed; an empty one counts as unset."""
    if env is None:  # the real environment first; .env only for what it does not set
        value = os.environ.get(name)
        if value is None:
            value = _dotenv().get(name)
    else:
        value = env.get(name)
    return (value or "").strip() or default


def get_float(name: str, env: dict[str, str] | None = None) -> float | None:
    """A number of seconds (or any number) from a setting, or None when it is unset."""
    value = get(name, env=env)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a number") from None


def repo_path(path: str | Path) -> Path:
    """A relative path taken from the repository root, so it means the same from notebooks/ and from the root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path
