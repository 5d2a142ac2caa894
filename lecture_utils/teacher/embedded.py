"""The embedded offline teacher: llama.cpp's OpenAI-compatible server, run as a child process on 127.0.0.1.

ensure_server() starts one server per model and settings, waits until it answers, and stops it when Python exits.
serve() runs it in the foreground for other tools (`python -m lecture_utils teacher serve`).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import runpy
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from lecture_utils import settings
from lecture_utils.errors import KitError
from lecture_utils.teacher.gguf import resolve_model

SETUP_HINT = (
    'run `make setup`, or: CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" '
    '.venv/bin/pip install "llama-cpp-python[server]==0.3.36"'
)
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


class LocalTeacherError(KitError, RuntimeError):
    """The embedded server could not be started or did not answer (one-line message saying how to fix it)."""


@dataclass
class LocalServer:
    """A running llama.cpp server; base_url ends in /v1, ready for the openai client."""

    base_url: str
    model_alias: str
    model_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None
    port: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit, then kill it if it does not."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        _servers.pop(_key_of(self), None)


_servers: dict[tuple, LocalServer] = {}
_lock = threading.Lock()


def _key_of(server: LocalServer) -> tuple | None:
    return next((k for k, s in _servers.items() if s is server), None)


@atexit.register
def stop_all() -> None:
    """Stop every server this process started (also registered to run at exit)."""
    for server in list(_servers.values()):
        server.stop()


def check_llama_cpp() -> None:
    """Fail early, in one line, when the llama.cpp server package is not installed."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LocalTeacherError(
            f"the embedded teacher needs llama-cpp-python[server] (missing {missing[0]}): {SETUP_HINT}"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads() -> int:
    """$TEACHER_THREADS, else one core fewer than this process may use (at least one).

    llama.cpp's threads spin while they wait for each other, so a thread that shares its core with other busy work
    (the notebook, a second server) stalls the rest. Measured on 2 cores with one other busy process (SmolLM2):
    2 threads generated 0.33 tokens/s instead of 68, and read prompts 3x slower; 1 thread kept its full speed.
    On an idle machine all cores are ~1.5x faster: set TEACHER_THREADS to the core count if the machine is yours.
    """
    wanted = settings.get("TEACHER_THREADS")
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise LocalTeacherError(f"TEACHER_THREADS={wanted!r} is not a positive whole number: set it to e.g. 2")
        return int(wanted)
    return max(1, cpu_cores() - 1)


def server_command(
    model_path: Path,
    alias: str,
    *,
    host: str,
    port: int,
    n_ctx: int = 4096,
    threads: int | None = None,
    n_batch: int | None = None,
    cache: bool = False,
    logits_all: bool = False,
    extra_args: tuple[str, ...] = (),
    parent_pid: int | None = None,
) -> list[str]:
    """The command line for the server; parent_pid makes it exit when that process goes away."""
    t = threads or default_threads()
    args = [
        "--model", str(model_path), "--model_alias", alias, "--host", host, "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(t), "--n_threads_batch", str(t),
        # logits_all=True keeps n_ctx x vocab floats (2.5 GB for Qwen at 4096 tokens) only to serve logprobs.
        "--logits_all", str(logits_all),
        # Concurrent clients must queue, not cancel each other's generations.
        "--interrupt_requests", "False",
        "--use_mlock", "False",
    ]  # fmt: skip
    if n_batch:
        args += ["--n_batch", str(n_batch), "--n_ubatch", str(n_batch)]
    if cache:
        args += ["--cache", "True"]
    args += list(extra_args)
    if parent_pid is None:
        return [sys.executable, "-m", "llama_cpp.server", *args]
    return [sys.executable, "-m", "lecture_utils.teacher.embedded", "--parent-pid", str(parent_pid), *args]


def _tail(path: Path | None, lines: int = 4) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with open(path, errors="replace") as f:
        last = deque((ln.strip() for ln in f if ln.strip()), maxlen=lines)
    return " | ".join(last) or "(empty log)"


