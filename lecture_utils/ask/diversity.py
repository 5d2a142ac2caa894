"""How diverse a set of instructions is: the leading verb of each and its object, and the headline numbers.

The lecture's Step 2 asks whether the instructions are truly diverse. Self-Instruct answers with a donut of leading
verbs and their objects; verb_object finds them with a few word lists instead of a parser, which is good enough to see
whether every instruction starts with "Describe". diversity_stats adds the mean pairwise ROUGE-L (dedup.py).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import pandas as pd

from lecture_utils.records import Instruction
from lecture_utils.text.dedup import pairwise_similarities


def diversity_stats(instructions: Sequence[Instruction | str], max_pairs: int = 5000, seed: int = 0) -> dict:
    """Headline numbers: distinct leading verbs, the most common ones, and mean pairwise ROUGE-L."""
    texts = [i.instruction if isinstance(i, Instruction) else str(i) for i in instructions]
    verbs = Counter(v for v in map(leading_verb, texts) if v)
    sims = pairwise_similarities(texts, max_pairs, seed)
    return {
        "instructions": len(texts),
        "distinct_leading_verbs": len(verbs),
        "top_verbs": verbs.most_common(5),
        "mean_pairwise_rouge_l": round(sum(sims) / len(sims), 3) if sims else 0.0,
        "pairs_scored": len(sims),
    }


# --- Leading verb and its object -------------------------------------------------------------------------------------
# A few word lists instead of a parser. The parser reads its own tokens (case kept, "Mr." one word, punctuation kept
# as tokens), not tokens.words: it needs capitals to spot names and commas to find where an intro phrase ends.

_TOKEN = re.compile(r"(?:Mrs|Mr|Ms|Dr|St)\.|[A-Za-z][A-Za-z'\u2019-]*|\d+|[^\sA-Za-z\d]")  # "Mr." is one word
_FILLERS = {"please", "now", "also", "then", "kindly", "first", "finally", "next", "lastly", "just", "so", "ok", "okay"}
_YOU = {"can", "could", "would", "will"}  # "Can you explain ..."
_WH = {"what", "how", "why", "who", "whom", "whose", "which", "when", "where"}
_AUX = {"do", "does", "did", "is", "are", "was", "were", "can", "could", "will", "would", "should", "might", "may",
        "must", "has", "have", "had", "shall"}
_BE_HAVE = {"is", "are", "was", "were", "has", "have", "had"}
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "his", "her", "their", "its", "my", "your", "our",
                "each", "every", "any", "some", "all", "both", "two", "three", "four", "five", "several", "one",
                "another", "other", "such", "no", "many", "most", "much", "more", "few", "key", "main"}
_PREPOSITIONS = {"of", "in", "on", "at", "to", "for", "with", "about", "between", "from", "by", "during", "through",
                 "into", "towards", "toward", "over", "after", "before", "across", "throughout", "within", "among",
                 "against", "upon", "under", "without", "around", "behind", "beyond", "like", "as", "than", "via"}
_CLAUSE = {"and", "or", "but", "nor", "when", "while", "because", "that", "which", "who", "whom", "whose", "how", "why",
           "what", "where", "whether", "if", "so", "since", "although", "though", "once", "until", "whereas"} | _AUX
_PRONOUNS = {"she", "he", "they", "it", "we", "you", "i", "him", "them", "us", "me", "herself", "himself", "themselves",
             "itself", "yourself", "someone", "something"}
_TITLES = {"mr", "mrs", "miss", "lady", "sir", "colonel", "captain", "dr", "mr.", "mrs.", "dr."}
_NAME_PARTICLES = {"de", "la", "van", "von"}
_INTRO = {"using", "based", "drawing", "considering", "in", "from", "after", "with", "focusing", "looking", "according",
          "thinking", "given", "referring", "starting", "taking", "for", "at", "during", "within", "throughout"}
_VERBS = set("""accept act admire affect agree appear approach argue arrive ask assess attempt attract avoid become begin
believe belong blame bring cause challenge change choose claim come compare conceal conclude condemn consider contrast
contribute convey convince create criticise criticize deal decide deceive defend define depend depict describe deserve
develop differ disagree discover dislike display do dwell elope embody emerge end endure enter escape establish evaluate
evolve expect explain explore expose express face fail fall feel find foreshadow forgive gain get give go grow handle
happen hate have hear help hide highlight hope ignore illustrate imagine impress improve include influence inform inherit
insist interpret judge justify keep know lead learn leave lie like live look lose love make manage manipulate marry mean
meet mirror misjudge mock need notice object offer oppose overcome perceive persuade plan play portray present pretend
prevent prove provide pursue question react read realise realize receive recognise recognize refer reflect refuse regard
reject relate remain remember reply represent resist respond reveal say see seek seem serve shape show signal speak stand
struggle suffer suggest support suspect take teach tell tempt think threaten treat try turn undergo understand undermine
use value view visit want warn win wish withhold write apply rely supply""".split())
_NOT_PARTICIPLES = {"thing", "nothing", "something", "anything", "everything", "morning", "evening", "wedding", "king",
                    "ring", "meaning", "feeling", "feelings", "during", "darling", "sibling", "building", "garden", "heaven",
                    "women", "children", "men", "often"}


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.replace("\u2019", "'"))


def _is_word(tok: str) -> bool:
    return tok[:1].isalpha()  # "Mr." counts as a word


def _possessive(tok: str) -> bool:
    return tok.lower().endswith(("'s", "s'")) and len(tok) > 2


def _base(word: str) -> str:
    """Crude lemma for a third-person verb ("inherits" -> "inherit"), checked against the verb list when possible."""
    w = word.lower()
    for cut, add in (("ies", "y"), ("es", ""), ("s", "")):
        if w.endswith(cut) and (w[: -len(cut)] + add) in _VERBS:
            return w[: -len(cut)] + add
    return w


def _start(tokens: list[str]) -> int:
    """Index of the first meaningful word: skips fillers, "-ly" adverbs, "can you", and an intro phrase up to a comma."""
    i = 0
    if tokens and tokens[0].lower() in _INTRO and "," in tokens[:15] and not _wh_phrase(tokens, 0)[0]:
        i = tokens.index(",") + 1
    while i < len(tokens):
        low = tokens[i].lower()
        if not _is_word(tokens[i]) or low in _FILLERS or (low.endswith("ly") and low not in _VERBS and len(low) > 4):
            i += 1
        elif low in _YOU and i + 1 < len(tokens) and tokens[i + 1].lower() == "you":
            i += 2
        elif low in ("let's", "lets") or (low == "let" and i + 1 < len(tokens) and tokens[i + 1].lower() == "us"):
            i += 1 if low != "let" else 2
        else:
            break
    return i


def _wh_phrase(tokens: list[str], i: int) -> tuple[str | None, int]:
    """A question word at i -> (label, index after it); "in what way" reads as "how", "to what extent" as "how far"."""
    low = [t.lower() for t in tokens[i:i + 3]]
    if low[:2] == ["in", "what"] and len(low) > 2 and low[2] in ("way", "ways", "sense", "respects"):
        return "how", i + 3
    if low[:2] == ["to", "what"] and len(low) > 2 and low[2] in ("extent", "degree"):
        return "how far", i + 3
    if low and low[0] in _WH:
        return low[0], i + 1
    return None, i


def _object_after(tokens: list[str], i: int) -> str | None:
    """The head of the noun phrase that starts at i: names are kept whole, otherwise the last word before a break."""
    wh, _ = _wh_phrase(tokens, i)
    if wh:
        return wh
    if i < len(tokens) and tokens[i].lower() in ("whether", "if"):
        return "whether"
    run: list[str] = []
    skipped_prepositions = 0
    for tok in tokens[i:i + 12]:
        low = tok.lower()
        if not _is_word(tok):
            if run or not tok.isdigit():
                break
            continue  # a number before the noun ("two proposals" is handled by the determiners)
        if _possessive(tok):
            run = []  # "Darcy's letter": the possessor is not the object
            continue
        if low in _DETERMINERS or low in _PRONOUNS:
            if run:
                break
            continue
        if low in _PREPOSITIONS:
            skipped_prepositions += 1
            if run or skipped_prepositions > 1:  # "realise about herself after ...": no object here
                break
            continue
        if low in _CLAUSE or (run and low.endswith(("ed", "ing"))):  # "character based on ...": the phrase ended
            break
        run.append(tok.rstrip("."))
        if len(run) == 5:
            break
    if not run:
        return None
    if all(t[0].isupper() or t.lower() in _NAME_PARTICLES for t in run):
        return " ".join(run).lower()  # a name: "mr bennet" and "mrs bennet" are different people
    return run[-1].lower()


def _question(tokens: list[str], wh: str, i: int) -> tuple[str, str | None]:
    """(label, object) for a question: the wh-word plus its main verb, e.g. "why accept" -> "proposal"."""
    wh_np: list[str] = []
    j = i
    while (j < len(tokens) and j < i + 4 and _is_word(tokens[j])
           and tokens[j].lower() not in _CLAUSE | _PREPOSITIONS):
        wh_np.append(tokens[j])
        j += 1
    if j < len(tokens) and tokens[j].lower() in _AUX:
        aux = tokens[j].lower()
        at = j + 2 if j + 2 < len(tokens) and tokens[j + 1].lower() in ("been", "being") else j + 1  # "had been listened"
        if wh == "who" and not wh_np and aux in _BE_HAVE and at < len(tokens) and _participle(tokens[at]):
            return f"who {_base(tokens[at])}", _object_after(tokens, at + 1)  # "Who had hoped ...": who is the subject
        k, verb = _main_verb(tokens, j + 1, aux)
        if verb is None:  # "What is the role of ...": the copula is the verb
            return f"{wh} {aux}", _object_after(tokens, j + 1) if not wh_np else _object_after(wh_np, 0)
        subject = _object_after(tokens[j + 1:k], 0)
        if wh_np:  # "What role does X play": the wh-phrase is the object
            return f"{wh} {verb}", _object_after(wh_np, 0)
        if aux in _BE_HAVE - {"has", "have", "had"}:  # passive "How is Darcy portrayed": the subject is the topic
            return f"{wh} {verb}", subject
        if k + 1 < len(tokens) and tokens[k + 1].lower() in _PREPOSITIONS:  # "How does X change over ...": no object
            return f"{wh} {verb}", subject
        return f"{wh} {verb}", _object_after(tokens, k + 1) or subject
    # no auxiliary: "Who inherits Longbourn?", "Which character changes most?"
    if wh in ("what", "which", "whose") and len(wh_np) >= 2:  # "Which character changes most?"
        return f"{wh} {_base(wh_np[1])}", wh_np[0].lower()
    if wh_np:
        return f"{wh} {_base(wh_np[0])}", _object_after(tokens, i + 1)
    return wh, None


def _participle(tok: str) -> bool:
    low = tok.lower()
    return _is_word(tok) and low not in _NOT_PARTICIPLES | {"been", "being"} and (
        low.endswith(("ed", "en", "ing")) or low in ("shown", "seen", "made", "told", "known", "felt", "led"))


def _main_verb(tokens: list[str], i: int, aux: str) -> tuple[int, str | None]:
    """After "does/did/can ..." the first known verb past the subject; after "is/has" a participle, if any."""
    for k in range(i, min(len(tokens), i + 9)):
        tok = tokens[k]
        low = tok.lower()
        if not _is_word(tok) or (low in _CLAUSE - {"that"} and k > i):
            break
        if k == i or tok[0].isupper() or _possessive(tok) or low in _DETERMINERS:
            continue  # still inside the subject
        if aux in _BE_HAVE:
            if tokens[k - 1].lower() not in _DETERMINERS and _participle(tok):
                return k, low
            continue
        if low in _VERBS:
            return k, low
    if aux in _BE_HAVE:
        return i, None
    # fallback for an unknown verb: the word after a one-word subject ("does Jane X")
    k = i + 1 if i < len(tokens) and tokens[i].lower() not in _DETERMINERS else i + 2
    while k < len(tokens) and (tokens[k][0].isupper() or _possessive(tokens[k])):
        k += 1
    if k < len(tokens) and _is_word(tokens[k]) and tokens[k].lower() not in _CLAUSE | _PREPOSITIONS:
        return k, tokens[k].lower()
    return i, None


def verb_object(instruction: str) -> tuple[str | None, str | None]:
    """(leading verb, its object) by word lists, e.g. "Describe Darcy's first proposal" -> ("describe", "proposal")."""
    tokens = _tokens(instruction)
    i = _start(tokens)
    if i >= len(tokens):
        return None, None
    wh, j = _wh_phrase(tokens, i)
    if wh:
        return _question(tokens, wh, j)
    k = i + 1
    if k + 1 < len(tokens) and tokens[k].lower() == "and" and tokens[k + 1].lower() in _VERBS:
        k += 2  # "Compare and contrast X"
    return tokens[i].lower(), _object_after(tokens, k)


def leading_verb(instruction: str) -> str | None:
    """The instruction's first verb: "explain" for imperatives, "why accept" for "Why does Charlotte accept ...?"."""
    return verb_object(instruction)[0]


def verb_object_table(instructions: Iterable[Instruction | str]) -> pd.DataFrame:
    """One row per instruction: verb, object (None where the heuristics found nothing)."""
    rows = []
    for item in instructions:
        text = item.instruction if isinstance(item, Instruction) else str(item)
        verb, obj = verb_object(text)
        rows.append({"instruction": text, "verb": verb, "object": obj})
    return pd.DataFrame(rows, columns=["instruction", "verb", "object"])
