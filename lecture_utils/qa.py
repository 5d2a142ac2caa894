"""Stage 3: answer an instruction from retrieved passages, and say which passages the answer used.

    hits = index.search(instruction.instruction, k=4)
    messages = build_rag_messages(instruction, hits)          # what the teacher sees, in plain sight
    pair = answer_instruction(teacher, instruction, index)    # -> QAPair with retrieved, cited, not_in_text

The factory runs the same steps for thousands of instructions: it shares rag_request() and pair_from_text()
with answer_instruction(), so one pair comes out the same whichever way it was made.
"""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher
from typing import Any, Sequence

try:  # openai >= 3 is built on httpx2, older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

from .prompts import (EVIDENCE_LINE, NO_CONTEXT_PROMPT, NOT_IN_TEXT, NOT_IN_TEXT_TYPE, PROMPT_VERSION, RAG_PROMPT,
                      RAG_SYSTEM, format_context, prompt_sha)
from .records import Instruction, Passage, QAPair, Retrieved
from .retrieval import RetrievalError
from .teacher import MalformedReplyError, TeacherConfig, build_request, parse_json_loose

Hit = tuple[Passage, float]


class QAError(ValueError):
    """A prompt or instruction that cannot be turned into a request; the message says how to fix it."""


class AnswerError(RuntimeError):
    """The teacher replied but gave no usable answer; `.reason` is a short label ("refusal", "parse error", ...)."""

    def __init__(self, reason: str, detail: str = "", retryable: bool = False) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.retryable = reason, detail, retryable


def pair_id(instruction_id: str) -> str:
    """The pair's id is derived from its instruction's, so re-running a stage never renumbers anything."""
    return f"qa-{instruction_id}"


def instruction_text(instruction: Instruction | str) -> str:
    """The instruction with its optional input appended, as the teacher and the retriever see it."""
    if isinstance(instruction, str):
        return instruction.strip()
    text = instruction.instruction.strip()
    return f"{text}\n{instruction.input.strip()}" if instruction.input.strip() else text


def _as_hits(hits: Sequence[Hit | Passage]) -> list[Hit]:
    return [h if isinstance(h, tuple) else (h, 0.0) for h in hits]


def build_rag_messages(instruction: Instruction | str, hits: Sequence[Hit | Passage], prompt: str = RAG_PROMPT,
                       system: str | None = RAG_SYSTEM) -> list[dict]:
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
    if isinstance(instruction, Instruction) and instruction.span and instruction.passage_id:
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


_WORDS = re.compile(r"[a-z0-9]+")
_MARKER_WORDS = _WORDS.findall(NOT_IN_TEXT.lower())


def is_not_in_text(answer: str, marker: str = NOT_IN_TEXT) -> bool:
    """True if the answer is the "not in the passages" marker, or a close paraphrase of it on its own."""
    words = _WORDS.findall(answer.lower())
    marker_words = _MARKER_WORDS if marker == NOT_IN_TEXT else _WORDS.findall(marker.lower())
    if not words:
        return False
    if words == marker_words:
        return True
    if len(words) > 2 * len(marker_words):  # a real answer that happens to mention the marker's words
        return False
    if len(set(words) & set(marker_words)) < len(set(marker_words)) / 2:  # cheap test before the costly one
        return False
    return SequenceMatcher(None, " ".join(words), " ".join(marker_words)).ratio() >= 0.8


def rag_request(config: TeacherConfig, instruction: Instruction | str, hits: Sequence[Hit], *,
                prompt: str = RAG_PROMPT, system: str | None = RAG_SYSTEM, temperature: float = 0.0,
                max_tokens: int = 200, strategy: str | None = None) -> tuple[dict, dict]:
    """(request, schema) for one grounded answer, built exactly as Teacher.structured builds it (same cache key)."""
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
        not_in_text=is_not_in_text(answer),
        teacher=model,
        prompt_version=PROMPT_VERSION,
        finish_reason=finish_reason,
        passage_id=instruction.passage_id,
        span=instruction.span,
        prompt_sha=prompt_sha,
        checks=dict(instruction.checks),
    )


def no_passages_pair(instruction: Instruction) -> QAPair:
    """The pair for an instruction no passage shares a word with: nothing to ground on, so no call is made."""
    return QAPair(id=pair_id(instruction.id), instruction_id=instruction.id, instruction=instruction.instruction,
                  category=instruction.category, answer=NOT_IN_TEXT, not_in_text=True,
                  prompt_version=PROMPT_VERSION, finish_reason="no_passages", passage_id=instruction.passage_id,
                  span=instruction.span)


def passage_of(index: Any, passage_id: str) -> Passage | None:
    """The passage with this id in the index (the index keeps a dict of them once asked)."""
    by_id = getattr(index, "_by_id", None)
    if by_id is None:
        by_id = {p.id: p for p in index.passages}
        try:
            index._by_id = by_id
        except AttributeError:  # pragma: no cover - an index type that takes no new attributes
            pass
    return by_id.get(passage_id)


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
    score = next((s for p, s in hits if p.id == pid), 0.0)
    return ([(source, score)] + [h for h in hits if h[0].id != pid])[:k]


def retrieve(index: Any, instruction: Instruction | str, k: int = 4) -> list[Hit]:
    """The k passages the answer may use: the instruction's own passage (if any) and BM25's best; none when the
    instruction has no searchable word and no passage of its own."""
    try:
        hits = list(index.search(instruction_text(instruction), k=k + 1))
    except RetrievalError:
        hits = []
    return with_source(index, instruction, hits, k)


