"""The default prompts, as plain strings with {placeholders}.

Copy one into a notebook cell, edit it, and pass it to the stage function: the prompt is part of the dataset's recipe,
so every pair records PROMPT_VERSION. Change the version when you change a prompt.
"""

from __future__ import annotations

PROMPT_VERSION = "2026-11-29.2"

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
    "You are a literary scholar who has taught Jane Austen's novels for twenty years. "
    "You design exam and seminar questions that make students go back to the text."
)

SEED_META_PROMPT = """We are building a set of instructions that will teach an assistant to be an expert on the novel
Pride and Prejudice. Each instruction is something a curious reader might ask the assistant to do.

Cover these categories, and label each instruction with exactly one of them:
{categories}

Here are a few examples written by people (do not repeat them):
{examples}

Rules:
- Every instruction must be answerable from the text of the novel itself.
- Vary the verbs (describe, compare, explain, trace, summarise, identify, argue...) and the parts of the book you ask about.
- Name characters, places and events; avoid vague questions such as "What is the book about?".
- One sentence each, no numbering, and no quotation marks (write titles and names plainly).

Now write {n} new, unique and thought-provoking instructions about Pride and Prejudice.
Reply with JSON only: an object whose "instructions" key holds a list of {{"category": ..., "instruction": ...}} items."""

# Stage 3 -------------------------------------------------------------------------------------------------------------

NOT_IN_TEXT = "The provided passages do not contain the answer."

RAG_SYSTEM = (
    "You answer questions about a source text for a teaching dataset. You use only the passages you are given, "
    "never your memory of the book or anything else you know."
)

RAG_PROMPT = """Answer the instruction below using ONLY the passages that follow. Every claim in your answer must be
supported by these passages. Cite the ids of the passages you used. If the passages do not contain what is needed,
set "answer" to exactly: {not_in_text}

Instruction: {instruction}

Passages from the source:
{context}

Reply with JSON only: {{"answer": "...", "cited": ["passage id", ...]}}"""

NO_CONTEXT_PROMPT = """Answer the instruction below about the novel "Pride and Prejudice" from what you know.

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
