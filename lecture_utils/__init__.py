"""Helper package for the 'Art of the Ask' course kit.

One module per idea: corpus (Stage 1), selfinstruct, diversity and coverage (Stage 2), retrieval and grounding
(Stage 3), curation (Stage 4), factory and export (Stage 5); teacher is the only code that talks to an LLM.
"""

__version__ = "0.1.0"
