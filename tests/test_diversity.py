"""Diversity: the leading verb of an instruction and its object, and the headline numbers."""

from __future__ import annotations

import pytest

from lecture_utils.ask import diversity as dv


def test_diversity_stats():
    texts = ["Describe the ball.", "Describe the ball.", "Why does Lydia elope with Wickham?"]
    stats = dv.diversity_stats(texts)
    assert stats["instructions"] == 3
    assert stats["distinct_leading_verbs"] == 2 and stats["top_verbs"][0] == ("describe", 2)
    assert 0 < stats["mean_pairwise_rouge_l"] < 1 and stats["pairs_scored"] == 3
    assert dv.diversity_stats(["Describe the ball."])["mean_pairwise_rouge_l"] == 0.0  # no pair to compare


@pytest.mark.parametrize("text, verb, obj", [
    ("Describe Darcy's first proposal to Elizabeth.", "describe", "proposal"),
    ("Briefly explain the entail on Longbourn.", "explain", "entail"),
    ("Please summarise chapter 34.", "summarise", "chapter"),
    ("Can you describe Lady Catherine de Bourgh's visit?", "describe", "visit"),
    ("Compare and contrast Elizabeth and Jane.", "compare", "elizabeth"),
    ("Assess Mr Bennet as a father.", "assess", "mr bennet"),
    ("Trace how Jane and Bingley are separated.", "trace", "how"),
    ("Using the Netherfield ball, explain how Mrs Bennet embarrasses her daughters.", "explain", "how"),
    ("Why does Charlotte Lucas accept Mr Collins's proposal?", "why accept", "proposal"),
    ("What role do the militia officers play in the story?", "what play", "role"),
    ("How did Elizabeth's opinion of Darcy change?", "how change", "opinion"),
    ("What is the significance of the letter?", "what is", "significance"),
    ("How is Darcy portrayed in the first half?", "how portrayed", "darcy"),
    ("Who inherits Longbourn?", "who inherit", "longbourn"),
    ("Who had hoped that the visit would be short?", "who hoped", "visit"),  # "who" is the subject, "had" no verb
    ("Who had been listened to with more pleasure?", "who listened", None),
    ("In what way does Mr Bennet fail his daughters?", "how fail", "daughters"),
    ("Which character changes the most?", "which change", "character"),
    ("How does Elizabeth's pride change over the novel?", "how change", "pride"),
    ("Analyze Mr. Bennet's character and why he is so different.", "analyze", "character"),
    ("Analyze Mr. Bennet as a father.", "analyze", "mr bennet"),
    ("Analyze Elizabeth Bennet's character based on her interactions with Darcy.", "analyze", "character"),
])
def test_verb_object_heuristics(text, verb, obj):
    assert dv.verb_object(text) == (verb, obj)
    assert dv.leading_verb(text) == verb


def test_verb_object_of_empty_or_odd_text():
    assert dv.verb_object("") == (None, None)
    assert dv.verb_object("?!") == (None, None)
    table = dv.verb_object_table(["Describe the ball.", "Why is it so?"])
    assert list(table["verb"]) == ["describe", "why is"]
