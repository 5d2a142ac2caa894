"""Shared pytest fixtures: a fake OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py), and a clean
teacher environment so a developer's own keys, endpoints or .env never steer (or get sent by) the tests."""

import pytest
from fake_openai import FakeOpenAI

from lecture_utils import settings

TEACHER_SETTINGS = ("TEACHER", "TEACHER_BASE_URL", "TEACHER_MODEL", "TEACHER_API_KEY", "OPENAI_API_KEY",
                    "OPENAI_BASE_URL", "TEACHER_CACHE", "TEACHER_CACHE_PATH", "TEACHER_PRICES", "TEACHER_TIMEOUT")


@pytest.fixture(autouse=True)
def no_personal_teacher_settings(monkeypatch, tmp_path):
    for name in TEACHER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings, "ENV_FILE", tmp_path / "absent.env")


@pytest.fixture
def fake_openai():
    """A running fake server: .base_url, .enqueue(...), .requests; stopped after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def replayed_course(tmp_path_factory):
    """The whole course run once on the replay teacher (as `run-course --teacher replay`): its output folder."""
    from pathlib import Path

    from lecture_utils.instructor.course import run_course

    book = Path(__file__).resolve().parents[2] / "shared" / "data" / "pg1342.txt"
    if not book.exists():
        pytest.skip("the shared book is not beside the repository (../shared/data)")
    out = tmp_path_factory.mktemp("course")
    mp = pytest.MonkeyPatch()
    mp.setenv("BOOK_PATH", str(book))
    mp.delenv("KIT_RUN_DIR", raising=False)
    try:
        run_course(teacher="replay", out_dir=out)
    finally:
        mp.undo()
    return out
