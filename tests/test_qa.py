"""Stage 3 answers against the fake OpenAI server: prompts, schema, citations, not-in-text, stable ids."""

import asyncio
import json

import pytest
from fake_openai import reply, reply_json

from lecture_utils.answer import qa
from lecture_utils.answer.qa import (
    AnswerError,
    QAError,
    answer_instruction,
    answer_item,
    answer_schema,
    answer_without_context,
    build_rag_messages,
    pair_from_text,
    pair_id,
)
from lecture_utils.answer.retrieval import FastBM25Index
from lecture_utils.prompts import NOT_IN_TEXT, PROMPT_VERSION
from lecture_utils.records import Instruction, Passage
from lecture_utils.teacher.client import Teacher, TeacherConfig
from lecture_utils.teacher.engine import Engine
from lecture_utils.teacher.json_reply import validate
from lecture_utils.teacher.wire import cache_key
from lecture_utils.text.refusal import is_marker as is_not_in_text

# A tiny corpus of our own about an invented village, so nothing is quoted from anywhere.
PASSAGES = [
    Passage("ch1-p001", "village.txt", "Marla keeps the lighthouse at Fenwick and trims its lamp every evening.", 0, 70, 1),
    Passage("ch1-p002", "village.txt", "The baker Tobin sells rye loaves at the harbour market on Tuesdays.", 70, 140, 1),
    Passage("ch2-p001", "village.txt", "A storm wrecked the fishing fleet, and Marla guided the last boat home.", 140, 210, 2),
    Passage("ch2-p002", "village.txt", "Tobin and Marla quarrel over the price of lamp oil every winter.", 210, 280, 2),
]


@pytest.fixture
def index():
    return FastBM25Index(PASSAGES)


@pytest.fixture
def teacher(fake_openai):
    config = TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake-model", server_kind="openai")
    t = Teacher(config)
    yield t
    t.close()


def test_rag_messages_carry_instruction_passages_and_marker():
    inst = Instruction("i1", "Who keeps the lighthouse?", "character analysis")
    messages = build_rag_messages(inst, [(PASSAGES[0], 2.5), (PASSAGES[2], 1.0)])
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Who keeps the lighthouse?" in user
    assert "[ch1-p001] Marla keeps the lighthouse" in user and "[ch2-p001]" in user
    assert NOT_IN_TEXT in user
    assert build_rag_messages(inst, [PASSAGES[0]], system=None)[0]["role"] == "user"


def test_rag_prompt_mistakes_get_one_line_errors():
    inst = Instruction("i1", "Who keeps the lighthouse?", "plot")
    with pytest.raises(QAError, match="placeholders"):
        build_rag_messages(inst, [PASSAGES[0]], prompt="Answer {instruction} please")
    with pytest.raises(QAError, match="unknown placeholder"):
        build_rag_messages(inst, [PASSAGES[0]], prompt="{instruction} {context} {page}")


def test_answer_schema_only_allows_retrieved_ids_and_a_real_answer():
    schema = answer_schema(["ch1-p001", "ch2-p001"])
    assert validate({"answer": "Marla.", "cited": ["ch1-p001"]}, schema) == []
    assert validate({"answer": "Marla.", "cited": []}, schema) == []  # minItems 0: citing nothing is allowed
    assert validate({"answer": "Marla.", "cited": ["ch9-p999"]}, schema)
    assert validate({"answer": "", "cited": []}, schema)
    assert validate({"cited": []}, schema)
    no_hits = answer_schema([])
    assert validate({"answer": "x", "cited": []}, no_hits) == []
    assert validate({"answer": "x", "cited": ["ch1-p001"]}, no_hits)


