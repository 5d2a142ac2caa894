"""Benchmarks for the data factory (issue 7). Prints figures and ratios measured in one run; no timed assertions.

    .venv/bin/python bench/bench_factory.py            # everything, about 3 minutes on 2 cores
    .venv/bin/python bench/bench_factory.py --quick    # smaller sizes
    .venv/bin/python bench/bench_factory.py --only throughput,memory,faults,resume

throughput  a local OpenAI-compatible server (bench/fake_latency_server.py, its own process) answers every request
            after L = 500 ms and serves at most C at once, so the ceiling is C/L requests/s. For C = 8, 32, 128 the
            factory (concurrency C) is measured against that ceiling, with its CPU time per request, next to a
            one-at-a-time loop (the Alpaca way) and, at C = 128, a plain AsyncOpenAI + asyncio.gather client.
memory      peak RSS of `python -m lecture_utils factory` over 1,000 and 50,000 instructions (L = 0 here, so the
            50,000 run takes about a minute rather than 3 hours).
faults      2,000 items with 20% of requests failing at random (429 + Retry-After, 500, timeouts, dropped
            connections, malformed JSON): every item must end in the output or the failures file, exactly once.
resume      the same 2,000 items and faults, one run SIGKILLed part-way and started again, one run left alone:
            both must end with the same ids, no duplicates and no broken line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import openai  # noqa: E402

from lecture_utils.answer.qa import rag_request  # noqa: E402
from lecture_utils.answer.retrieval import FastBM25Index  # noqa: E402
from lecture_utils.records import Instruction, Passage, write_jsonl  # noqa: E402
from lecture_utils.scale.factory import FactoryConfig, run_factory_async  # noqa: E402
from lecture_utils.teacher.client import TeacherConfig  # noqa: E402
from lecture_utils.text.tokens import search_words  # noqa: E402

SERVER = REPO / "bench" / "fake_latency_server.py"
MODEL = "gpt-4o-mini"


class Server:
    """The fake latency server in its own process, so its CPU is not counted as the factory's."""

    def __init__(self, **options):
        args = [sys.executable, str(SERVER), "--stats"]
        for k, v in options.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline().split()[1])}/v1"
        self.stats: dict = {}

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        try:
            self.stats = json.loads(err.strip().splitlines()[-1])  # requests served and faults injected
        except (ValueError, IndexError):
            pass


def load_passages() -> tuple[list[Passage], str]:
    """The book if it is here (BOOK_PATH, data/, ../shared/data/), else a synthetic corpus of the same size."""
    for candidate in (os.environ.get("BOOK_PATH"), REPO / "data" / "pg1342.txt", REPO.parent / "shared" / "data" / "pg1342.txt"):
        if candidate and Path(candidate).exists():
            from lecture_utils.gather.corpus import book_passages, load_book

            return book_passages(load_book(candidate)), f"the book ({Path(candidate).name})"
    rng = random.Random(0)
    vocab = [f"word{i}" for i in range(5000)]
    passages = [Passage(f"ch{i // 20 + 1}-p{i % 20:03d}", "synthetic", " ".join(rng.choices(vocab, k=200)), 0, 1)
                for i in range(1000)]
    return passages, "a synthetic 1,000-passage corpus"


def make_instructions(passages: list[Passage], n: int, seed: int = 0, markers: bool = False) -> list[Instruction]:
    """Questions made of three words of one passage; with markers, 1 in 100 is one the fake server always
    refuses and 1 in 100 one it answers emptily (failures that retries cannot fix)."""
    rng = random.Random(seed)
    words = [search_words(p.text) for p in passages]
    words = [w for w in words if len(w) >= 3]
    out = []
    for i in range(n):
        a, b, c = rng.sample(rng.choice(words), 3)
        text = f"What does the text tell us about {a}, {b} and {c}?"
        if markers and i % 100 == 17:
            text += " REFUSE"
        elif markers and i % 100 == 59:
            text += " EMPTY"
        out.append(Instruction(f"b{i:06d}", text, "plot"))
    return out


