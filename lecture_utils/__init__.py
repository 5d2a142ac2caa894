"""Helper package for the 'Art of the Ask' course kit.

By stage: corpus, headings and chunking (Stage 1); taxonomy, grounded, selfinstruct, passage_first (the answer-first
lesson), dedup and coverage (Stage 2); retrieval, qa, verify and grounding (Stage 3); curation, curation_panel,
decisions and judge (Stage 4); factory, batch, runs and export (Stage 5); quality measures a dataset. Every teacher
call goes through teacher and engine; task holds the Task, one kind of call. docs/ARCHITECTURE.md has the map.
"""

__version__ = "0.1.0"
