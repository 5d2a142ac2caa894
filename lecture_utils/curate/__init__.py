"""Stage 4: review state, the ipywidgets panel, which decision counts, the LLM judge."""