def teacher(base_url: str) -> TeacherConfig:
    return TeacherConfig(mode="endpoint", base_url=base_url, model=MODEL, server_kind="openai", api_key="sk-bench")


def line_ids(path: Path, key: str) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)[key] for line in path.read_text(encoding="utf-8").splitlines()]


# --- throughput -------------------------------------------------------------------------------------------------


def run_factory_timed(insts, index, base_url, concurrency, work: Path) -> dict:
    out = work / f"tp-{concurrency}.jsonl"
    cpu0 = time.process_time()
    summary = asyncio.run(run_factory_async(insts, index, out, teacher=teacher(base_url),
                                            config=FactoryConfig(concurrency=concurrency, progress=False)))
    cpu = time.process_time() - cpu0
    return {"rate": summary.done / summary.elapsed_s, "cpu_ms": 1000 * cpu / max(summary.requests, 1),
            "items": summary.done, "failed": summary.failed}


def baseline_loop(insts, index, base_url, n: int) -> dict:
    """The Alpaca way: one request after another with the plain client."""
    tc = teacher(base_url)
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    start, cpu0 = time.perf_counter(), time.process_time()
    for inst in insts[:n]:
        request, _ = rag_request(tc, inst, index.search(inst.instruction, k=4))
        client.chat.completions.create(**request)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    client.close()
    return {"rate": n / elapsed, "cpu_ms": 1000 * cpu / n}


def naive_async(insts, index, base_url, concurrency: int) -> dict:
    """A plain AsyncOpenAI client with asyncio.gather: typed requests and pydantic replies for every call."""
    tc = teacher(base_url)
    requests = [rag_request(tc, inst, hits)[0] for inst, hits in zip(insts, index.search_batch([i.instruction for i in insts], k=4))]

    async def go():
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(request):
            async with sem:
                reply = await client.chat.completions.create(**request)
                return reply.choices[0].message.content

        start, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(r) for r in requests))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        await client.close()
        return {"rate": len(requests) / elapsed, "cpu_ms": 1000 * cpu / len(requests)}

    return asyncio.run(go())


def bench_throughput(passages, index, work: Path, quick: bool, latency: float = 0.5) -> list[str]:
    results, verdicts = [], []
    print(f"\n== throughput: L = {latency * 1000:.0f} ms, ceiling C/L; runs of 12 x C items (8 x C at C = 128) ==")
    with Server(latency=latency, cap=8) as s:
        n = 6 if quick else 10
        base = baseline_loop(make_instructions(passages, n, seed=9), index, s.base_url, n)
    print(f"one-at-a-time loop (Alpaca way): {base['rate']:.2f} req/s = {base['rate'] * latency:.2f} of 1/L, "
          f"CPU {base['cpu_ms']:.2f} ms/request")
    for c in (8, 32, 128):
        waves = (4 if quick else 12) if c < 128 else (4 if quick else 8)
        insts = make_instructions(passages, waves * c, seed=c)
        with Server(latency=latency, cap=c) as s:
            server_cpu0 = s.cpu_s()
            r = run_factory_timed(insts, index, s.base_url, c, work)
            r["server_cpu_ms"] = 1000 * (s.cpu_s() - server_cpu0) / len(insts)
            naive = naive_async(make_instructions(passages, waves * c, seed=c + 1), index, s.base_url, c) if c == 128 else None
        ceiling = c / latency
        target = 0.9 if c < 128 else 0.75
        frac = r["rate"] / ceiling
        ok = frac >= target
        verdicts.append(f"throughput C={c}: {frac:.2f} of ceiling (target {target}) {'PASS' if ok else 'FAIL'}")
        print(f"factory C={c:3d}: {r['rate']:6.1f} req/s of {ceiling:5.0f} ceiling = {frac:.2f} (target >= {target}), "
              f"CPU {r['cpu_ms']:.2f} ms/request (server {r['server_cpu_ms']:.2f}), "
              f"{r['rate'] / base['rate']:.0f}x the one-at-a-time loop")
        if naive:
            print(f"  plain AsyncOpenAI + gather C={c}: {naive['rate']:6.1f} req/s = {naive['rate'] / ceiling:.2f} of "
                  f"ceiling, CPU {naive['cpu_ms']:.2f} ms/request (factory uses {r['cpu_ms'] / naive['cpu_ms']:.2f}x that)")
        results.append(r)
    return verdicts


