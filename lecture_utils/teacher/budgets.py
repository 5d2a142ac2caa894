"""The limits a run keeps: requests and tokens per minute (TokenBucket) and US dollars across resumes (SpendCap)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from lecture_utils.teacher.wire import CallError


class TokenBucket:
    """A budget that refills `per_minute / 60` units a second; take() waits until enough units are there."""

    def __init__(self, per_minute: float, burst_s: float = 10.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)  # short bursts are fine; the provider counts per minute
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a request bigger than the bucket would otherwise wait forever
        while True:
            self._refill()
            if self.level >= amount:
                self.level -= amount
                return
            await asyncio.sleep((amount - self.level) / self.rate)

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + max(0.0, amount))


class SpendCap:
    """A spending limit in US dollars that survives resumes: what was spent is appended to `ledger` (one line per paid
    reply) and read back at the start. A request is sent only if its worst case (its prompt, estimated at four
    characters a token, plus max_tokens, at list price), with every request in flight counted the same way, fits under
    the cap: a run stops within about one request's worst case of the cap, not past it (unless the estimate of a
    prompt's tokens falls short)."""

    def __init__(self, cap_usd: float, ledger: Any) -> None:
        self.cap, self.ledger = float(cap_usd), Path(ledger)
        self.spent = 0.0
        if self.ledger.exists():
            for line in self.ledger.read_text(encoding="utf-8").splitlines():
                try:
                    self.spent += float(line.split()[0])
                except (ValueError, IndexError):  # a line cut by a kill
                    pass
        self.at_start = self.spent
        self.reserved = 0.0

    def reserve(self, worst: float) -> None:
        if self.spent + self.reserved + worst > self.cap:
            raise CallError(f"spend cap reached: ${self.spent:.4f} spent of ${self.cap:.4f} "
                            f"(${self.spent - self.at_start:.4f} in this run) and the next request could cost "
                            f"${worst:.4f}; raise --max-cost (MAX_COST) and run again to continue", "spend cap",
                            fatal=True)
        self.reserved += worst

    def settle(self, worst: float, cost: float | None) -> None:
        """The request is over: release its reservation and book what it cost (None: nothing to book)."""
        self.reserved -= worst
        if cost:
            self.spent += cost
            self.ledger.parent.mkdir(parents=True, exist_ok=True)
            with self.ledger.open("a", encoding="utf-8") as f:
                f.write(f"{cost:.8f}\n")
