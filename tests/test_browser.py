"""End to end in a real browser: JupyterLab on 127.0.0.1, the Stage 4 notebook in headless Debian chromium.

Runs all cells, checks the curation panel renders, accepts one pair and discards another with a reason, and checks
that both decisions reached decisions.jsonl on disk. A screenshot goes to test-artifacts/. `.ci/browser-deps.sh`
installs chromium and playwright; without them the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lecture_utils.records import Passage, QAPair, Retrieved, read_jsonl, write_jsonl

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
STAGE4 = "04_human_curation.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run .ci/browser-deps.sh (Debian chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed: run .ci/browser-deps.sh"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_run_dir(run: Path) -> None:
    """Three pairs over three passages, written by us, in the kit's record types."""
    passages = [
        Passage("ch01-p001", "tiny.txt", "The keeper of the lighthouse counted the ships each dawn.", 0, 57, 1),
        Passage("ch01-p002", "tiny.txt", "His sister preferred the harbour market and its endless gossip.", 58, 121, 1),
        Passage("ch02-p001", "tiny.txt", "A storm broke the great lamp, and the keeper rowed out for oil.", 0, 63, 2),
    ]
    asks = [("Describe the keeper's morning habit.", "ch01-p001", "Each dawn he counted the ships."),
            ("Explain what the sister enjoyed.", "ch01-p002", "She liked the harbour market and its gossip."),
            ("Describe what the storm did.", "ch02-p001", "It broke the lamp, so the keeper rowed out for oil.")]
    pairs = [QAPair(f"q{i:03d}", f"i{i:03d}", ask, "plot and events", answer, [Retrieved(pid, 3.0 - i)], [pid],
                    teacher="fixture", grounding=1.0)
             for i, (ask, pid, answer) in enumerate(asks, 1)]
    write_jsonl(run / "passages.jsonl", passages)
    write_jsonl(run / "qa_pairs.jsonl", pairs)
    write_jsonl(run / "instructions.jsonl", [{"id": p.instruction_id, "instruction": p.instruction,
                                              "category": p.category} for p in pairs])


def wait_for_server(url: str, proc: subprocess.Popen, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url.split('?')[0]} within {limit} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server (it shuts its kernels down); kill what is left of its process tree if it hangs."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def start_lab(root: Path, tmp_path: Path) -> tuple[subprocess.Popen, str, str, object]:
    """JupyterLab on 127.0.0.1 serving root, with its settings in tmp_path; (server, base url, token, log file)."""
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "PYTHONPATH": str(REPO)}
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no prompt over the panel
    tracker = tmp_path / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # keep every cell in the DOM, scrolled or not
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", server)
    except Exception:
        stop(server)
        log.close()
        raise
    return server, base, token, log


@contextlib.contextmanager
def lab_page(base: str, token: str, path: str):
    """A headless chromium page on a JupyterLab path (closed afterwards)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{path}?token={token}")
            yield page
        finally:
            browser.close()


def test_curation_panel_in_jupyterlab_records_accept_and_discard(tmp_path):
    work = tmp_path / "lab"
    notebooks, run = work / "notebooks", work / "runs" / "demo"
    run.mkdir(parents=True)
    prepare_run_dir(run)
    shutil.copytree(REPO / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    # Inject the parameters the way papermill does (without running), so the notebook reads our run dir.
    subprocess.run([sys.executable, "-m", "papermill", str(notebooks / STAGE4), str(notebooks / STAGE4),
                    "--prepare-only", "-r", "TEACHER", "replay", "-r", "RUN_DIR", str(run),
                    "-p", "JUDGE", "False"],  # no LLM judge: a human (this test) decides
                   check=True, capture_output=True, timeout=60)

    server, base, token, log = start_lab(work, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser_curation.png"
    console: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.set_default_timeout(60_000)
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.goto(f"{base}/lab/tree/notebooks/{STAGE4}?token={token}")
                page.wait_for_function(
                    "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                    " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=90_000)
                page.evaluate("""async () => {
                    const panel = window.jupyterapp.shell.currentWidget;
                    await panel.context.ready;
                    await panel.sessionContext.ready;
                }""")
                # Run All before the kernel is idle can be dropped by the front end: wait for it.
                page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session"
                                       "?.kernel?.status === 'idle'", timeout=90_000)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

                accept = page.get_by_role("button", name="Accept", exact=True)
                accept.wait_for(state="visible", timeout=60_000)
                assert page.get_by_text("Describe the keeper's morning habit.").first.is_visible()
                page.screenshot(path=str(ARTIFACTS / "browser_curation_before.png"), full_page=True)

                accept.click()
                page.get_by_text("Saved: accept q001").wait_for(timeout=30_000)
                page.get_by_placeholder("reason (needed to discard)").fill("factually wrong")
                page.get_by_role("button", name="Discard", exact=True).click()
                page.get_by_text("Saved: discard q002").wait_for(timeout=30_000)
                page.screenshot(path=str(shot), full_page=True)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "browser_failure.png"), full_page=True)  # to see what went wrong
                cells = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells
                    .map(c => [c.cell_type, c.execution_count, JSON.stringify(c.outputs || []).slice(0, 400)])""")
                (ARTIFACTS / "browser_failure.txt").write_text(
                    "\n".join(map(str, cells)) + "\n--- console\n" + "\n".join(console[-40:]))
                raise
            finally:
                browser.close()
    finally:
        stop(server)
        log.close()

    decisions = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(decisions) < 2:  # appends are fsync'd, but allow a slow disk
        decisions = {d["pair_id"]: d for d in read_jsonl(run / "decisions.jsonl")} if (run / "decisions.jsonl").exists() else {}
        time.sleep(0.2)
    assert decisions["q001"]["status"] == "accept"
    assert decisions["q002"]["status"] == "discard" and decisions["q002"]["reason"] == "factually wrong"
    assert "q003" not in decisions
    assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", ["02_seed_taxonomy.ipynb", "05_repeat_and_scale.ipynb"])
def test_executed_notebooks_show_their_figures_in_jupyterlab(replayed_course, tmp_path, name):
    """The charts a student is asked to read are there, as images that loaded, in the executed notebook."""
    nb = json.loads((replayed_course / name).read_text(encoding="utf-8"))
    expected = sum(1 for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert expected >= 2, f"{name} has {expected} image outputs"
    server, base, token, log = start_lab(replayed_course, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with lab_page(base, token, name) as page:
            images = page.locator(".jp-OutputArea-output img")
            images.first.wait_for(state="visible", timeout=90_000)
            page.wait_for_function(f"() => document.querySelectorAll('.jp-OutputArea-output img').length >= {expected}")
            loaded = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output img')]
                .map(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100)""")
            images.first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"browser_{name.split('_')[0]}_figures.png"), full_page=True)
    finally:
        stop(server)
        log.close()
    assert len(loaded) >= expected and all(loaded), f"{name}: {loaded.count(False)} of {len(loaded)} images did not load"
