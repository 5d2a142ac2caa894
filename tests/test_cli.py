"""The instructor's command line, run as a user would: `python -m lecture_utils ...` in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO.parent / "shared" / "data" / "pg1342.txt"


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "lecture_utils", *args], cwd=REPO, env=full_env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.mark.skipif(not BOOK.exists(), reason="the shared book is not beside the repository (../shared/data)")
def test_corpus_stats_reports_the_books_61_chapters_as_json():
    result = cli("corpus", "stats", str(BOOK))
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["chapters"] == 61
    assert stats["passages"] > 500 and stats["words"] > 100_000


def test_a_missing_book_is_one_line_naming_the_fix(tmp_path):
    result = cli("corpus", "stats", str(tmp_path / "nope.txt"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "corpus fetch" in lines[0] and "BOOK_PATH" in lines[0]


def test_docs_folder_stats(tmp_path):
    (tmp_path / "guide.md").write_text("# Setup\n\nInstall the tool with the package manager.\n\n"
                                       "# Use\n\nRun it every morning before the stand-up meeting.\n", encoding="utf-8")
    result = cli("corpus", "stats", str(tmp_path))
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["sources"] == 1 and stats["sections"] == 2


def test_unreachable_teacher_is_one_line_naming_the_url_and_setting():
    env = {"TEACHER": "endpoint", "TEACHER_BASE_URL": "http://127.0.0.1:9/v1", "TEACHER_MODEL": "x"}
    result = cli("teacher", "check", env=env, timeout=120)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "127.0.0.1:9" in line and "TEACHER_BASE_URL" in line


def test_openai_without_a_key_says_which_variable_to_set():
    env = {"TEACHER": "openai", "OPENAI_API_KEY": "", "TEACHER_API_KEY": ""}
    result = cli("teacher", "check", env=env, timeout=120)
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr


@pytest.mark.slow
def test_teacher_check_gets_a_real_reply_from_the_embedded_teacher_with_no_key():
    env = {"TEACHER": "", "TEACHER_BASE_URL": "", "OPENAI_API_KEY": "", "TEACHER_API_KEY": "",
           "TEACHER_LOCAL_MODEL": os.environ.get("TEACHER_LOCAL_MODEL", "smollm2-135m")}
    result = cli("teacher", "check", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "local" and report["base_url"].startswith("http://127.0.0.1:")
    assert report["reply"].strip() and report["model"]
