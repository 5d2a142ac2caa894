"""Stage 2's default: tasks of every type in the taxonomy, from passages, checked (taxonomy.py, grounded.py, task.py)."""

from __future__ import annotations

import pytest
from fake_openai import reply_json

from lecture_utils.answer.retrieval import BM25Index
from lecture_utils.ask import grounded, taxonomy
from lecture_utils.records import Passage, QAPair
from lecture_utils.scale import quality
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.teacher.task import Task, TaskError

HARBOUR = ("Captain Marlow kept the lighthouse at Gull Point for thirty years. Every winter he rowed to the harbour "
           "town to buy oil for the lamp, and every winter he quarrelled with the harbour master, Mr. Penhale, over "
           "the price. The townspeople said the two men enjoyed the quarrel more than either would admit. When the "
           "storm of the hard winter broke the harbour wall, Marlow kept the lamp burning for three nights without "
           "sleep, and Penhale sent him oil for nothing.")
MARKET = ("Mr. Penhale walked to the fish market on Saturday and found the stalls empty. The boats had stayed in "
          "the harbour because the wind was too strong, and the fishermen sat in the inn telling stories about "
          "Captain Marlow and his lamp. Penhale paid for a round of cider and asked them to mend the harbour wall "
          "before the spring tides came, and they agreed to start on Monday morning at first light.")
DOCS = ("Use the --retries option to set how many times the client retries a failed upload. The default is three. "
        "Set it to zero to fail at once, which is useful in scripts that handle errors themselves. The option is "
        "read once, when the command starts, so changing the config file during an upload has no effect.")


def passages() -> list[Passage]:
    return [Passage("ch01-p001", "book.txt", HARBOUR, 0, len(HARBOUR), chapter=1),
            Passage("ch02-p001", "book.txt", MARKET, 0, len(MARKET), chapter=2),
            Passage("upload-md-s01-p001", "upload.md", DOCS, 0, len(DOCS), section="Retries")]


def teacher_for(fake) -> Teacher:
    return Teacher(TeacherConfig(mode="endpoint", base_url=fake.base_url, model="fake-model", api_key="test",
                                 server_kind="openai", cache="off", max_attempts=1, structured_attempts=1))


# --- the taxonomy ---------------------------------------------------------------------------------------------------


def test_taxonomies_by_name_or_your_own_list():
    assert [t.name for t in taxonomy.resolve("docs")][:2] == ["how do I", "what happens if"]
    assert len(taxonomy.resolve("novel")) == 8
    mine = taxonomy.resolve([{"name": "define", "asks": "asks what a term means.", "good_answer": "defines it."}])
    assert mine[0].name == "define" and mine[0].passages == 1
    with pytest.raises(taxonomy.TaxonomyError, match="novel"):
        taxonomy.resolve("poetry")
    with pytest.raises(taxonomy.TaxonomyError, match="good_answer"):
        taxonomy.resolve([{"name": "x"}])


def test_types_are_dealt_in_turn_and_two_passage_types_get_a_related_passage_from_another_chapter():
    topic = "anchor beacon cliff dune ember fjord gale heron inlet jetty".split()  # each chapter's, shared with the next
    book = [Passage(f"ch{c:02d}-p{i:03d}", "b.txt", f"{(HARBOUR, MARKET)[i % 2]} {topic[c]} {topic[c]} {topic[c + 1]} "
                    f"{'mackerel ' * i}", 0, 1, chapter=c) for c in range(1, 9) for i in range(1, 4)]
    types = taxonomy.resolve("novel")
    chosen = taxonomy.sample(book, 16, seed=1)
    assert len({p.chapter for p in chosen[:8]}) == 8  # every chapter once before any twice
    jobs = taxonomy.assign(chosen, types, BM25Index(book), seed=1)
    counts = {t.name: sum(j.type.name == t.name for j in jobs) for t in types}
    assert set(counts.values()) == {2}  # 16 passages, 8 types: two of each
    for job in jobs:
        if job.type.passages == 2:
            home, other = job.passages
            assert other.chapter != home.chapter and other.id not in {p.id for p in chosen}


# --- the checks that need no teacher --------------------------------------------------------------------------------


@pytest.mark.parametrize("instruction, bad", [
    ("Why does Captain Marlow quarrel with Mr. Penhale over the price of oil?", False),
    ("What does the passage say about the lighthouse?", True),
    ("Why does he keep the lamp burning for three nights?", True),
    ("How does this scene end for Penhale?", True),
    ("Compare the former with the harbour master.", True),
    ("How do I make the client fail at once instead of retrying an upload?", False),
    ("What shows that Penhale respects Marlow?", False),
])
def test_an_instruction_must_stand_on_its_own(instruction, bad):
    assert bool(grounded.stands_alone(instruction)) == bad


def job(kind: str = "explain why", *ids: str) -> taxonomy.Job:
    by_id = {p.id: p for p in passages()}
    t = next(t for t in taxonomy.resolve("novel") + taxonomy.resolve("docs") if t.name == kind)
    return taxonomy.Job(t, [by_id[i] for i in (ids or ("ch01-p001",))])


