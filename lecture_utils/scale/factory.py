"""Stage 5: the data factory. Stage 3 over thousands of instructions: concurrent, within budgets, resumable.

    summary = run_factory("runs/demo/instructions.jsonl", index, "runs/demo/qa_pairs.jsonl", teacher=teacher)
    python -m lecture_utils factory runs/demo --concurrency 32

Read -> retrieve -> call -> record: a producer reads instructions lazily and retrieves their passages in batches;
2 x concurrency workers take them from a bounded queue and await qa.answer_item() on one engine.Engine (which keeps
`concurrency` requests in flight within the budgets, and retries); each finished item is written at once, to the
output file or to the failures file with its reason (runs.py: whole lines, resume). Memory does not grow with the
item count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from lecture_utils.answer.qa import answer_item, no_passages_pair, retrieve_batch
from lecture_utils.answer.verify import verify_pair
from lecture_utils.records import Instruction, LineWriter
from lecture_utils.scale.estimate import estimate_run  # noqa: F401 - notebook 5 calls it as factory.estimate_run
from lecture_utils.scale.runs import (
    FactoryConfig,
    FactoryError,
    count_remaining,
    failure_record,
    failures_path,
    iter_instructions,
    progress_bar,
    start_run,
)
from lecture_utils.teacher.budgets import SpendCap
from lecture_utils.teacher.client import Teacher, TeacherConfig, resolve
from lecture_utils.teacher.engine import Engine
from lecture_utils.teacher.prices import cost_in
from lecture_utils.teacher.wire import AnswerError, CallError


@dataclass
class Summary:
    """What a run did; str() gives the report printed at the end."""

    out: str
    failures: str
    seen: int = 0  # instructions read from the input
    skipped: int = 0  # already in the output or failures file from an earlier run
    duplicates: int = 0  # ids seen twice in the input (the first one counts)
    succeeded: int = 0
    failed: int = 0
    not_in_text: int = 0  # succeeded, but the passages did not hold the answer
    reasons: dict[str, int] = field(default_factory=dict)  # failure reason -> count
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    cached: int = 0  # answers served from the record/replay cache
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    spent_usd: float | None = None  # with a spend cap: the total spent by every run on this output so far
    kept: int | None = None  # with a target: answers that pass the free checks, earlier runs' included
    elapsed_s: float = 0.0
    model: str = ""
    interrupted: bool = False

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def __str__(self) -> str:
        rate = self.done / self.elapsed_s if self.elapsed_s else 0.0
        lines = [
            f"factory {'interrupted' if self.interrupted else 'finished'} in {self.elapsed_s:.1f}s "
            f"({rate:.1f} items/s) with {self.model}",
            f"  {self.succeeded:,} answered ({self.not_in_text:,} not in the text) -> {self.out}",
            f"  {self.failed:,} failed -> {self.failures}"
            + (f": {', '.join(f'{r} {n}' for r, n in sorted(self.reasons.items(), key=lambda x: -x[1]))}" if self.reasons else ""),
            f"  {self.skipped:,} already done by an earlier run, {self.duplicates:,} duplicate ids skipped",
            f"  {self.requests:,} requests ({self.retries:,} retries, {self.cached:,} answers from the cache), "
            f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens, about ${self.cost_usd:.4f}",
        ]
        if self.spent_usd is not None:
            lines.append(f"  ${self.spent_usd:.4f} spent on this output by every run so far (the spend cap counts it)")
        if self.kept is not None:
            lines.append(f"  {self.kept:,} answers pass the free checks (the target counts them)")
        if self.interrupted:
            lines.append("  run the same command again to finish the remaining items")
        return "\n".join(lines)


class Factory:
    """One run: a producer reads and retrieves, workers ask the engine, every finished item is written at once."""

    def __init__(self, teacher_config: TeacherConfig, index: Any, out: Path, failures: Path,
                 config: FactoryConfig) -> None:
        if config.concurrency is None:  # llama.cpp on two cores answers one request at a time anyway
            config = dataclasses.replace(config, concurrency=2 if teacher_config.mode == "local" else 8)
        self.tc, self.index, self.cfg = teacher_config, index, config
        self.summary = Summary(out=str(out), failures=str(failures), model=teacher_config.model or "")
        self.out_path, self.failures_path = out, failures
        self.engine: Engine | None = None
        self.cap = SpendCap(config.max_cost_usd, out.with_suffix(".spend.txt")) if config.max_cost_usd else None
        self.by_id = index.by_id if config.target_kept else {}
        self.bar: Any = None
        self.capped: CallError | None = None  # the spend cap was met: in-flight items finish, no new one starts
        self._postfix_at = 0.0

    async def run(self, instructions: Iterable[Instruction | dict] | str | Path) -> Summary:
        start = time.perf_counter()
        done = start_run(self.out_path, self.failures_path, self.cfg.retry_failures)
        countable = isinstance(instructions, (str, Path, list, tuple))  # a generator can only be read once
        total = count_remaining(instructions, done) if countable else None
        self.out, self.fail = LineWriter(self.out_path), LineWriter(self.failures_path)
        window = self.cfg.window or 2 * self.cfg.concurrency
        queue: asyncio.Queue = asyncio.Queue(maxsize=window)
        self.bar = progress_bar(total, self.cfg.progress)
        tasks: list[asyncio.Task] = []
        try:
            cfg = self.cfg
            self.engine = Engine(self.tc, concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
                                 max_attempts=cfg.max_attempts, backoff=(cfg.backoff_base_s, cfg.backoff_max_s),
                                 rpm=cfg.rpm, tpm=cfg.tpm, cap=self.cap)
            await self.engine.start()
            self.summary.model = self.engine.config.model or ""
            self._check_price()
            if cfg.target_kept:
                from lecture_utils.records import QAPair, iter_jsonl

                self.summary.kept = sum(self._keeps(p) for p in iter_jsonl(self.out_path, QAPair)) \
                    if self.out_path.exists() else 0
            if not self.engine.replay:
                await self.engine.probe_strategy()  # once, before thousands of requests
            tasks = [asyncio.create_task(self._worker(queue)) for _ in range(window)]
            tasks.append(asyncio.create_task(self._produce(instructions, done, queue, window)))
            await asyncio.gather(*tasks)
            if self.capped is not None:
                raise self.capped
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.summary.interrupted = True
            raise
        except CallError as e:  # one that every item would share: stop instead of failing them all
            self.summary.interrupted = True
            raise FactoryError(f"stopped: {e} ({self.summary.done} items finished are saved; fix it and run again "
                               "to resume)") from None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.out.close()
            self.fail.close()
            if self.engine is not None:
                await self.engine.aclose()
                self._count()
            self.summary.elapsed_s = time.perf_counter() - start
            if self.bar is not None:
                self._set_postfix(force=True)
                self.bar.close()
                if self.summary.interrupted:
                    print(self.summary, file=sys.stderr)
        return self.summary

    def _check_price(self) -> None:
        c = self.engine.config
        if self.cap is not None and c.mode != "local" and not c.cache == "replay" \
                and cost_in(self.engine.prices, c.model or "", 10**6, 10**6) == 0:
            raise FactoryError(f"a spend cap needs the price of {c.model}: give --price-in and --price-out (US dollars "
                               "per million tokens), or TEACHER_PRICES")

    def _keeps(self, pair: Any) -> bool:
        """The answer passes the checks that need no teacher (verify.py): what the target counts."""
        return not pair.not_in_text and bool(verify_pair(None, pair, self.by_id, llm_checks=False).passed)

    def _enough(self) -> bool:
        return self.capped is not None or (bool(self.cfg.target_kept) and (self.summary.kept or 0) >= self.cfg.target_kept)

    async def _produce(self, instructions: Any, done: set[str], queue: asyncio.Queue, n_workers: int) -> None:
        s = self.summary
        items = iter_instructions(instructions)
        started: set[str] = set()
        exhausted = False
        while not exhausted and not self._enough():
            chunk: list[Instruction] = []
            read = 0
            for inst in itertools.islice(items, self.cfg.retrieval_batch):
                read += 1
                if inst.id in done:
                    s.skipped += 1
                elif inst.id in started:
                    s.duplicates += 1  # a second copy of an id is never answered twice
                else:
                    started.add(inst.id)
                    chunk.append(inst)
            s.seen += read
            exhausted = read < self.cfg.retrieval_batch
            for inst, hits in zip(chunk, retrieve_batch(self.index, chunk, self.cfg.k)):
                if self._enough():  # the items not asked stay for a later run
                    break
                await queue.put((inst, hits))
        for _ in range(n_workers):
            await queue.put(None)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            if not self._enough():  # the target or the cap was met while it waited: it stays for a later run
                await self._answer(*job)

    async def _answer(self, inst: Instruction, hits: list) -> None:
        if not hits:
            self._succeed(no_passages_pair(inst))
            return
        cfg = self.cfg
        try:
            pair = await answer_item(self.engine, inst, hits, prompt=cfg.prompt, system=cfg.system,
                                     temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                     tries=self.tc.structured_attempts)
        except AnswerError as e:  # refusal, empty answer, parse error
            self._fail(failure_record(inst.id, inst.instruction, inst.category, e.reason, e.detail, e.attempts))
        except CallError as e:
            if e.reason == "spend cap":  # not the item's fault: it stays for the run with a higher cap
                self.capped = e
                return
            if e.fatal:
                raise
            self._fail(failure_record(inst.id, inst.instruction, inst.category, e.reason, e.detail, e.attempts))
        else:
            self._succeed(pair)

    def _succeed(self, pair: Any) -> None:
        s = self.summary
        if pair.not_in_text and not self.cfg.keep_not_in_text:
            self._fail(failure_record(pair.instruction_id, pair.instruction, pair.category, "not in text",
                                      "the passages do not hold the answer", 1))
            return
        self.out.write(pair)
        s.succeeded += 1
        if self.cfg.target_kept:
            s.kept = (s.kept or 0) + self._keeps(pair)
        s.not_in_text += pair.not_in_text
        self._tick()

    def _fail(self, record: dict) -> None:
        self.fail.write(record)
        s = self.summary
        s.failed += 1
        s.reasons[record["reason"]] = s.reasons.get(record["reason"], 0) + 1
        self._tick()

    def _count(self) -> None:
        s, u = self.summary, self.engine.usage
        s.requests, s.retries, s.cached = u.requests, u.retries, u.cached_calls
        s.prompt_tokens, s.completion_tokens, s.cost_usd = u.prompt_tokens, u.completion_tokens, u.cost_usd
        if self.cap is not None:
            s.spent_usd = round(self.cap.spent, 6)

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self._set_postfix()

    def _set_postfix(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._postfix_at > 1.0:  # formatting the postfix on every item would cost real CPU
            self._postfix_at = now
            if self.engine is not None:
                self._count()
            s = self.summary
            self.bar.set_postfix_str(f"ok={s.succeeded} failed={s.failed} tokens={s.prompt_tokens + s.completion_tokens:,} "
                                     f"${s.cost_usd:.3f}", refresh=False)


async def run_factory_async(instructions: Iterable[Instruction | dict] | str | Path, index: Any, out: str | Path,
                            failures: str | Path | None = None, *, teacher: Teacher | TeacherConfig | str | None = None,
                            config: FactoryConfig | None = None, **options: Any) -> Summary:
    """The factory on the running event loop; see run_factory."""
    config = dataclasses.replace(config or FactoryConfig(), **options)
    if isinstance(teacher, Teacher):
        tc = teacher.config
    elif isinstance(teacher, TeacherConfig):
        tc = teacher
    else:  # starts the embedded teacher when that is what the environment says
        tc = await asyncio.to_thread(resolve, teacher)
    return await Factory(tc, index, Path(out), failures_path(out, failures), config).run(instructions)


def run_factory(instructions: Iterable[Instruction | dict] | str | Path, index: Any, out: str | Path,
                failures: str | Path | None = None, *, teacher: Teacher | TeacherConfig | str | None = None,
                config: FactoryConfig | None = None, **options: Any) -> Summary:
    """Answer every instruction not yet in `out` or `failures`; returns the Summary (also printed with progress on).

    `teacher` is a Teacher, a TeacherConfig, a mode name or None (the environment); `options` override
    FactoryConfig fields, e.g. concurrency=32, rpm=500. Works in scripts and in Jupyter (which has a loop running).
    """
    def go() -> Summary:
        return asyncio.run(run_factory_async(instructions, index, out, failures, teacher=teacher, config=config,
                                             **options))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        summary = go()
    else:  # inside Jupyter: run on a fresh loop in a helper thread
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            summary = pool.submit(go).result()
    if (config.progress if config else options.get("progress", True)):
        print(summary)
    return summary
