"""Benchmark: our pruned ROUGE-L dedup against the straightforward pairwise rule scored with the real rouge-score.

Run: .venv/bin/python bench/bench_dedup.py [--n 5000] [--subset 1000] [--big 50000] [--sample-pairs 20000]
Prints the speedup (target >= 50x), the share of identical keep/drop decisions (target >= 99%) and the time for
50,000 instructions (target < 60 s on 2 cores). The full reference on 5,000 texts takes ~20 min on one core, so its
time is measured on a deterministic sample of the pairs it would score and extrapolated to all of them; its decisions
are checked exactly on the first --subset texts (full reference run), and on all texts against our own un-pruned LCS.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lecture_utils.text.dedup import near_duplicates  # noqa: E402

CHARACTERS = ["Elizabeth", "Mr. Darcy", "Jane", "Mr. Bingley", "Mr. Collins", "Lydia", "Mr. Wickham", "Charlotte",
              "Lady Catherine", "Mrs. Bennet", "Mr. Bennet", "Kitty", "Mary", "Miss Bingley", "Georgiana",
              "Mr. Gardiner", "Mrs. Gardiner", "Colonel Fitzwilliam", "Sir William Lucas", "Mrs. Phillips"]
PLACES = ["Longbourn", "Netherfield", "Pemberley", "Rosings", "Meryton", "Hunsford", "Brighton", "London", "Lambton",
          "the parsonage", "Lucas Lodge", "Gracechurch Street"]
EVENTS = ["the Meryton assembly", "the ball at Netherfield", "the first proposal", "the letter after the proposal",
          "the visit to Pemberley", "the elopement", "the illness at Netherfield", "the walk through the muddy fields",
          "the visit of Lady Catherine to Longbourn", "the second proposal", "the proposal of Mr. Collins",
          "the dinner at Rosings", "the arrival of the militia", "the engagement of Charlotte", "the news from Brighton",
          "the return of Mr. Bingley", "the reading of the letter at Hunsford", "the stay in Kent"]
THEMES = ["pride", "prejudice", "marriage", "social class", "reputation", "wealth", "first impressions", "family duty",
          "love", "irony", "manners", "independence", "money", "education", "gossip", "inheritance", "friendship",
          "vanity", "judgement", "self-knowledge"]
TRAITS = ["wit", "kindness", "arrogance", "loyalty", "foolishness", "generosity", "jealousy", "courage", "humility",
          "stubbornness", "charm", "honesty"]
VERBS = [("Describe", "Explain", "Discuss", "Outline"), ("Analyze", "Examine", "Evaluate", "Assess"),
         ("Summarize", "Recount", "Retell", "Briefly describe")]
TEMPLATES = [
    "{v0} how {c1} feels about {c2} after {e1}.",
    "{v1} the role of {t1} in the decisions {c1} makes.",
    "Why does {c1} dislike {c2} when they first meet at {p1}?",
    "{v2} what happens during {e1}.",
    "Compare {c1} and {c2} in their attitudes toward {t1}.",
    "What does {e1} reveal about the character of {c1}?",
    "How does the opinion {c1} holds of {c2} change between {e1} and {e2}?",
    "List three moments in which {c1} shows {r1}.",
    "{v1} how the narrator uses {t1} to criticise {c1}.",
    "What advice does {c1} give {c2} about {t1}, and is it good advice?",
    "{v0} the relationship between {c1} and {c2} at {p1}.",
    "Write a short diary entry from {c1} on the evening of {e1}.",
    "Explain why {e1} matters for the fate of the Bennet family.",
    "Which character is most affected by {e1}, and why?",
    "{v1} whether {c1} is a good judge of {c2}.",
    "In what ways does {p1} reflect the social position of {c1}?",
    "{v0} the conversation between {c1} and {c2} about {t1}.",
    "How would the story change if {c1} had never met {c2}?",
    "Give two quotations-free examples of {r1} in {c1}.",
    "What is the significance of {p1} in the second half of the novel?",
    "{v2} the events that lead from {e1} to {e2}.",
    "Does {c1} change more than {c2} over the course of the book? Argue your view.",
    "{v1} how {t1} and {t2} are connected in the story of {c1}.",
    "Explain what the reader learns about {t1} from {e1}.",
    "Why is {c1} embarrassed by the behaviour of {c2} at {p1}?",
    "Write a letter that {c1} might send to {c2} after {e1}.",
    "{v0} the first impression {c1} makes at {p1}.",
    "What mistakes does {c1} make about {c2}, and how are they corrected?",
    "How do {c1} and {c2} differ in the way they talk about {t1}?",
    "{v1} the ending of the novel from the point of view of {c1}.",
    "Identify the turning point for {c1} and explain your choice.",
    "What would {c1} say about {t1} if asked directly?",
    "{v2} the part {c1} plays in {e1}.",
    "Is {c1} a sympathetic character? Use {e1} to support your answer.",
    "Explain how money shapes the choices open to {c1}.",
    "Describe {p1} as {c1} sees it during {e1}.",
    "What role does letter writing play for {c1} and {c2}?",
    "{v1} the humour in the scenes with {c1} at {p1}.",
    "Suggest a title for a chapter about {e1} and justify it.",
    "Explain the difference between {t1} and {t2} as shown by {c1}.",
]
PREFIXES = ["Briefly, ", "In Pride and Prejudice, ", "In your own words, ", "Using the novel, ", "For a student, "]
SUFFIXES = [" Use evidence from the text.", " Give examples.", " Keep it short.", " Answer in one paragraph.",
            " Be specific."]


LEADS = ["", "", "", "", "Thinking about the whole novel, ", "For a class discussion, ", "As a literary critic, ",
         "From the point of view of a modern reader, ", "Considering the historical setting, ",
         "Without quoting the text, ", "Focusing on chapters set in the country, ", "Drawing on the dialogue, "]
TAILS = ["", "", "", "", " Refer to at least two scenes.", " Mention how other characters react.",
         " Consider what the narrator leaves unsaid.", " Explain how this connects to the title.",
         " Keep your answer under a hundred words.", " Include one surprising detail.",
         " Say what a first-time reader might miss.", " End with a question for further discussion."]


def _fill(template: str, rng: random.Random) -> str:
    c = rng.sample(CHARACTERS, 2)
    e = rng.sample(EVENTS, 2)
    t = rng.sample(THEMES, 2)
    core = template.format(v0=rng.choice(VERBS[0]), v1=rng.choice(VERBS[1]), v2=rng.choice(VERBS[2]),
                           c1=c[0], c2=c[1], e1=e[0], e2=e[1], t1=t[0], t2=t[1], p1=rng.choice(PLACES),
                           r1=rng.choice(TRAITS))
    lead = rng.choice(LEADS)
    if lead:
        core = lead + core[0].lower() + core[1:]
    return core + rng.choice(TAILS)


def _mutate(text: str, rng: random.Random) -> str:
    """A near-duplicate: what a teacher model produces when it repeats itself with small changes."""
    for _ in range(rng.randint(1, 2)):
        op = rng.random()
        words = text.split()
        if op < 0.3:
            text = rng.choice(PREFIXES) + text[0].lower() + text[1:]
        elif op < 0.55:
            text = text + rng.choice(SUFFIXES)
        elif op < 0.8 and len(words) > 4:
            k = rng.randrange(1, len(words) - 1)
            pool = [w for group in (CHARACTERS, PLACES, THEMES, TRAITS) for x in group for w in x.split()]
            words[k] = rng.choice(pool)
            text = " ".join(words)
        elif len(words) > 5:
            del words[rng.randrange(1, len(words) - 1)]
            text = " ".join(words)
    return text


def synthetic_instructions(n: int, seed: int = 0) -> list[str]:
    """n instruction-like strings about a novel, about 30% of them edits of an earlier one."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.3:
            out.append(_mutate(rng.choice(out), rng))
        else:
            out.append(_fill(rng.choice(TEMPLATES), rng))
    return out


