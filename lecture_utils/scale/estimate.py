"""What a Stage 5 run will cost before it starts: requests, tokens and dollars, from the prompts of a sample.

    print(estimate_run("runs/demo/instructions.jsonl", index, teacher))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from lecture_utils.answer.qa import rag_request, retrieve_batch
from lecture_utils.records import Instruction
from lecture_utils.scale.runs import FactoryConfig, finished_ids, iter_instructions
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.teacher.engine import CHARS_PER_TOKEN
from lecture_utils.teacher.prices import estimate_cost

DEFAULT_ANSWER_TOKENS = 150  # a grounded answer of a few sentences, for the estimate before a first run


@dataclass
class Estimate:
    """The cost of a run before it starts, from the sizes of its prompts."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    max_cost_usd: float  # if every answer used max_tokens
    model: str
    priced: bool = True  # False: a hosted model with no price in the table (the cost is unknown, not zero)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __str__(self) -> str:
        size = (f"about {self.requests:,} requests, {self.tokens:,} tokens ({self.prompt_tokens:,} prompt + "
                f"{self.completion_tokens:,} completion)")
        if not self.priced:
            return (f"{size}; cost unknown: no price for {self.model} (give --price-in and --price-out in US dollars "
                    "per million tokens, or TEACHER_PRICES)")
        return (f"{size}, ${self.cost_usd:.2f} with {self.model} "
                f"(at most ${self.max_cost_usd:.2f} if every answer ran to max_tokens; retries not counted)")


def estimate_run(instructions: Iterable[Instruction | dict] | str | Path, index: Any,
                 teacher: Teacher | TeacherConfig | None = None, config: FactoryConfig | None = None, *,
                 out: str | Path | None = None, failures: str | Path | None = None, sample: int = 200) -> Estimate:
    """Requests, tokens and dollars for the items not done yet, from the prompts of a sample of them."""
    config = config or FactoryConfig()
    tc = teacher.config if isinstance(teacher, Teacher) else teacher or TeacherConfig.from_env()
    done = finished_ids(out, "instruction_id") if out is not None else set()
    if failures is not None and not config.retry_failures:
        done |= finished_ids(failures, "id")
    n, sample_items = 0, []
    for inst in iter_instructions(instructions):
        if inst.id in done:
            continue
        n += 1
        if len(sample_items) < sample:
            sample_items.append(inst)
    prompt_chars, asked = 0, 0
    if sample_items:
        for inst, hits in zip(sample_items, retrieve_batch(index, sample_items, config.k)):
            if hits:
                request, _ = rag_request(tc, inst, hits, prompt=config.prompt, system=config.system,
                                         temperature=config.temperature, max_tokens=config.max_tokens)
                prompt_chars += len(json.dumps(request["messages"], ensure_ascii=False))
                asked += 1
    share = asked / len(sample_items) if sample_items else 0.0
    requests = round(n * share)
    prompt_tokens = round(prompt_chars / CHARS_PER_TOKEN / max(asked, 1) * requests)
    answer_tokens = min(DEFAULT_ANSWER_TOKENS, config.max_tokens)
    model = tc.model or "the configured model"
    priced = tc.mode != "local"
    cost = estimate_cost(model, prompt_tokens, answer_tokens * requests, tc.prices) if priced else 0.0
    worst = estimate_cost(model, prompt_tokens, config.max_tokens * requests, tc.prices) if priced else 0.0
    known = not priced or tc.cache == "replay" or estimate_cost(model, 10**6, 10**6, tc.prices) > 0
    return Estimate(requests, prompt_tokens, answer_tokens * requests, cost, worst, model, known)