def test_checks_keep_a_true_task_in_own_words_and_say_why_they_drop_the_others():
    ok = grounded.check_written(job(), "Why does Mr. Penhale send Captain Marlow oil for nothing after the storm?",
                                "Because Marlow kept the lamp burning for three nights while the storm broke the "
                                "harbour wall, Penhale gave him the oil free.", ["kept the lamp burning for three nights"])
    assert ok.reason == "" and ok.evidence == ["kept the lamp burning for three nights"]
    copied = grounded.check_written(job(), "Why does Penhale send Marlow oil for nothing?",
                                    "When the storm of the hard winter broke the harbour wall, Marlow kept the lamp "
                                    "burning for three nights without sleep.", ["kept the lamp burning"])
    assert copied.reason.startswith("answer copies the source")
    quoted = grounded.check_written(job(), "Why does Penhale send Marlow oil for nothing?",
                                    'Penhale was grateful: as the book says, "when the storm of the hard winter broke '
                                    'the harbour wall, Marlow kept the lamp burning for three nights without sleep", so '
                                    'the harbour master thanked him with a winter of free oil for the lamp.',
                                    ["kept the lamp burning"])
    assert quoted.reason == ""  # a quotation marked as one is not copying
    all_quote = grounded.check_written(job(), "What shows that Marlow kept the lamp burning?",
                                       '"Marlow kept the lamp burning for three nights without sleep."',
                                       ["kept the lamp burning"])
    assert all_quote.reason.startswith("the answer is a quotation")  # ... but a quotation alone is no answer
    invented = grounded.check_written(job(), "Why does Captain Marlow quarrel with Lord Fenwick?",
                                      "Marlow quarrels over the price of oil.", ["quarrelled with the harbour master"])
    assert "Fenwick" in invented.reason
    swapped = grounded.check_written(job(), "Why does Mrs. Penhale send Captain Marlow oil for nothing?",
                                     "Because Marlow kept the lamp lit through the storm.", ["kept the lamp burning"])
    assert swapped.reason.startswith("Mrs. Penhale: the passages never call anyone that")
    not_there = grounded.check_written(job(), "Why does Marlow keep the lamp burning?", "Marlow loves the sea.",
                                       ["he loved the sea more than anything"])
    assert not_there.reason.startswith("evidence")
    echo = grounded.check_written(job(), "What is the reason behind something Captain Marlow does or feels?",
                                  "Marlow keeps the lamp burning for three nights.", ["kept the lamp burning"])
    assert "task description" in echo.reason


def test_a_two_passage_task_needs_evidence_from_each_passage():
    two = job("compare", "ch01-p001", "ch02-p001")
    one_sided = grounded.check_written(two, "How does Mr. Penhale act towards Captain Marlow before and after the storm?",
                                       "Before the storm Penhale argues over the price of oil; after it he sends the "
                                       "oil free.", ["quarrelled with the harbour master"])
    assert one_sided.reason.startswith("evidence")
    both = grounded.check_written(two, "How does Mr. Penhale act towards Captain Marlow before and after the storm?",
                                  "Before the storm Penhale argues with Marlow over the price of oil; afterwards he "
                                  "sends the oil free and asks the fishermen to mend the harbour wall.",
                                  ["quarrelled with the harbour master", "asked them to mend the harbour wall"])
    assert both.reason == "", both.reason


# --- with a teacher (the fake server plays it) ----------------------------------------------------------------------


def test_generate_keeps_checked_tasks_resumes_and_records_what_it_dropped(fake_openai, tmp_path):
    fake_openai.enqueue(
        reply_json({"evidence": ["Penhale sent him oil for nothing"]}),
        reply_json({"instruction": "Why does Mr. Penhale send Captain Marlow oil for nothing?",
                    "answer": "Penhale gives Marlow the oil free because Marlow kept the lamp lit for three nights "
                              "during the storm."}),
        reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}),
        reply_json({"evidence": ["The default is three."]}),
        reply_json({"instruction": "What does the passage say about retries?", "answer": "The default is three."}),
    )
    teacher = teacher_for(fake_openai)
    jobs = [job("explain why"), taxonomy.Job(taxonomy.resolve("docs")[5], [passages()[2]])]
    out = tmp_path / "tasks.jsonl"
    summary = grounded.generate(teacher, jobs, out, title="The Lighthouse")
    assert (summary.kept, summary.dropped, summary.failed) == (1, 1, 0)
    kept, dropped = grounded.load(out)
    assert kept[0].category == "explain why" and kept[0].origin == "task" and kept[0].passage_id == "ch01-p001"
    assert kept[0].evidence == ["Penhale sent him oil for nothing."] and kept[0].reference.startswith("Penhale gives")
    assert kept[0].checks["faithful"] == "YES" and kept[0].checks["clear"] == "YES" and kept[0].checks["claims"] == "1/1"
    assert "the passage" in dropped[0]["reason"]
    sent = fake_openai.chat_requests[0].body["messages"][-1]["content"]
    assert sent.startswith("Passages from the source:\n[ch01-p001]") and "The Lighthouse" in sent
    calls = len(fake_openai.chat_requests)
    again = grounded.generate(teacher, jobs, out, title="The Lighthouse")
    assert again.asked == 0 and len(fake_openai.chat_requests) == calls  # resumed: nothing asked twice
    teacher.close()


