"""Stage 3: answer an instruction from retrieved passages, and say which passages the answer used.

    hits = index.search(instruction.instruction, k=4)
    messages = build_rag_messages(instruction, hits)          # what the teacher sees, in plain sight
    pair = answer_instruction(teacher, instruction, index)    # -> QAPair with retrieved, cited, not_in_text

answer_item() is the one code path from an instruction and its passages to a pair: the factory awaits it for
thousands of instructions, answer_instruction() for one, so the same reply gives the same pair, or fails with the
same reason ("refusal", "parse error", "empty answer"), in notebook 3 and in Stage 5.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any, Sequence

from lecture_utils.answer.retrieval import RetrievalError
from lecture_utils.errors import KitError
from lecture_utils.prompts import (
    EVIDENCE_LINE,
    EVIDENCE_QUOTES,
    NO_CONTEXT_PROMPT,
    NOT_IN_TEXT,
    NOT_IN_TEXT_TYPE,
    PROMPT_VERSION,
    RAG_PROMPT,
    RAG_SYSTEM,
    format_context,
    prompt_sha,
)
from lecture_utils.records import Instruction, Passage, QAPair, Retrieved
from lecture_utils.teacher.json_reply import parse_json_loose
from lecture_utils.teacher.task import Task
from lecture_utils.teacher.wire import AnswerError, build_request
from lecture_utils.text.refusal import is_marker

Hit = tuple[Passage, float]


class QAError(KitError, ValueError):
    """A prompt or instruction that cannot be turned into a request; the message says how to fix it."""

# The grounded answer of Stages 3 and 5, the kit's most-sent call. Its JSON schema is built per item (answer_schema:
# the ids of the passages that item was shown), so answer_item sends it on the engine with the schema it needs.
ANSWER = Task("grounded answer", RAG_PROMPT, None, system=RAG_SYSTEM, max_tokens=200, temperature=0.0)


def pair_id(instruction_id: str) -> str:
    """The pair's id is derived from its instruction's, so re-running a stage never renumbers anything."""
    return f"qa-{instruction_id}"


def instruction_text(instruction: Instruction | str) -> str:
    """The instruction with its optional input appended, as the teacher and the retriever see it."""
    if isinstance(instruction, str):
        return instruction.strip()
    text = instruction.instruction.strip()
    return f"{text}\n{instruction.input.strip()}" if instruction.input.strip() else text


def build_rag_messages(instruction: Instruction | str, hits: Sequence[Hit | Passage], prompt: str = ANSWER.prompt,
                       system: str | None = ANSWER.system) -> list[dict]:
    """The chat messages for one grounded answer: the system prompt, then the prompt filled with the passages."""
    if "{context}" not in prompt or "{instruction}" not in prompt:
        raise QAError("the RAG prompt needs both {instruction} and {context} placeholders: put them back in your prompt")
    try:
        user = prompt.format(instruction=instruction_text(instruction), context=format_context(list(hits)),
                             not_in_text=NOT_IN_TEXT, evidence=evidence_line(instruction))
    except (KeyError, IndexError) as e:
        raise QAError(f"the RAG prompt has an unknown placeholder {e}: use {{instruction}}, {{context}}, "
                      "{evidence} and {not_in_text}, and write literal braces as {{ and }}") from None
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return messages


def evidence_line(instruction: Instruction | str) -> str:
    """The "words that answer it" line for a passage-first instruction, empty for any other."""
    if not isinstance(instruction, Instruction) or not instruction.passage_id:
        return ""
    if instruction.evidence:
        return EVIDENCE_QUOTES.format(quotes="; ".join(f'"{q}"' for q in instruction.evidence))
    if instruction.span:
        return EVIDENCE_LINE.format(passage_id=instruction.passage_id, span=instruction.span)
    return ""


def answer_schema(passage_ids: Sequence[str]) -> dict:
    """JSON schema of a grounded answer: a non-empty "answer" and "cited" ids drawn only from the retrieved ones."""
    ids = list(dict.fromkeys(passage_ids))
    cited: dict[str, Any] = {"type": "array", "items": {"type": "string", "enum": ids}, "minItems": 0}
    if not ids:  # an empty enum is rejected by some servers; "no citations possible" says the same thing
        cited = {"type": "array", "items": {"type": "string"}, "maxItems": 0}
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "minLength": 1}, "cited": cited},
        "required": ["answer", "cited"],
        "additionalProperties": False,
    }



def rag_request(config: Any, instruction: Instruction | str, hits: Sequence[Hit], *,
                prompt: str = ANSWER.prompt, system: str | None = ANSWER.system,
                temperature: float = ANSWER.temperature, max_tokens: int = ANSWER.max_tokens,
                strategy: str | None = None) -> tuple[dict, dict]:
    """(request, schema) for one grounded answer, as the engine builds it for answer_item() (same cache key): the
    Batch API path and the cost estimate use it."""
    schema = answer_schema([p.id for p, _ in hits])
    messages = build_rag_messages(instruction, hits, prompt, system)
    request = build_request(config, messages, temperature=temperature, max_tokens=max_tokens, schema=schema,
                            strategy=strategy)
    return request, schema


def parse_answer(text: str, finish_reason: str = "") -> dict:
    """The {"answer": str, "cited": [str]} object in the teacher's text, or AnswerError with a reason label.

    A plain check of what a pair needs, not a JSON Schema validator: the factory runs it hundreds of times a second.
    """
    if not text or not text.strip():
        raise AnswerError("empty answer", "the teacher sent no text")
    try:
        data = json.loads(text)  # the usual case, and much cheaper than the forgiving parser
    except ValueError:
        data = None
    try:
        if data is None:
            data = parse_json_loose(text)
    except ValueError as e:
        cut = f" (cut off at max_tokens, finish_reason={finish_reason})" if finish_reason == "length" else ""
        raise AnswerError("parse error", f"{e}{cut}", retryable=True) from None
    if not isinstance(data, dict) or not isinstance(data.get("answer"), str):
        raise AnswerError("parse error", 'the reply has no "answer" string', retryable=True)
    if not data["answer"].strip():
        raise AnswerError("empty answer", "the answer field is empty")
    cited = data.get("cited", [])
    if not isinstance(cited, list) or not all(isinstance(c, str) for c in cited):
        raise AnswerError("parse error", '"cited" is not a list of passage ids', retryable=True)
    return data


def pair_from_text(instruction: Instruction, hits: Sequence[Hit | Retrieved], text: str, *, model: str,
                   finish_reason: str = "", refusal: str | None = None, prompt_sha: str = "") -> QAPair:
    """Turn the teacher's reply into a QAPair, or raise AnswerError (refusal, empty answer, parse error).
    `hits` are (Passage, score) pairs or Retrieved records. Cited ids that were not retrieved are dropped:
    an answer can only cite what it was shown."""
    if refusal:
        raise AnswerError("refusal", " ".join(refusal.split())[:200])
    if finish_reason == "content_filter":
        raise AnswerError("refusal", "the server's content filter stopped the answer")
    data = parse_answer(text, finish_reason)
    retrieved = [h if isinstance(h, Retrieved) else Retrieved(h[0].id, round(float(h[1]), 4)) for h in hits]
    retrieved_ids = {r.id for r in retrieved}
    cited = [c for c in dict.fromkeys(data.get("cited") or []) if c in retrieved_ids]
    answer = data["answer"].strip()
    return QAPair(
        id=pair_id(instruction.id),
        instruction_id=instruction.id,
        instruction=instruction.instruction,
        category=instruction.category,
        answer=answer,
        retrieved=retrieved,
        cited=cited,
        not_in_text=is_marker(answer),
        teacher=model,
        prompt_version=PROMPT_VERSION,
        finish_reason=finish_reason,
        passage_id=instruction.passage_id,
        span=instruction.span,
        prompt_sha=prompt_sha,
        checks=dict(instruction.checks),
        evidence=list(instruction.evidence),
        related=list(instruction.related),
        reference=instruction.reference,
    )


def no_passages_pair(instruction: Instruction) -> QAPair:
    """The pair for an instruction no passage shares a word with: nothing to ground on, so no call is made."""
    return QAPair(id=pair_id(instruction.id), instruction_id=instruction.id, instruction=instruction.instruction,
                  category=instruction.category, answer=NOT_IN_TEXT, not_in_text=True,
                  prompt_version=PROMPT_VERSION, finish_reason="no_passages", passage_id=instruction.passage_id,
                  span=instruction.span)


def passage_of(index: Any, passage_id: str) -> Passage | None:
    """The passage with this id in the index (each index keeps `by_id`, built with it)."""
    return index.by_id.get(passage_id)


def with_source(index: Any, instruction: Instruction | str, hits: Sequence[Hit], k: int) -> list[Hit]:
    """The context for one instruction: its own passage first when it was written from one, then the retrieved ones.

    A negative built on purpose ("not in the text") sees only the passage it was paired with: retrieval would
    find the real answer and spoil it."""
    pid = getattr(instruction, "passage_id", "")
    source = passage_of(index, pid) if pid else None
    if source is None:
        return list(hits)[:k]
    if getattr(instruction, "category", "") == NOT_IN_TEXT_TYPE:
        return [(source, 0.0)]
    own = [source] + [p for p in (passage_of(index, r) for r in getattr(instruction, "related", [])) if p is not None]
    ids = {p.id for p in own}
    scores = {p.id: s for p, s in hits}
    return ([(p, scores.get(p.id, 0.0)) for p in own] + [h for h in hits if h[0].id not in ids])[:max(k, len(own))]


def retrieve(index: Any, instruction: Instruction | str, k: int = 4) -> list[Hit]:
    """The k passages the answer may use: the instruction's own passage (if any) and BM25's best; none when the
    instruction has no searchable word and no passage of its own."""
    try:
        hits = list(index.search(instruction_text(instruction), k=k + 1))
    except RetrievalError:
        hits = []
    return with_source(index, instruction, hits, k)


def retrieve_batch(index: Any, chunk: list[Instruction], k: int) -> list[list]:
    """Passages for a chunk of instructions in one go (BM25 as one sparse product is fast in bulk)."""
    queries = [instruction_text(i) for i in chunk]
    if not queries:
        return []
    batch = getattr(index, "search_batch", None)
    results = None
    if batch is not None:
        try:
            results = batch(queries, k=k + 1)
        except RetrievalError:
            pass  # some query has no searchable word: do this chunk one by one
    if results is None:
        results = []
        for q in queries:
            try:
                results.append(index.search(q, k=k + 1))
            except RetrievalError:
                results.append([])
    return [with_source(index, inst, hits, k) for inst, hits in zip(chunk, results)]


_prompt_sha = functools.lru_cache(maxsize=16)(prompt_sha)  # the same prompt for thousands of items


async def answer_item(engine: Any, instruction: Instruction, hits: Sequence[Hit], *, prompt: str = ANSWER.prompt,
                      system: str | None = ANSWER.system, temperature: float = ANSWER.temperature,
                      max_tokens: int = ANSWER.max_tokens, seed: int | None = None, tries: int = 3) -> QAPair:
    """One grounded answer on an engine.Engine: the request, the call and the reply turned into a pair, the same way
    in notebook 3 (answer_instruction) and in the factory. A reply that cannot be read is asked for again with
    another seed, up to `tries` (Teacher.structured's number).

    Raises AnswerError (refusal, empty answer, parse error) or wire.CallError (HTTP errors, timeouts, a replay
    miss)."""
    messages = build_rag_messages(instruction, hits, prompt, system)
    schema = answer_schema([p.id for p, _ in hits])
    sha = _prompt_sha(system, prompt)

    def accept(reply: Any) -> QAPair:
        return pair_from_text(instruction, hits, reply.text, model=reply.model, finish_reason=reply.finish_reason,
                              refusal=reply.refusal, prompt_sha=sha)

    reply = await engine.complete(messages, schema=schema, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                  accept=accept, tries=tries)
    return reply.data


def answer_instruction(teacher: Any, instruction: Instruction, index: Any, k: int = 3, prompt: str = ANSWER.prompt,
                       *, system: str | None = ANSWER.system, keep_not_in_text: bool = True,
                       temperature: float = ANSWER.temperature, max_tokens: int = ANSWER.max_tokens) -> QAPair | None:
    """Retrieve k passages, ask the teacher for a cited answer, and return the QAPair (answer_item on one item).

    When the passages do not hold the answer the pair has not_in_text=True (or is None if keep_not_in_text=False).
    An unparseable reply is asked for again with another seed, like any structured call of a notebook; raises
    AnswerError for a refusal, an empty answer or no valid JSON, and TeacherError when the teacher cannot answer.
    """
    if not isinstance(instruction, Instruction):
        raise QAError("answer_instruction takes an Instruction (records.Instruction); wrap a plain question as "
                      "Instruction(id='q1', instruction='...', category='...')")
    hits = retrieve(index, instruction, k)
    if not hits:
        return no_passages_pair(instruction) if keep_not_in_text else None
    pair = teacher.run(answer_item(teacher.engine, instruction, hits, prompt=prompt, system=system,
                                   temperature=temperature, max_tokens=max_tokens,
                                   tries=teacher.config.structured_attempts))
    if pair.not_in_text and not keep_not_in_text:
        return None
    return pair


NO_CONTEXT_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "minLength": 1}},
                     "required": ["answer"], "additionalProperties": False}
# The teacher from memory alone (notebook 3's side-by-side): attempts None keeps the teacher's own number of tries.
FROM_MEMORY = Task("from memory", NO_CONTEXT_PROMPT, NO_CONTEXT_SCHEMA, max_tokens=200, attempts=None)


def answer_without_context(teacher: Any, instruction: Instruction | str, prompt: str = NO_CONTEXT_PROMPT, *,
                           title: str = "the source", system: str | None = None, temperature: float = 0.0,
                           max_tokens: int = 200) -> str:
    """The teacher's answer from memory alone, for the side-by-side with the grounded answer."""
    task = dataclasses.replace(FROM_MEMORY, prompt=prompt, system=system, temperature=temperature, max_tokens=max_tokens)
    return task.one(teacher, instruction=instruction_text(instruction), title=title)["answer"].strip()


def spread(instructions: Sequence[Instruction], n: int, tasks: int = 0) -> list[Instruction]:
    """n instructions for a first look, in the list's order: passage-first questions picked by a hash of their id,
    one negative ("not in the text"), two human seeds when there are any (broad questions from memory, to set
    beside the narrow ones written from a passage) and `tasks` tasks of the taxonomy (see grounded.py), also by hash.

    The hash makes the pick a fair sample that stays put: adding or removing other instructions (a longer Stage 2
    run) does not change which of the old ones are picked, so decisions made on them stay valid."""
    def by_hash(items: list[Instruction], k: int) -> list[Instruction]:
        return sorted(items, key=lambda i: hashlib.sha1(i.id.encode("utf-8")).hexdigest())[:max(0, k)]

    negative = [i for i in instructions if i.category == NOT_IN_TEXT_TYPE][:1]
    seed = [i for i in instructions if i.origin == "seed"][:2]
    typed = by_hash([i for i in instructions if i.origin == "task"], tasks)
    rest = [i for i in instructions if i not in negative and i not in seed and i.category != NOT_IN_TEXT_TYPE
            and i.origin != "task"]
    rest = [i for i in rest if i.origin == "passage"] or rest
    picked = by_hash(rest, n - len(negative) - len(seed) - len(typed))
    chosen = {id(i) for i in picked + negative + seed + typed}
    return [i for i in instructions if id(i) in chosen][:n]
