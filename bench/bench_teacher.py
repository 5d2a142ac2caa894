"""How fast is the embedded teacher on this machine, and which cheap settings make it faster? (issue 6)

Each variant starts a fresh llama.cpp server and makes the same calls, in this order:
  S3 cold   a Stage-3 grounded answer (RAG prompt with 4 retrieved passages, JSON schema)
  S2        a Stage-2 call: 5 instructions as JSON under the taxonomy schema
  S3 after  another Stage-3 answer right after the Stage-2 call (shares only the RAG system prompt with S3 cold)
  S3 next   a third Stage-3 answer right after S3 after (what a batch of Stage-3 calls looks like)
Prompt and generation speed come from llama.cpp's own per-request timings in the server log. Peak memory is the
server's VmHWM (it includes the memory-mapped model file). Temperature 0 and a fixed seed keep outputs comparable.

    .venv/bin/python bench/bench_teacher.py                      # Qwen, default variants (~1 h on 2 busy cores)
    .venv/bin/python bench/bench_teacher.py --model smollm2-135m --variants baseline,kit
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from lecture_utils.answer.qa import answer_schema, build_rag_messages
from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.ask.selfinstruct import INSTRUCTION_SCHEMA, build_seed_prompt, load_seeds, pick_examples
from lecture_utils.gather.corpus import book_passages, load_book
from lecture_utils.prompts import SEED_SYSTEM
from lecture_utils.teacher.embedded import LocalServer, cpu_cores, default_threads, ensure_server

REPO = Path(__file__).resolve().parents[1]
CALL_TIMEOUT = 600.0  # seconds; a variant whose call takes longer is reported as timed out
PERF = re.compile(r"(prompt eval|\beval) time =\s*([\d.]+) ms /\s*(\d+) (?:tokens|runs)")


@dataclass
class Variant:
    name: str
    what: str
    server: dict = field(default_factory=dict)  # ensure_server keyword arguments
    passages: int = 4  # Stage-3 passages in the prompt
    passage_chars: int = 900
    examples: int = 3  # Stage-2 examples in the prompt
    default: bool = True  # run unless --variants names others
    busy: int = 0  # busy-loop processes running meanwhile, standing in for other work on the machine


CORES = cpu_cores()
THREADS = default_threads()
# llama-cpp-python's own server defaults: half the cores generate, all of them read prompts; logits for every position.
SERVER_DEFAULTS = {
    "threads": max(1, CORES // 2),
    "extra_args": ("--n_threads_batch", str(CORES), "--logits_all", "True", "--interrupt_requests", "True"),
}
ALL = {"threads": CORES}

VARIANTS = [
    Variant("baseline", "llama_cpp.server defaults (1 thread per 2 cores, logits_all), n_ctx 4096", SERVER_DEFAULTS),
    Variant("kit", f"kit defaults: {THREADS} thread(s) (cores - 1), logits_all off, n_batch 512, n_ctx 4096"),
    Variant("threads1", "kit defaults but 1 thread", {"threads": 1}, default=False),
    Variant("threads_all", f"kit defaults but all {CORES} cores", ALL),
    Variant("batch256", "kit defaults, n_batch 256", {"n_batch": 256}),
    Variant("ctx2048", "kit defaults, n_ctx 2048", {"n_ctx": 2048}),
    Variant("cache", "kit defaults + --cache (RAM prompt cache across requests)", {"cache": True}),
    Variant("small", "kit defaults, smaller prompts: 2 passages of <=600 chars, 1 example", {}, 2, 600, 1),
    Variant("kit_busy", "kit defaults while 1 other process keeps a core busy", {}, default=False, busy=1),
    # All cores next to other work: generation collapses (200x slower on 2 cores), so try it on SmolLM2 first.
    Variant("all_busy", "all cores while 1 other process keeps a core busy", ALL, default=False, busy=1),
    Variant("baseline2", "baseline again, to see how much the busy machine drifted", SERVER_DEFAULTS),
]


@dataclass
class Call:
    label: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    prompt_eval: tuple[float, int]  # (ms, tokens actually evaluated; fewer when a prefix was reused)
    gen_eval: tuple[float, int]  # (ms, tokens generated)
    valid_json: bool


def book_path() -> Path:
    for candidate in (os.environ.get("BOOK_PATH"), REPO / "data" / "pg1342.txt", REPO.parent / "shared/data/pg1342.txt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    sys.exit("bench_teacher needs the book: set BOOK_PATH or run `python -m lecture_utils corpus fetch`")


def read_new(log: Path, offset: int) -> tuple[str, int]:
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    return data.decode("utf-8", "replace"), offset + len(data)


def call(server: LocalServer, label: str, messages: list[dict], schema: dict, max_tokens: int, offset: int):
    body = {
        "model": server.model_alias,
        "messages": messages,
        "temperature": 0,
        "seed": 0,
        "max_tokens": max_tokens,
        "response_format": {"type": "json_object", "schema": schema},
    }
    start = time.perf_counter()
    resp = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=CALL_TIMEOUT)
    seconds = time.perf_counter() - start
    resp.raise_for_status()
    data = resp.json()
    time.sleep(0.2)  # the timing lines are flushed to the log just after the reply
    text, offset = read_new(server.log_path, offset)
    perf = {kind: (float(ms), int(n)) for kind, ms, n in PERF.findall(text)}
    try:
        json.loads(data["choices"][0]["message"]["content"])
        valid = True
    except (ValueError, KeyError, TypeError):
        valid = False
    usage = data.get("usage", {})
    c = Call(label, seconds, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
             perf.get("prompt eval", (0.0, 0)), perf.get("eval", (0.0, 0)), valid)  # fmt: skip
    return c, offset


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def run_variant(variant: Variant, model: str, index: FastBM25Index, questions: list[str], log_dir: Path) -> dict:
    # Bounded stand-ins for other work: each stops by itself after 15 minutes and is killed when the variant ends.
    busy = [
        subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 900\nwhile time.time() < end: pass"])
        for _ in range(variant.busy)
    ]
    t0 = time.perf_counter()
    server = ensure_server(model, log_dir=log_dir, **({"n_ctx": 4096} | variant.server))
    load_s = time.perf_counter() - t0
    try:
        offset = server.log_path.stat().st_size

        def stage3(label: str, question: str):
            hits = index.search(question, k=variant.passages)
            hits = [(cut_passage(p, variant.passage_chars), s) for p, s in hits]
            messages = build_rag_messages(question, hits)
            return call(server, label, messages, answer_schema([p.id for p, _ in hits]), 300, offset)

        calls = []
        c, offset = stage3("S3 cold", questions[0])
        calls.append(c)
        prompt = build_seed_prompt(5, pick_examples(variant.examples, seed=0))
        messages = [{"role": "system", "content": SEED_SYSTEM}, {"role": "user", "content": prompt}]
        c, offset = call(server, "S2", messages, INSTRUCTION_SCHEMA(5), 700, offset)
        calls.append(c)
        c, offset = stage3("S3 after", questions[1])
        calls.append(c)
        c, offset = stage3("S3 next", questions[2])
        calls.append(c)
        rss = peak_rss_mb(server.process.pid)
    finally:
        server.stop()
        for p in busy:
            p.kill()
            p.wait()
    prompt_ms, prompt_n = calls[0].prompt_eval  # the cold call evaluates its whole prompt
    gen_ms = sum(c.gen_eval[0] for c in calls)
    gen_n = sum(c.gen_eval[1] for c in calls)
    return {
        "variant": variant.name,
        "load_s": load_s,
        "prompt_tok_s": prompt_n / prompt_ms * 1000 if prompt_ms else 0.0,
        "gen_tok_s": gen_n / gen_ms * 1000 if gen_ms else 0.0,
        "s2_s": calls[1].seconds,
        "s3_cold_s": calls[0].seconds,
        "s3_after_s": calls[2].seconds,
        "s3_next_s": calls[3].seconds,
        "peak_rss_mb": rss,
        "calls": [c.__dict__ for c in calls],
    }


def cut_passage(passage, max_chars: int):
    """The passage cut to max_chars (format_context cuts at 900 anyway); a copy, the index is untouched."""
    text = passage.text if len(passage.text) <= max_chars else passage.text[:max_chars].rsplit(" ", 1)[0] + " ..."
    return replace(passage, text=text)


COLUMNS = [
    ("load_s", "load s"),
    ("prompt_tok_s", "prompt tok/s"),
    ("gen_tok_s", "gen tok/s"),
    ("s2_s", "S2 s"),
    ("s3_cold_s", "S3 cold s"),
    ("s3_after_s", "S3 after s"),
    ("s3_next_s", "S3 next s"),
    ("peak_rss_mb", "peak MB"),
]


def print_row(row: dict, base: dict | None) -> None:
    cells = [f"{row['variant']:<10}"]
    for key, _ in COLUMNS:
        value = row[key]
        ratio = ""
        if base and base[key]:
            r = value / base[key]
            ratio = f" (x{r:.2f})"
        cells.append(f"{value:9.1f}{ratio:<9}")
    print(" ".join(cells), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="recipe name or .gguf path")
    ap.add_argument("--variants", default=",".join(v.name for v in VARIANTS if v.default),
                    help=f"comma-separated, from: {', '.join(v.name for v in VARIANTS)}")
    ap.add_argument("--json", type=Path, help="also write all figures to this file")
    args = ap.parse_args()

    chosen = [v for v in VARIANTS if v.name in args.variants.split(",")]
    passages = book_passages(load_book(book_path()))
    index = FastBM25Index(passages)
    questions = [s.instruction for s in load_seeds()[:3]]
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "art-of-the-ask" / "bench"

    print(f"model {args.model}; {CORES} cores, load average {os.getloadavg()[0]:.1f} at start "
          f"(other work on this machine slows every figure; compare ratios, not absolutes)")  # fmt: skip
    for v in chosen:
        print(f"  {v.name:<10} {v.what}")
    print(f"{'variant':<10} " + " ".join(f"{label:<18}" for _, label in COLUMNS))
    print("  (ratios are variant / baseline: above 1 is better for tok/s, below 1 is better for seconds and MB)")
    rows = []
    base = None
    for v in chosen:
        try:
            row = run_variant(v, args.model, index, questions, log_dir)
        except httpx.TimeoutException:
            print(f"{v.name:<10} one call took over {CALL_TIMEOUT:.0f} s: stopped (load avg {os.getloadavg()[0]:.1f})")
            continue
        row["load_avg"] = os.getloadavg()[0]
        rows.append(row)
        if v.name == "baseline":
            base = row
        print_row(row, base if v.name != "baseline" else None)
    for row in rows:
        bad = [c["label"] for c in row["calls"] if not c["valid_json"]]
        tokens = ", ".join(f"{c['label']} {c['prompt_tokens']}->{c['completion_tokens']}" for c in row["calls"])
        evald = ", ".join(f"{c['prompt_eval'][1]}" for c in row["calls"])
        print(f"{row['variant']:<10} tokens in->out: {tokens}; prompt tokens evaluated: {evald}"
              f"{'; INVALID JSON: ' + ', '.join(bad) if bad else ''}; load avg {row['load_avg']:.1f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
