import random

import pytest
from rouge_score import rouge_scorer

from lecture_utils.text.dedup import (
    DedupError,
    lcs_length,
    near_duplicates,
    pairwise_similarities,
    rouge_l,
    rouge_tokens,
)

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

INSTRUCTIONS = [
    "Describe how Elizabeth feels about Mr. Darcy after the first ball.",
    "Describe how Elizabeth feels about Mr. Darcy after the first ball!",  # punctuation only: a copy
    "Explain how Elizabeth feels about Darcy after the ball.",
    "Summarize the letter Darcy writes to Elizabeth.",
    "Summarise the letter that Darcy writes to Elizabeth at Rosings.",
    "Why does Charlotte accept Mr. Collins?",
    "What does Charlotte's marriage to Mr. Collins say about money and security?",
    "List three things Mrs. Bennet worries about.",
    "list THREE things mrs bennet worries about",
    "",
    "Compare Jane and Elizabeth as sisters.",
    "Compare Jane and Lydia as sisters.",
    "Write a poem about the sea.",
    "12 ways to describe Pemberley",
]


def reference_dedup(texts, threshold=0.7):
    """Alpaca's loop with the real rouge-score: keep iff ROUGE-L with every kept one is <= threshold."""
    kept, dropped = [], []
    for i, text in enumerate(texts):
        tokens = SCORER._tokenizer.tokenize(text)
        scores = [rouge_scorer._score_lcs(tokens, SCORER._tokenizer.tokenize(texts[j])).fmeasure for j in kept]
        if scores and max(scores) > threshold:
            best = max(scores)
            dropped.append((i, kept[scores.index(best)], best))
        else:
            kept.append(i)
    return kept, dropped


def test_rouge_tokens_match_rouge_score():
    for text in INSTRUCTIONS + ["Café naïve x-ray, don't 3.5km", "ÄÖÜ ß", "  tabs\tand\nnewlines  "]:
        assert rouge_tokens(text) == SCORER._tokenizer.tokenize(text)


def test_rouge_l_hand_computed():
    # LCS "the cat on the mat" = 5 of 6 words on both sides: F = 5/6.
    assert rouge_l("The cat sat on the mat.", "the cat lay on the mat") == pytest.approx(5 / 6)
    assert rouge_l("Darcy", "Bingley") == 0.0
    assert rouge_l("", "anything at all") == 0.0


def test_rouge_l_equals_rouge_score_on_fixed_pairs():
    for a in INSTRUCTIONS:
        for b in INSTRUCTIONS:
            assert rouge_l(a, b) == SCORER.score(a, b)["rougeL"].fmeasure, (a, b)


def test_pairwise_similarities_score_every_pair_or_a_sample():
    texts = ["Describe the ball.", "Describe the ball.", "Why does Lydia elope with Wickham?"]
    sims = pairwise_similarities(texts)
    assert len(sims) == 3 and sims[0] == 1.0 and max(sims[1:]) < 0.3
    assert sims == [rouge_l(texts[0], texts[1]), rouge_l(texts[0], texts[2]), rouge_l(texts[1], texts[2])]
    many = [f"Question number {i} about chapter {i * 7}" for i in range(200)]
    assert len(pairwise_similarities(many, max_pairs=500)) == 500
    assert pairwise_similarities(many, max_pairs=500) == pairwise_similarities(many, max_pairs=500)  # seeded