def test_answer_instruction_returns_a_cited_pair(fake_openai, teacher, index):
    fake_openai.enqueue(reply_json({"answer": "Marla keeps it.", "cited": ["ch1-p001", "ch1-p001"]}))
    inst = Instruction("seed-007", "Who keeps the lighthouse lamp at Fenwick?", "character analysis")
    pair = answer_instruction(teacher, inst, index, k=2)
    assert pair.id == pair_id("seed-007") == "qa-seed-007"
    assert pair.instruction_id == "seed-007" and pair.category == "character analysis"
    assert pair.answer == "Marla keeps it."
    assert pair.retrieved[0].id == "ch1-p001" and len(pair.retrieved) == 2
    assert pair.retrieved[0].score > pair.retrieved[1].score >= 0
    assert pair.cited == ["ch1-p001"]  # duplicates folded
    assert not pair.not_in_text
    assert (pair.teacher, pair.prompt_version, pair.finish_reason) == ("fake-model", PROMPT_VERSION, "stop")
    body = fake_openai.chat_requests[-1].body
    enum = body["response_format"]["json_schema"]["schema"]["properties"]["cited"]["items"]["enum"]
    assert enum == [r.id for r in pair.retrieved]
    assert "[ch1-p001]" in body["messages"][-1]["content"]


def test_the_same_instruction_gets_the_same_pair_id(fake_openai, teacher, index):
    inst = Instruction("abc", "What does Tobin sell?", "plot")
    first = answer_instruction(teacher, inst, index)
    second = answer_instruction(teacher, inst, index)
    assert first.id == second.id == "qa-abc"


def test_not_in_text_is_flagged_and_can_be_dropped(fake_openai, teacher, index):
    inst = Instruction("i2", "What colour is the lighthouse door?", "plot")
    fake_openai.enqueue(reply_json({"answer": NOT_IN_TEXT, "cited": []}))
    pair = answer_instruction(teacher, inst, index)
    assert pair.not_in_text and pair.cited == []
    fake_openai.enqueue(reply_json({"answer": "The provided passages don't contain the answer.", "cited": []}))
    assert answer_instruction(teacher, inst, index, keep_not_in_text=False) is None


def test_close_paraphrases_of_the_marker_count_as_not_in_text():
    assert is_not_in_text(NOT_IN_TEXT)
    assert is_not_in_text("the provided passages do not contain the answer")
    assert is_not_in_text("The passages provided do not contain the answer!")
    assert not is_not_in_text("Marla keeps the lighthouse; the passages do not say when she started.")
    assert not is_not_in_text("")


def test_instruction_without_searchable_words_makes_no_call(fake_openai, teacher, index):
    pair = answer_instruction(teacher, Instruction("i3", "What is it about?", "themes"), index)
    assert pair.not_in_text and pair.retrieved == [] and pair.finish_reason == "no_passages"
    assert fake_openai.chat_requests == []


def test_refusal_and_empty_answers_are_named():
    inst = Instruction("i4", "Who keeps the lighthouse?", "plot")
    hits = [(PASSAGES[0], 1.0)]
    with pytest.raises(AnswerError) as e:
        pair_from_text(inst, hits, "", model="m", refusal="I can't help with that.")
    assert e.value.reason == "refusal" and not e.value.retryable
    with pytest.raises(AnswerError) as e:
        pair_from_text(inst, hits, json.dumps({"answer": "  ", "cited": []}), model="m")
    assert e.value.reason == "empty answer"
    with pytest.raises(AnswerError) as e:
        pair_from_text(inst, hits, '{"answer": "Marla', model="m", finish_reason="length")
    assert e.value.reason == "parse error" and e.value.retryable and "max_tokens" in str(e.value)
    fenced = '```json\n{"answer": "Marla.", "cited": ["ch1-p001"],}\n```'
    assert pair_from_text(inst, hits, fenced, model="m").cited == ["ch1-p001"]
    invented = json.dumps({"answer": "Marla.", "cited": ["ch9-p999", "ch1-p001"]})
    assert pair_from_text(inst, hits, invented, model="m").cited == ["ch1-p001"]  # only what it was shown


