"""Stage 5: the factory (concurrent, resumable, capped), the Batch API, export, the Hugging Face folder, evaluation,
the dataset's figures, and Path A beside Path B."""