def test_lcs_bit_parallel_equals_dynamic_programming():
    rng = random.Random(3)
    for _ in range(300):
        a = [rng.randrange(5) for _ in range(rng.randint(0, 70))]  # > 64 positions exercises big ints
        b = [rng.randrange(5) for _ in range(rng.randint(0, 70))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(len(a)):
            for j in range(len(b)):
                table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
        assert lcs_length(a, b) == table[-1][-1]


def test_decisions_match_rouge_score_reference_on_fixed_examples():
    result = near_duplicates(INSTRUCTIONS)
    kept, dropped = reference_dedup(INSTRUCTIONS)
    assert result.kept == kept
    assert [(d.index, d.closest, d.score) for d in result.dropped] == dropped
    # And what a reader expects from these examples:
    assert {d.index: d.closest for d in result.dropped}[1] == 0
    assert {d.index: d.closest for d in result.dropped}[8] == 7
    assert 9 in result.kept  # an empty text is similar to nothing
    assert 12 in result.kept


def test_input_order_decides_who_wins():
    a = "Describe the entail on the Longbourn estate."
    b = "Describe the entail on the Longbourn estate in detail."
    assert near_duplicates([a, b]).kept == [0]
    assert near_duplicates([b, a]).kept == [0]
    assert near_duplicates([b, a]).dropped[0].closest == 0


def test_threshold_boundary_follows_reference():
    # 7 of 10 words in common order on both sides: F = 0.7 exactly in real numbers; keep iff <= threshold.
    a = "one two three four five six seven eight nine ten"
    b = "one two three four five six seven x y z"
    ref = SCORER.score(a, b)["rougeL"].fmeasure
    assert rouge_l(a, b) == ref
    assert (near_duplicates([a, b], 0.7).kept == [0, 1]) == (ref <= 0.7)
    assert near_duplicates([a, b], 0.69).kept == [0]


@pytest.mark.parametrize("seed", range(6))
def test_pruning_gives_brute_force_decisions_on_random_data(seed):
    rng = random.Random(seed)
    vocab = [f"w{k}" for k in range(rng.randint(4, 30))]
    base = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 14))) for _ in range(40)]
    texts = []
    for _ in range(400):
        words = rng.choice(base).split() if rng.random() < 0.6 else [rng.choice(vocab) for _ in range(8)]
        for _ in range(rng.randint(0, 3)):  # small edits make near-duplicates around the threshold
            k = rng.randrange(len(words) + 1)
            words = words[:k] + [rng.choice(vocab)] + words[k + 1:] if rng.random() < 0.5 else words[:k] + words[k + 1:]
        texts.append(" ".join(words))
    for threshold in (0.0, 0.5, 0.7, 0.9, 1.0):
        fast = near_duplicates(texts, threshold)
        brute = near_duplicates(texts, threshold, method="exhaustive")
        assert fast.kept == brute.kept
        assert fast.dropped == brute.dropped
        assert fast.pairs_scored <= brute.pairs_scored


def test_pruning_skips_most_pairs():
    rng = random.Random(0)
    words = [f"word{k}" for k in range(2000)]
    texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(500)]
    texts += [t + " again" for t in texts[:100]]
    result = near_duplicates(texts)
    assert len(result.dropped) == 100
    assert result.pairs_scored < 0.01 * result.pairs_total


def test_minhash_drops_are_real_and_catches_copies():
    rng = random.Random(1)
    words = [f"word{k}" for k in range(3000)]
    originals = [" ".join(rng.choice(words) for _ in range(15)) for _ in range(300)]
    texts = originals + [o.upper() + "." for o in originals[:50]]  # case and punctuation do not matter to ROUGE-L
    result = near_duplicates(texts, method="minhash")
    assert sorted(d.index for d in result.dropped) == list(range(300, 350))
    for d in result.dropped:
        assert d.score == rouge_l(texts[d.index], texts[d.closest]) > 0.7


def test_table_lists_dropped_next_to_closest():
    result = near_duplicates(INSTRUCTIONS)
    table = result.table(INSTRUCTIONS)
    assert list(table.columns[:3]) == ["dropped", "closest_kept", "score"]
    assert len(table) == len(result.dropped)
    assert table.score.is_monotonic_decreasing


def test_bad_input_is_a_clear_error():
    with pytest.raises(DedupError, match="list of strings"):
        near_duplicates("one text")
    with pytest.raises(DedupError, match="between 0 and 1"):
        near_duplicates(["a"], threshold=70)
    with pytest.raises(DedupError, match="unknown method"):
        near_duplicates(["a"], method="cosine")
    with pytest.raises(DedupError, match="only 'minhash'"):
        near_duplicates(["a"], bands=8)
    with pytest.raises(DedupError, match="multiple of bands"):
        near_duplicates(["a"], method="minhash", num_perm=100, bands=32)


def test_the_embedding_check_drops_a_paraphrase_that_rouge_keeps():
    texts = ["Why does Elizabeth refuse Mr. Collins?",
             "What reasons does Elizabeth give for turning down Mr. Collins's proposal?",
             "How old is Lydia?", "How old is Kitty?"]
    rouge = near_duplicates(texts, 0.7)
    assert [(d.index, d.closest) for d in rouge.dropped] == [(3, 2)], "ROUGE-L: same words, so Kitty's goes"
    result = near_duplicates(texts, 0.75, method="embedding")
    assert [(d.index, d.closest) for d in result.dropped] == [(1, 0)]
    assert result.kept == [0, 2, 3], "same shape, different person: not a paraphrase"
