"""Shared pytest fixtures: a fake OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py)."""

import pytest

from fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai():
    """A running fake server: .base_url, .enqueue(...), .requests; stopped after the test."""
    with FakeOpenAI() as server:
        yield server
