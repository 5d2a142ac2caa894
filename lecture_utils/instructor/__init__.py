"""For instructors: run the course headless, grade submissions, build the slides."""
