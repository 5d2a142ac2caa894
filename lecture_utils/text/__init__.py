"""Shared layer: the text rules every stage uses (words and stems, sentence support, near-duplicates)."""
