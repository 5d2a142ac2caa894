"""Stage 1: a book or a folder of documents -> passages that remember where they came from."""
