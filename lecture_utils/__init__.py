"""Helper package for the 'Art of the Ask' course kit, laid out by stage over three shared layers:

    records, settings, prompts, errors     base: the records, the environment, the default prompts, KitError
    text/        words, sentences, names, spans, "not in the text", near-duplicates and paraphrases
    teacher/     Task, the engine every call goes through, the client (connect), cache/replay, prices, llama.cpp
    gather/      Stage 1: a book or a folder of documents -> passages
    ask/         Stage 2: taxonomy and tasks from passages, the answer-first lesson, Self-Instruct, coverage
    answer/      Stage 3: BM25 retrieval, grounded answers, the checks
    curate/      Stage 4: review state, the panel, decisions, the judge
    scale/       Stage 5: the factory, the loop back to Stage 2, Batch API, export, the Hugging Face folder,
                 evaluation, the dataset's figures, Path A
    notebook/    what cells call to show things and record the run
    instructor/  run the course, grade, build the slides

A module imports only its own layer and those below it (tests/test_imports.py). docs/ARCHITECTURE.md has the map.
"""

__version__ = "0.1.0"
