"""Stage 2: the taxonomy, tasks written from passages, the answer-first lesson, Self-Instruct, diversity and
coverage."""
