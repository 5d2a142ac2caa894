"""What notebook cells call to show things and record the run: tables, figures, checks, prompts used."""
