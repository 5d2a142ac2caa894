"""What the student edits is what runs at scale, through the notebooks themselves: a student rewrites RAG_PROMPT in
notebook 3, and notebook 5's factory sends the rewritten prompt (a fake teacher on 127.0.0.1 answers both)."""

import json
import re
import shutil
from pathlib import Path

import pytest
from fake_openai import reply

REPO = Path(__file__).resolve().parents[1]
EDIT = ("Write one\nor two plain sentences", "Write one or two plain sentences in the voice of a patient archivist")


def grounded_teacher(body: dict):
    """Answers like a careful teacher: a grounded answer quotes the words the question was written to (or the first
    passage), every verdict is YES, a round trip finds the same words; plain text gets one plain sentence."""
    prompt = body["messages"][-1]["content"]
    schema = json.dumps(body.get("response_format") or {})
    ids = re.findall(r"^\[([\w-]+)\] (.*)$", prompt, flags=re.M)
    span = re.search(r'that answer it: "(.*)"', prompt)
    words = span.group(1) if span else (" ".join(ids[0][1].split()[:14]) if ids else "The passages say so.")
    if '"verdict"' in schema:
        return reply(json.dumps({"verdict": "YES"}))
    if '"quote"' in schema:
        return reply(json.dumps({"quote": words}))
    if '"answer"' in schema:
        answer = {"answer": words.rstrip(".") + "."}
        return reply(json.dumps({**answer, "cited": [ids[0][0]] if ids else []} if '"cited"' in schema else answer))
    if schema != "{}":
        pytest.fail(f"an unexpected structured call: {schema[:200]}")
    return reply(words.rstrip(".") + ".")


def run_notebook(name: str, out: Path, **parameters) -> None:
    import papermill

    papermill.execute_notebook(str(REPO / "notebooks" / name), str(out / name), parameters=parameters,
                               cwd=str(REPO / "notebooks"), progress_bar=False, kernel_name="python3")


@pytest.mark.slow
def test_a_prompt_edited_in_notebook_3_is_what_notebook_5_sends(replayed_course, tmp_path, fake_openai, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(replayed_course / "run", run)
    for name in ("qa_pairs.jsonl", "prompts.json", "settings.json"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "factory", ignore_errors=True)
    fake_openai.default = grounded_teacher
    monkeypatch.setenv("TEACHER_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("TEACHER_MODEL", "fake-model")
    monkeypatch.setenv("TEACHER_CACHE", "off")
    monkeypatch.setenv("BOOK_PATH", str(REPO.parent / "shared" / "data" / "pg1342.txt"))
    monkeypatch.delenv("KIT_RUN_DIR", raising=False)

    # the student's edit, made in notebook 3's prompt cell as they would make it
    nb3 = json.loads((REPO / "notebooks" / "03_grounded_qa.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb3["cells"] if "".join(c["source"]).startswith('RAG_SYSTEM = """'))
    text = "".join(cell["source"])
    assert EDIT[0] in text
    cell["source"] = text.replace(*EDIT).splitlines(keepends=True)
    edited = tmp_path / "notebooks"
    edited.mkdir()
    (edited / "03_grounded_qa.ipynb").write_text(json.dumps(nb3), encoding="utf-8")
    import papermill

    papermill.execute_notebook(str(edited / "03_grounded_qa.ipynb"), str(tmp_path / "03.ipynb"),
                               cwd=str(REPO / "notebooks"), progress_bar=False, kernel_name="python3",
                               parameters={"TEACHER": "endpoint", "RUN_DIR": str(run), "N_QA": 4, "N_TASKS": 1})
    recorded = json.loads((run / "prompts.json").read_text(encoding="utf-8"))
    assert recorded["RAG_PROMPT"]["changed"] and EDIT[1] in recorded["RAG_PROMPT"]["text"]
    stage3 = [r for r in fake_openai.chat_requests if EDIT[1] in r.body["messages"][-1]["content"]]
    assert len(stage3) >= 4

    sent_before = len(fake_openai.chat_requests)
    run_notebook("05_repeat_and_scale.ipynb", tmp_path, TEACHER="endpoint", RUN_DIR=str(run), SCALE_ANYWAY=True,
                 LIMIT=3, REVIEW_SAMPLE=1, EVAL_LIMIT=1, FOUND_DATASET=str(tmp_path / "no-such.jsonl"))
    stage5 = [r.body for r in fake_openai.chat_requests[sent_before:]
              if '"cited"' in json.dumps(r.body.get("response_format") or {})]  # the factory's grounded answers
    assert len(stage5) == 3 and all(EDIT[1] in b["messages"][-1]["content"] for b in stage5)
    executed = (tmp_path / "05_repeat_and_scale.ipynb").read_text(encoding="utf-8")
    assert "prompts and settings from notebook 3: RAG_PROMPT differ from the kit's" in executed