def answer_instruction(teacher: Any, instruction: Instruction, index: Any, k: int = 3, prompt: str = RAG_PROMPT, *,
                       system: str | None = RAG_SYSTEM, keep_not_in_text: bool = True, temperature: float = 0.0,
                       max_tokens: int = 200) -> QAPair | None:
    """Retrieve k passages, ask the teacher for a cited answer, and return the QAPair.

    When the passages do not hold the answer the pair has not_in_text=True (or is None if keep_not_in_text=False).
    Raises AnswerError for a refusal or an empty answer, StructuredOutputError when no valid JSON came back.
    """
    if not isinstance(instruction, Instruction):
        raise QAError("answer_instruction takes an Instruction (records.Instruction); wrap a plain question as "
                      "Instruction(id='q1', instruction='...', category='...')")
    hits = retrieve(index, instruction, k)
    if not hits:
        return no_passages_pair(instruction) if keep_not_in_text else None
    messages = build_rag_messages(instruction, hits, prompt, system)
    schema = answer_schema([p.id for p, _ in hits])
    reply = teacher.structured(messages, schema, temperature=temperature, max_tokens=max_tokens)
    pair = pair_from_text(instruction, hits, reply.text, model=reply.model, finish_reason=reply.finish_reason,
                          prompt_sha=prompt_sha(system, prompt))
    if pair.not_in_text and not keep_not_in_text:
        return None
    return pair


# --- the async twin (the factory's building blocks) -------------------------------------------------------------


async def post_chat(client: Any, request: dict, timeout: float | None = None) -> dict:
    """One chat completion as a plain dict, through the client's connection pool.

    client.post with cast_to=Response skips the typed request transform and the pydantic reply model: at hundreds
    of requests per second that work, not the network, is what fills the CPU.
    """
    options = {"timeout": timeout} if timeout is not None else {}
    response = await client.post("/chat/completions", body=request, cast_to=httpx.Response, options=options)
    try:
        return json.loads(response.content)
    except ValueError as e:
        raise MalformedReplyError(f"the reply is not JSON ({e})") from None


def completion_parts(completion: dict) -> tuple[str, str, str | None, dict, str]:
    """(text, finish_reason, refusal, usage, model) from a chat completion dict."""
    try:
        choice = completion["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReplyError("the reply has no choices[0].message") from None
    usage = completion.get("usage") or {}
    usage = {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
             "completion_tokens": int(usage.get("completion_tokens") or 0)}
    return (message.get("content") or "", choice.get("finish_reason") or "", message.get("refusal"), usage,
            completion.get("model") or "")


async def answer_instruction_async(client: Any, config: TeacherConfig, instruction: Instruction, hits: Sequence[Hit],
                                   *, prompt: str = RAG_PROMPT, system: str | None = RAG_SYSTEM,
                                   temperature: float = 0.0, max_tokens: int = 200, strategy: str | None = None,
                                   timeout: float | None = None) -> tuple[QAPair, dict]:
    """One attempt at a grounded answer on an AsyncOpenAI client: (pair, usage). No retries, no cache (the
    factory adds those); raises openai errors, MalformedReplyError or AnswerError."""
    request, schema = rag_request(config, instruction, hits, prompt=prompt, system=system, temperature=temperature,
                                  max_tokens=max_tokens, strategy=strategy)
    text, finish_reason, refusal, usage, _ = completion_parts(await post_chat(client, request, timeout))
    pair = pair_from_text(instruction, hits, text, model=request["model"], finish_reason=finish_reason,
                          refusal=refusal, prompt_sha=prompt_sha(system, prompt))
    return pair, usage


NO_CONTEXT_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "minLength": 1}},
                     "required": ["answer"], "additionalProperties": False}


def answer_without_context(teacher: Any, instruction: Instruction | str, prompt: str = NO_CONTEXT_PROMPT, *,
                           system: str | None = None, temperature: float = 0.0, max_tokens: int = 200) -> str:
    """The teacher's answer from memory alone, for the side-by-side with the grounded answer."""
    try:
        text = prompt.format(instruction=instruction_text(instruction))
    except (KeyError, IndexError) as e:
        raise QAError(f"the no-context prompt has an unknown placeholder {e}: use {{instruction}} only") from None
    reply = teacher.structured(text, NO_CONTEXT_SCHEMA, system=system, temperature=temperature, max_tokens=max_tokens)
    return reply.data["answer"].strip()


def spread(instructions: Sequence[Instruction], n: int) -> list[Instruction]:
    """n instructions for a first look: mostly passage-first questions spread over the list, plus one negative
    ("not in the text") and one human seed when there are any, in the list's order."""
    negative = [i for i in instructions if i.category == NOT_IN_TEXT_TYPE][:1]
    seed = [i for i in instructions if i.origin == "seed"][:1]
    rest = [i for i in instructions if i not in negative and i not in seed and i.category != NOT_IN_TEXT_TYPE]
    want = max(0, n - len(negative) - len(seed))
    picked = rest[::max(1, len(rest) // want)][:want] if want and rest else []
    chosen = {id(i) for i in picked + negative + seed}
    return [i for i in instructions if id(i) in chosen][:n]