def test_answer_without_context_for_the_side_by_side(fake_openai, teacher):
    fake_openai.enqueue(reply_json({"answer": "From memory: a lighthouse keeper."}))
    text = answer_without_context(teacher, Instruction("i5", "Who keeps the lighthouse?", "plot"))
    assert text == "From memory: a lighthouse keeper."
    content = fake_openai.chat_requests[-1].body["messages"][-1]["content"]
    assert "Who keeps the lighthouse?" in content and "[ch1-p001]" not in content


def test_answer_item_on_an_engine_gives_the_same_pair_as_answer_instruction(fake_openai, index):
    config = TeacherConfig(mode="endpoint", base_url=fake_openai.base_url, model="fake-model", server_kind="openai")
    inst = Instruction("i6", "Who guided the last boat home?", "plot")
    hits = index.search(inst.instruction, k=3)
    fake_openai.enqueue(reply_json({"answer": "Marla did.", "cited": ["ch2-p001"]}), reply("not json at all"),
                        reply("not json at all"), reply("still not json"), reply_json({"answer": "Marla.", "cited": []}))

    async def run():
        engine = Engine(config, max_attempts=1)
        try:
            pair = await answer_item(engine, inst, hits)
            with pytest.raises(AnswerError, match="parse error"):
                await answer_item(engine, inst, hits, tries=1)
            second = await answer_item(engine, inst, hits, tries=3)  # asked again with seeds 1 and 2
            return pair, second, engine.usage
        finally:
            await engine.aclose()

    pair, second, usage = asyncio.run(run())
    assert pair.id == "qa-i6" and pair.cited == ["ch2-p001"] and pair.answer == "Marla did."
    assert second.answer == "Marla." and usage.prompt_tokens > 0
    assert [r.body.get("seed") for r in fake_openai.chat_requests] == [None, None, None, 1, 2]
    # the engine's request is the one answer_instruction sends, so one replay cache serves both
    teacher = Teacher(config)
    fake_openai.enqueue(reply_json({"answer": "Marla did.", "cited": ["ch2-p001"]}))
    assert answer_instruction(teacher, inst, index, k=3) == pair
    async_body, sync_body = fake_openai.chat_requests[0].body, fake_openai.chat_requests[-1].body
    assert cache_key(async_body) == cache_key(sync_body)
    teacher.close()


def test_the_first_look_keeps_its_picks_when_stage_2_writes_more_questions():
    """Decisions made in Stage 4 on Stage 3's pairs stay valid after a longer Stage 2 run: the old picks stay picked
    unless a new question happens to hash below them, and the pick still holds one seed and one negative."""
    def question(n: int) -> Instruction:
        return Instruction(id=f"ch{n % 60 + 1:02d}-p{n:03d}-q1", instruction=f"Who did thing {n}?", category="character",
                           origin="passage")
    seed = Instruction(id="seed-001", instruction="Summarise the opening.", category="plot", origin="seed")
    negative = Instruction(id="ch02-p001-q1-neg", instruction="Who rode to Bath?", category=qa.NOT_IN_TEXT_TYPE,
                           origin="passage")
    before = [seed, negative] + [question(n) for n in range(120)]
    after = before + [question(n) for n in range(120, 132)]
    first, second = qa.spread(before, 6), qa.spread(after, 6)
    assert seed in first and negative in first and len(first) == 6
    new_ids = {i.id for i in after[len(before):]}
    kept = [i for i in first if i in second]
    displaced = [i for i in second if i not in first]
    assert len(kept) + len(displaced) == 6 and all(i.id in new_ids for i in displaced)
    assert len(kept) >= 4  # 12 new questions among 132 rarely take more than one of four places
    # picks are spread over the book, not the first few chapters of the list
    chapters = {int(i.id[2:4]) for i in first if i.origin == "passage" and i.category != qa.NOT_IN_TEXT_TYPE}
    assert max(chapters) - min(chapters) > 15