def reference_dedup(tokens: list[list[str]], threshold: float = 0.7) -> list[int]:
    """Alpaca's loop with the real rouge-score: each candidate scored against every kept one."""
    from rouge_score import rouge_scorer

    kept: list[int] = []
    for i, x in enumerate(tokens):
        scores = [rouge_scorer._score_lcs(x, tokens[j]).fmeasure for j in kept]
        if not scores or max(scores) <= threshold:
            kept.append(i)
    return kept


def reference_seconds_per_pair(tokens: list[list[str]], kept: list[int], n_pairs: int, seed: int = 0) -> float:
    """Time rouge-score on a deterministic sample of the (candidate, kept) pairs the reference would score."""
    from bisect import bisect_right

    from rouge_score import rouge_scorer

    # Pair number p belongs to the candidate i whose cumulative pair count passes p; partner = p-th kept before i.
    kept_before, cumulative, k = [], [], 0
    total = 0
    for i in range(len(tokens)):
        kept_before.append(k)
        total += k
        cumulative.append(total)
        if k < len(kept) and kept[k] == i:
            k += 1
    rng = random.Random(seed)
    pairs = []
    for p in sorted(rng.sample(range(total), min(n_pairs, total))):
        i = bisect_right(cumulative, p)
        pairs.append((tokens[i], tokens[kept[p - (cumulative[i] - kept_before[i])]]))
    start = time.perf_counter()
    for a, b in pairs:
        rouge_scorer._score_lcs(a, b)
    return (time.perf_counter() - start) / len(pairs)


