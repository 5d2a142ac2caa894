"""The default prompts, as plain strings with {placeholders}.

Copy one into a notebook cell, edit it, and pass it to the stage function: the prompt is part of the dataset's recipe,
so every pair records PROMPT_VERSION. Change the version when you change a prompt.
"""

from __future__ import annotations

import hashlib

PROMPT_VERSION = "2026-12-04.2"

# Stage 2 -------------------------------------------------------------------------------------------------------------

CATEGORIES = [
    "plot and events",
    "character analysis",
    "relationships",
    "themes and ideas",
    "social and historical context",
    "style and narration",
    "quotation and close reading",
    "creative and comparative",
]

SEED_SYSTEM = (
    "You are an expert on {title} and a teacher who writes questions and tasks that send people back to the source."
)

SEED_META_PROMPT = """We are building a set of instructions that will teach an assistant to be an expert on {title}.
Each instruction is something a curious user might ask the assistant to do.

Cover these categories, and label each instruction with exactly one of them:
{categories}

Here are a few examples written by people (do not repeat them):
{examples}

Rules:
- Every instruction must be answerable from {title} itself.
- Vary the verbs (describe, compare, explain, trace, summarise, identify, show how...) and the parts you ask about.
- Name the people, things, places and events you ask about; avoid vague questions such as "What is it about?".
- One sentence each, no numbering, and no quotation marks (write titles and names plainly).

Now write {n} new, unique and useful instructions about {title}.
Reply with JSON only: an object whose "instructions" key holds a list of {{"category": ..., "instruction": ...}} items."""

# Stage 2, tasks from passages (the default path; see grounded.py and taxonomy.py) -----------------------------------

# One system prompt for every call about a passage, Stage 2's and Stage 3's, so the server reuses the prefix.
PASSAGE_SYSTEM = (
    "You work with passages from a source text to build a teaching dataset. You use only the passages you are "
    "given, never your memory of the book or anything else you know."
)

# Evidence first, then the task: a small teacher reads one or two sentences far better than a whole passage, so it
# first copies the sentences a task of the type can rest on, then writes the task from them. The passages come
# first, in the same words as RAG_PROMPT, and every call about a passage starts with the same words, which a
# llama.cpp server then does not read twice.
EVIDENCE_PROMPT = """Passages from the source:
{context}

We will write a task of the type "{type}" about {title}: the task {asks}
Copy, word for word, the one or two sentences of the passages that such a task is best built on: sentences that
say something definite about named people, things or events.{each}

Reply with JSON only: {{"evidence": ["...", "..."]}}"""

TASK_PROMPT = """Passages from the source:
{context}

Evidence: {evidence}

Write one task of the type "{type}" about {title}, built on the evidence above. The task {asks} A good answer
{good_answer} Shape of the instruction: {pattern} (fill in the <slots> with the names and events of the evidence).

Rules:
- If the passages are told by "I", call that person "the narrator" unless the passages give the name.
- The instruction names who and what it is about; someone who never saw the passages must understand it. Never
  write "the passage", "the text", "the evidence" or "the story", and never "he", "she" or "they" for someone the
  instruction has not named.
- The answer uses only facts the evidence and the passages state, in your own words (one to four sentences). If
  you repeat their words, put them in quotation marks. State the facts directly: never begin with "The passage".

Reply with JSON only: {{"instruction": "...", "answer": "..."}}"""

# Claim by claim: a short call per answer sentence, shown only the evidence sentences. A small model misses a wrong
# detail in a long answer against a whole passage, and catches it in one sentence against two.
CLAIM_PROMPT = """Sentences from the source:
{evidence}

Claim: {claim}

Do the sentences above state this claim, or does it follow from them directly? Say NO if the claim adds a
detail, a reason or a feeling they do not give, or mixes up who did what; otherwise say YES.

Reply with JSON only: {{"verdict": "YES"}} or {{"verdict": "NO"}}"""

# An answer that copies a run of the source gets one chance to say it in the teacher's own words.
REPHRASE_PROMPT = """This answer repeats its source word for word:
{answer}

Rewrite it in your own words, in one to four plain sentences. Keep every fact and every name, and add nothing.

Reply with JSON only: {{"answer": "..."}}"""

# A fresh call that sees only the instruction: could someone who never saw the passage tell what is asked?
CLEAR_PROMPT = """Here is a request that a user sends to an assistant that knows {title} well. The user has no
document open, so the request must say itself who or what it is about.

Request: {instruction}

Does the request name the person, thing or situation it is about, so that it is clear on its own? Say NO if it
uses "he", "she", "it", "they", "this" or "the passage" for something it never names, or if it is not a request
at all; otherwise say YES.

Reply with JSON only: {{"verdict": "YES"}} or {{"verdict": "NO"}}"""