def wait_healthy(server: LocalServer, timeout: float = 180.0) -> None:
    """Poll GET /v1/models until the server lists its model; a clear error if it dies or stays silent."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process is not None and server.process.poll() is not None:
            raise LocalTeacherError(
                f"llama.cpp server for {server.model_path.name} exited with code {server.process.returncode}: "
                f"{_tail(server.log_path)} (full log: {server.log_path})"
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as resp:
                ids = [m.get("id") for m in json.load(resp).get("data", [])]
            if server.model_alias in ids:
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass  # still loading the model
        if time.monotonic() > deadline:
            server.stop()
            raise LocalTeacherError(
                f"llama.cpp server for {server.model_path.name} did not answer within {timeout:.0f} s: "
                f"{_tail(server.log_path)} (full log: {server.log_path})"
            )
        time.sleep(0.25)


def ensure_server(
    model: str | os.PathLike | None = None,
    port: int | None = None,
    n_ctx: int = 4096,
    threads: int | None = None,
    *,
    n_batch: int | None = None,
    cache: bool = False,
    extra_args: tuple[str, ...] = (),
    log_dir: str | os.PathLike | None = None,
    timeout: float = 180.0,
) -> LocalServer:
    """A running embedded teacher for `model` (a recipe name, alias or .gguf path; None = best installed).

    The same model and settings reuse the server already started by this process.
    """
    alias, path = resolve_model(model)
    check_llama_cpp()
    key = (str(path), port, n_ctx, threads, n_batch, cache, tuple(extra_args))
    with _lock:
        server = _servers.get(key)
        if server is not None and server.alive:
            return server
        host = "127.0.0.1"
        chosen = port or free_port(host)
        logs = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "art-of-the-ask"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"llama-server-{alias}-{chosen}.log"
        cmd = server_command(
            path, alias, host=host, port=chosen, n_ctx=n_ctx, threads=threads, n_batch=n_batch, cache=cache,
            extra_args=tuple(extra_args), parent_pid=os.getpid(),
        )  # fmt: skip
        with open(log_path, "wb") as log:
            # A session of its own: Ctrl-C in a terminal or notebook interrupts our code, not the shared server.
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        server = LocalServer(f"http://{host}:{chosen}/v1", alias, path, proc, log_path, chosen)
        _servers[key] = server
    try:
        wait_healthy(server, timeout)
    except BaseException:
        server.stop()
        _servers.pop(key, None)
        raise
    return server


def serve(
    model: str | os.PathLike | None = None,
    port: int = 8080,
    host: str = "127.0.0.1",
    n_ctx: int = 4096,
    threads: int | None = None,
    cache: bool = False,
) -> None:
    """Run the embedded teacher in the foreground until Ctrl-C; its log goes to this terminal."""
    alias, path = resolve_model(model)
    check_llama_cpp()
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise LocalTeacherError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port") from None
    cmd = server_command(
        path, alias, host=host, port=port, n_ctx=n_ctx, threads=threads, cache=cache, parent_pid=os.getpid()
    )
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    server = LocalServer(f"http://{host}:{port}/v1", alias, path, proc, None, port)
    try:
        wait_healthy(server, timeout=300)
        print(f"embedded teacher: model {alias} at {server.base_url} (OpenAI-compatible; Ctrl-C stops)", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _exit_with_parent(parent_pid: int) -> None:
    # atexit does not run when a notebook kernel is killed; without this the server would hold its RAM forever.
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


def _child_main(argv: list[str]) -> None:
    """Entry point of the server child: watch the parent, then run llama_cpp.server with the remaining args."""
    parent_pid = int(argv[1])
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    sys.argv = ["llama_cpp.server", *argv[2:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--parent-pid":
        _child_main(sys.argv[1:])
    else:
        sys.exit("usage: python -m lecture_utils teacher serve [--model NAME_OR_GGUF] [--port P]")
