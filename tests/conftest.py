"""Shared pytest fixtures: a fake OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py), and a clean
teacher environment so a developer's own keys, endpoints or .env never steer (or get sent by) the tests."""

import pytest

from fake_openai import FakeOpenAI

from lecture_utils import teacher

TEACHER_SETTINGS = ("TEACHER", "TEACHER_BASE_URL", "TEACHER_MODEL", "TEACHER_API_KEY", "OPENAI_API_KEY",
                    "OPENAI_BASE_URL", "TEACHER_CACHE", "TEACHER_CACHE_PATH", "TEACHER_PRICES", "TEACHER_TIMEOUT")


@pytest.fixture(autouse=True)
def no_personal_teacher_settings(monkeypatch, tmp_path):
    for name in TEACHER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(teacher, "ENV_FILE", tmp_path / "absent.env")


@pytest.fixture
def fake_openai():
    """A running fake server: .base_url, .enqueue(...), .requests; stopped after the test."""
    with FakeOpenAI() as server:
        yield server