def test_a_no_verdict_drops_the_task_and_an_invalid_reply_is_a_failure_not_a_crash(fake_openai, tmp_path):
    fake_openai.enqueue(
        reply_json({"evidence": ["Penhale sent him oil for nothing"]}),
        reply_json({"instruction": "Why does Mr. Penhale send Captain Marlow oil for nothing?",
                    "answer": "Penhale gives Marlow the oil free because Marlow kept the lamp lit for three nights."}),
        reply_json({"verdict": "NO"}),
        "this is not JSON",
    )
    teacher = teacher_for(fake_openai)
    out = tmp_path / "tasks.jsonl"
    s = grounded.generate(teacher, [job("explain why"), job("summarise", "ch02-p001")], out, title="The Lighthouse")
    assert (s.kept, s.dropped, s.failed) == (0, 1, 1)
    _, dropped = grounded.load(out)
    assert [d["reason"].split(" (")[0] for d in dropped] == [
        "the teacher, shown the passages, says the answer is not stated there",
        "no valid reply: pick evidence: no valid JSON for the schema after 1 tries from fake-model: "
        "Expecting value: line 1 column 1"][:1] + [dropped[1]["reason"].split(" (")[0]]
    assert dropped[1]["reason"].startswith("no valid reply")
    teacher.close()


def test_each_claim_of_the_answer_is_checked_against_the_evidence_alone(fake_openai, tmp_path):
    fake_openai.enqueue(
        reply_json({"evidence": ["Penhale sent him oil for nothing"]}),
        reply_json({"instruction": "Why does Mr. Penhale send Captain Marlow oil for nothing?",
                    "answer": "Marlow kept the lamp lit for three nights. Penhale felt guilty about the quarrel."}),
        reply_json({"verdict": "YES"}), reply_json({"verdict": "YES"}), reply_json({"verdict": "NO"}),
    )
    teacher = teacher_for(fake_openai)
    kept, dropped = grounded.write_one(teacher, job("explain why"), title="The Lighthouse")
    assert not kept and "claims: 1/2 YES" in dropped[0]["reason"]
    claims = [r.body["messages"][-1]["content"] for r in fake_openai.chat_requests if "Claim:" in str(r.body)]
    assert len(claims) == 2 and "Penhale felt guilty" in claims[1] and "[ch01-p001]" not in claims[1]
    assert "Penhale sent him oil for nothing." in claims[1]  # the evidence, as a whole sentence, not the passage
    teacher.close()


def test_a_task_names_its_placeholders_when_a_student_breaks_the_prompt():
    t = Task("demo", "Passages: {context}\nWrite a {type} task.", {"type": "object"})
    assert t.fields == ["context", "type"]
    with pytest.raises(TaskError, match="unknown placeholder 'type'"):
        t.render(context="...")
    assert t.edited(prompt="Other {context}").sha != t.sha


# --- the dataset's figures --------------------------------------------------------------------------------------------


def test_figures_count_types_who_lookups_copying_and_units():
    ps = passages()
    pairs = [QAPair("a", "a", "Who kept the lighthouse at Gull Point?", "recall a fact",
                    "Captain Marlow kept the lighthouse at Gull Point for thirty years.", cited=["ch01-p001"]),
             QAPair("b", "b", "Why does Penhale send oil for nothing?", "explain why",
                    "Because Marlow kept the lamp lit through the storm.", cited=["ch01-p001"]),
             QAPair("c", "c", "How do I stop retries?", "how do I", "Set --retries to zero.",
                    cited=["upload-md-s01-p001"])]
    f = quality.figures(pairs, ps, sampled=6, seconds=90.0)
    assert f["pairs"] == 3 and f["kept_per_sampled_passage"] == 0.5
    assert f["who_share"] == round(1 / 3, 3) and f["copied_share"] == 0.0  # 11 words copied: under the 12-word line
    assert f["units_cited"] == 2 and f["teacher_seconds_per_pair"] == 30.0
    assert f["types"] == {"recall a fact": 0.333, "explain why": 0.333, "how do I": 0.333}
    pairs[0].answer = "As told: captain marlow kept the lighthouse at gull point for thirty years every winter he rowed"
    assert quality.figures(pairs, ps)["copied_share"] == round(1 / 3, 3)


def test_an_instruction_in_its_types_shape_is_not_an_echo_of_its_description():
    worked = next(t for t in taxonomy.resolve("docs") if t.name == "worked example")
    w = grounded.check_written(taxonomy.Job(worked, [passages()[2]]),
                               "Write a short example that uses the --retries option to fail at once.",
                               "Run the upload with --retries 0, and the client fails at once instead of retrying.",
                               ["Set it to zero to fail at once"])
    assert w.reason == "", w.reason
