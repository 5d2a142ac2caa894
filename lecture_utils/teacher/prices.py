"""What calls cost: list prices per model, and the estimate for one call."""

from __future__ import annotations

import functools
import json

from lecture_utils import settings
from lecture_utils.teacher.wire import TeacherError

# USD per 1M tokens (input, output), OpenAI list prices in 2025; check https://openai.com/api/pricing.
# Override with prices={...} or TEACHER_PRICES='{"my-model": [0.1, 0.4]}'. Unknown models cost 0.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


@functools.lru_cache(maxsize=8)
def _env_prices(text: str) -> dict[str, tuple[float, float]]:
    try:
        raw = json.loads(text)
        return {m: (float(p["input"]), float(p["output"])) if isinstance(p, dict) else (float(p[0]), float(p[1]))
                for m, p in raw.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise TeacherError('TEACHER_PRICES must be JSON like {"model": [input, output]} in USD per 1M tokens') from None


def price_table(prices: dict[str, tuple[float, float]] | None = None) -> dict[str, tuple[float, float]]:
    """The built-in table, then TEACHER_PRICES from the environment, then `prices`."""
    return {**PRICES, **_env_prices(settings.get("TEACHER_PRICES") or "{}"), **(prices or {})}


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int,
                  prices: dict[str, tuple[float, float]] | None = None) -> float:
    """Estimated USD for one call; dated snapshots ("gpt-4o-mini-2024-07-18") use their family's price."""
    return cost_in(price_table(prices), model, prompt_tokens, completion_tokens)


def cost_in(table: dict[str, tuple[float, float]], model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """estimate_cost with the price table given (the engine reads it once, not at every reply)."""
    name = model if model in table else max((m for m in table if model.startswith(m)), key=len, default=None)
    if name is None:
        return 0.0
    price_in, price_out = table[name]
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000