# --- memory -----------------------------------------------------------------------------------------------------


def cli_env(base_url: str) -> dict:
    return {**os.environ, "TEACHER": "endpoint", "TEACHER_BASE_URL": base_url, "TEACHER_MODEL": MODEL,
            "TEACHER_API_KEY": "sk-bench", "TEACHER_CACHE": "off", "PYTHONPATH": str(REPO)}


def cli(run_dir: Path, base_url: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lecture_utils", "factory", str(run_dir), "--no-progress", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=cli_env(base_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_dir_for(path: Path, passages, insts) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    write_jsonl(path / "passages.jsonl", passages)
    write_jsonl(path / "instructions.jsonl", insts)
    return path


def peak_rss_mb(proc: subprocess.Popen) -> tuple[float, int]:
    """Peak RSS of one finished child, read from its own rusage (not the largest of all children)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, proc.returncode


def bench_memory(passages, work: Path, quick: bool) -> list[str]:
    sizes = (1_000, 10_000) if quick else (1_000, 50_000)
    print(f"\n== memory: peak RSS of the factory CLI, L = 0 ms (so {sizes[-1]:,} items finish quickly), C = 64 ==")
    peaks = []
    with Server(latency=0.0, cap=64) as s:
        for n in sizes:
            run_dir = run_dir_for(work / f"mem-{n}", passages, make_instructions(passages, n, seed=n))
            start = time.perf_counter()
            proc = cli(run_dir, s.base_url, "--concurrency", "64")
            peak, code = peak_rss_mb(proc)
            elapsed = time.perf_counter() - start
            done = len(line_ids(run_dir / "qa_pairs.jsonl", "id")) + len(line_ids(run_dir / "qa_pairs.failures.jsonl", "id"))
            peaks.append(peak)
            print(f"{n:6,} items: peak RSS {peak:6.1f} MB, {done:,} accounted for, {elapsed:.1f}s "
                  f"({done / elapsed:.0f} items/s end to end), exit {code}")
    ratio = peaks[-1] / peaks[0]
    print(f"peak RSS {sizes[-1]:,} / {sizes[0]:,} items = {ratio:.2f} (flat is 1.0; items grew {sizes[-1] // sizes[0]}x)")
    return [f"memory: {sizes[-1]:,}/{sizes[0]:,} items peak RSS ratio {ratio:.2f} {'PASS' if ratio < 1.5 else 'FAIL'}"]


# --- faults and resume ------------------------------------------------------------------------------------------

FAULTY = dict(latency=0.05, cap=128, fault_rate=0.2, retry_after=0.2, hang=60, seed=11)


def accounting(run_dir: Path, expected: set[str]) -> tuple[bool, str, set, set]:
    out_text = (run_dir / "qa_pairs.jsonl").read_text(encoding="utf-8")
    fail_text = (run_dir / "qa_pairs.failures.jsonl").read_text(encoding="utf-8")
    whole = out_text.endswith("\n") and (not fail_text or fail_text.endswith("\n"))
    out = [json.loads(x)["instruction_id"] for x in out_text.splitlines()]  # raises on a broken line
    failed = [json.loads(x)["id"] for x in fail_text.splitlines()]
    dup = len(out) - len(set(out)) + len(failed) - len(set(failed)) + len(set(out) & set(failed))
    ok = whole and dup == 0 and set(out) | set(failed) == expected
    reasons = {}
    for x in fail_text.splitlines():
        r = json.loads(x)["reason"]
        reasons[r] = reasons.get(r, 0) + 1
    text = (f"{len(out):,} answered + {len(failed):,} failed {reasons or ''} = {len(set(out) | set(failed)):,} of "
            f"{len(expected):,} ids, {dup} duplicates, whole lines: {whole}")
    return ok, text, set(out), set(failed)


def bench_faults(passages, work: Path, quick: bool) -> list[str]:
    n = 500 if quick else 2_000
    print(f"\n== faults: {n:,} items, 20% of requests fail at random (429/500/timeout/drop/bad JSON), C = 64 ==")
    insts = make_instructions(passages, n, seed=5, markers=True)
    with Server(**FAULTY) as s:
        run_dir = run_dir_for(work / "faults", passages, insts)
        start = time.perf_counter()
        proc = cli(run_dir, s.base_url, "--concurrency", "64", "--timeout", "1", "--attempts", "8")
        _, err = proc.communicate(timeout=600)
        elapsed = time.perf_counter() - start
    ok, text, _, _ = accounting(run_dir, {i.id for i in insts})
    injected = {k: v for k, v in s.stats.items() if k != "requests"}
    print(f"server: {s.stats.get('requests', 0):,} requests, faults injected {injected}")
    print(f"{text}; {elapsed:.1f}s, exit {proc.returncode}")
    return [f"faults: every item accounted for exactly once {'PASS' if ok and proc.returncode == 0 else 'FAIL'}"]


def bench_resume(passages, work: Path, quick: bool) -> list[str]:
    n = 500 if quick else 2_000
    print(f"\n== resume: {n:,} items with the same 20% faults; SIGKILL part-way, start again; vs a run left alone ==")
    insts = make_instructions(passages, n, seed=6, markers=True)
    expected = {i.id for i in insts}
    with Server(**FAULTY) as s:
        whole = run_dir_for(work / "whole", passages, insts)
        killed = run_dir_for(work / "killed", passages, insts)
        args = ("--concurrency", "64", "--timeout", "1", "--attempts", "8")
        alone = cli(whole, s.base_url, *args)
        victim = cli(killed, s.base_url, *args)
        out = killed / "qa_pairs.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < n * 0.4):
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        at_kill = out.read_bytes().count(b"\n")
        torn = not out.read_bytes().endswith(b"\n")
        resumed = cli(killed, s.base_url, *args)
        _, err = resumed.communicate(timeout=600)
        alone.communicate(timeout=600)
    ok_k, text_k, out_k, fail_k = accounting(killed, expected)
    ok_w, text_w, out_w, fail_w = accounting(whole, expected)
    same = (out_k, fail_k) == (out_w, fail_w)
    print(f"killed at {at_kill:,} lines (torn last line: {torn}); resumed run exit {resumed.returncode}")
    print(f"killed + resumed: {text_k}")
    print(f"left alone:       {text_w}")
    print(f"same answered ids: {out_k == out_w}, same failed ids: {fail_k == fail_w}")
    return [f"resume: killed+resumed == uninterrupted, no duplicates or torn lines "
            f"{'PASS' if ok_k and ok_w and same else 'FAIL'}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (CI-like)")
    p.add_argument("--only", default="throughput,memory,faults,resume")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    passages, label = load_passages()
    index = FastBM25Index(passages)
    print(f"corpus: {label}, {len(passages):,} passages; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine lowers the throughput figures)")
    work = Path(tempfile.mkdtemp(prefix="bench_factory_"))
    verdicts: list[str] = []
    try:
        for name in args.only.split(","):
            if name == "throughput":
                verdicts += bench_throughput(passages, index, work, args.quick)
            elif name == "memory":
                verdicts += bench_memory(passages, work, args.quick)
            elif name == "faults":
                verdicts += bench_faults(passages, work, args.quick)
            elif name == "resume":
                verdicts += bench_resume(passages, work, args.quick)
            else:
                raise SystemExit(f"unknown scenario {name!r}: use throughput, memory, faults, resume")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    print("\n== summary ==")
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