# The old default, kept as a lesson in notebook 2 (see passage_first.py): the kit picks a sentence and an answer by
# rule, and the teacher only turns a rough draft into a question. True, but nine in ten are "Who did X?" lookups.
TASK_TYPES = {
    "factual": "how much, how far, how long, where, or whom: an amount, a place or a second person the sentence names",
    "why or how": "the reason for something, as the sentence gives it",
    "character": "who did, felt or decided something: the answer is the person the sentence opens with",
}
NOT_IN_TEXT_TYPE = "not in the text"  # negatives built on purpose: a question asked against a passage that lacks it

PASSAGE_PROMPT = """Passages from the source:
{context}

Turn the draft below into one clear question about {title} that a reader of the book would ask.
- Keep the draft's meaning and its facts, and add nothing that the sentence does not say.
- The answer is given below: the question must not contain it.
- Name people (never "he", "she" or "they"), and never mention "the passage" or "the text". At most 20 words.

Sentence: "{sentence}"
Draft: {draft}
Answer: {answer}

Reply with JSON only: {{"question": "..."}}"""

# Stage 3 -------------------------------------------------------------------------------------------------------------

NOT_IN_TEXT = "The provided passages do not contain the answer."

RAG_SYSTEM = PASSAGE_SYSTEM  # the same words, so Stage 2's and Stage 3's calls about a passage share a prefix

# The passages come first and the task last: a small model follows the instruction it read last, and every call
# about the same passage starts with the same words, which the llama.cpp server then does not read twice.
RAG_PROMPT = """Passages from the source:
{context}

Instruction: {instruction}
{evidence}
Answer the instruction using ONLY the passages above: every fact in your answer must be stated in them. Write one
or two plain sentences, and name people rather than saying "he" or "she". Cite the ids of the passages you used.
If the passages do not contain the answer, set "answer" to exactly: {not_in_text}

Reply with JSON only: {{"answer": "...", "cited": ["passage id", ...]}}"""

# Filled into {evidence} when the instruction was written from passages (Stage 2): the quotes its answer rests on.
EVIDENCE_LINE = 'The words of [{passage_id}] that answer it: "{span}"\n'  # an answer-first question's sentence
EVIDENCE_QUOTES = "The words of the passages it rests on: {quotes}\n"  # a task's evidence quotes

# Stage 3 checks (see verify.py): the same system prompt and the same opening as RAG_PROMPT, so the server reuses it.
ROUND_TRIP_PROMPT = """Passages from the source:
{context}

Instruction: {instruction}

Copy the shortest words from the passage above that answer the instruction, exactly as they are written there.
If the passage does not answer it, write NONE.

Reply with JSON only: {{"quote": "..."}}"""

FAITHFUL_PROMPT = """Passages from the source:
{context}

Instruction: {instruction}
Proposed answer: {answer}

Check the proposed answer against the passages above. Say YES only if every fact in it is stated in the passages
and it answers the instruction; otherwise say NO.

Reply with JSON only: {{"verdict": "YES"}} or {{"verdict": "NO"}}"""

NO_CONTEXT_PROMPT = """Answer the instruction below about {title} from what you know.

Instruction: {instruction}

Reply with JSON only: {{"answer": "..."}}"""


def format_context(hits, max_chars: int = 900) -> str:
    """Render retrieved passages as `[id] text` blocks; long passages are cut to keep the prompt small."""
    blocks = []
    for hit in hits:
        passage = hit[0] if isinstance(hit, tuple) else hit
        text = " ".join(passage.text.split())
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0] + " ..."
        blocks.append(f"[{passage.id}] {text}")
    return "\n\n".join(blocks)


def format_categories(categories: list[str] | None = None) -> str:
    return "\n".join(f"- {c}" for c in (categories or CATEGORIES))


def format_examples(examples: list[str]) -> str:
    return "\n".join(f"- {e}" for e in examples) if examples else "- (none)"


def prompt_sha(*texts: str | None) -> str:
    """Short hash of the prompt text(s): records carry it, the run's prompts.json maps it back to the text."""
    return hashlib.sha256("\x00".join(t or "" for t in texts).encode("utf-8")).hexdigest()[:10]

# --- evaluation (python -m lecture_utils evaluate): a model answers the held-out questions, a judge compares ---

# Open book: the model reads the passages retrieval finds, as a RAG system would; closed book: the question alone.
OPEN_BOOK_PROMPT = """Passages from {title}:
{context}

Question: {instruction}
Answer the question from the passages above in one to three sentences."""

REFERENCE_JUDGE_PROMPT = """Question about {title}: {instruction}
Reference answer (checked against the source): {reference}
Candidate answer: {answer}

Does the candidate answer give the facts the reference gives, without contradicting it? Wording may differ; a
candidate that is vague, answers another question, or says it does not know gets NO.

Reply with JSON only: {{"verdict": "YES"}} or {{"verdict": "NO"}}"""