def agreement(kept_a: list[int], kept_b: list[int], n: int) -> float:
    a, b = set(kept_a), set(kept_b)
    return sum((i in a) == (i in b) for i in range(n)) / n


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--subset", type=int, default=1000, help="texts on which the full reference is run")
    parser.add_argument("--big", type=int, default=50000)
    parser.add_argument("--sample-pairs", type=int, default=20000)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    from rouge_score import rouge_scorer

    tokenizer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)._tokenizer
    texts = synthetic_instructions(args.n, seed=0)
    ours, t_ours = timed(near_duplicates, texts, args.threshold)
    print(f"{args.n} synthetic instructions: ours kept {len(ours.kept)}, dropped {len(ours.dropped)} in {t_ours:.2f} s; "
          f"full LCS on {ours.pairs_scored:,} of {ours.pairs_total:,} pairs ({ours.pairs_scored / ours.pairs_total:.3%})")

    brute, t_brute = timed(near_duplicates, texts, args.threshold, method="exhaustive")
    same_all = agreement(ours.kept, brute.kept, args.n)
    print(f"our un-pruned LCS on all {args.n}: {t_brute:.1f} s, identical decisions {same_all:.2%}")

    tokens, t_tok = timed(lambda: [tokenizer.tokenize(t) for t in texts])
    ref_sub, t_ref_sub = timed(reference_dedup, tokens[:args.subset], args.threshold)
    ours_sub, t_ours_sub = timed(near_duplicates, texts[:args.subset], args.threshold)
    same_sub = agreement(ours_sub.kept, ref_sub, args.subset)
    print(f"rouge-score reference, full run on the first {args.subset}: {t_ref_sub:.1f} s vs ours {t_ours_sub:.2f} s "
          f"({t_ref_sub / t_ours_sub:.0f}x measured), identical decisions {same_sub:.2%}")

    per_pair = reference_seconds_per_pair(tokens, brute.kept, args.sample_pairs)
    t_ref = per_pair * brute.pairs_total + t_tok
    speedup = t_ref / t_ours
    print(f"rouge-score per pair: {per_pair * 1e6:.0f} us on {args.sample_pairs:,} sampled pairs; the reference scores "
          f"{brute.pairs_total:,} pairs on all {args.n} -> {t_ref / 60:.1f} min (extrapolated, not run)")

    big = synthetic_instructions(args.big, seed=1)
    big_result, t_big = timed(near_duplicates, big, args.threshold)
    print(f"{args.big} instructions: {t_big:.1f} s (kept {len(big_result.kept)}), one process")
    mh, t_mh = timed(near_duplicates, big, args.threshold, method="minhash")
    print(f"{args.big} instructions, method='minhash': {t_mh:.1f} s, "
          f"identical decisions to exact {agreement(mh.kept, big_result.kept, args.big):.2%}")

    print()
    print(f"speedup vs rouge-score reference on {args.n}: {speedup:.0f}x (target >= 50x) "
          f"{'PASS' if speedup >= 50 else 'FAIL'}")
    worst = min(same_sub, same_all)
    print(f"identical decisions: {same_sub:.2%} vs rouge-score on {args.subset}, {same_all:.2%} vs un-pruned LCS on "
          f"{args.n} (target >= 99%) {'PASS' if worst >= 0.99 else 'FAIL'}")
    print(f"time for {args.big}: {t_big:.1f} s (target < 60 s on 2 cores) {'PASS' if t_big < 60 else 'FAIL'}")


if __name__ == "__main__":
    main()
