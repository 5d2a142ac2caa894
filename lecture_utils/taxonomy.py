"""Stage 2: seed instructions, the teacher's taxonomy runs, near-duplicate removal, and how diverse the result is.

The lecture's Step 2 asks: are the instructions truly diverse, and do they cover the book? The functions here turn
that question into numbers: leading verbs and their objects, pairwise similarity, what each extra run adds that is
new, and which chapters and characters the instructions touch.
"""

from __future__ import annotations

import json
import numbers
import random
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from .prompts import CATEGORIES, SEED_META_PROMPT, SEED_SYSTEM, format_categories, format_examples
from .records import Instruction, Passage

SEEDS_PATH = Path(__file__).resolve().parent.parent / "data" / "seed_tasks.jsonl"


class TaxonomyError(ValueError):
    """A seed file or a teacher reply that Stage 2 cannot use."""


# --- Seeds -----------------------------------------------------------------------------------------------------------


def load_seeds(path: str | Path = SEEDS_PATH) -> list[Instruction]:
    """Read seed instructions from Alpaca's seed_tasks.jsonl, a JSONL of {"instruction", "category"?}, or plain lines."""
    path = Path(path)
    if not path.is_file():
        raise TaxonomyError(
            f"seed file {path} not found: pass an Alpaca seed_tasks.jsonl, a JSONL of {{\"instruction\": ...}} "
            f"or a text file with one instruction per line (the kit's own is {SEEDS_PATH})."
        )
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    as_json = first.startswith("{")  # the first real line decides the format, so a broken JSON line is an error
    seeds: list[Instruction] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or (not as_json and text.startswith("#")):
            continue
        if as_json:
            seeds.append(_seed_from_json(text, path, number, len(seeds) + 1))
        else:
            text = re.sub(r"^(?:[-*\u2022]|\d+[.)])\s+", "", text)  # "- ...", "3. ..." list markers
            seeds.append(Instruction(id=f"seed-{len(seeds) + 1:03d}", instruction=text, category="seed", run=-1, origin="seed"))
    if not seeds:
        raise TaxonomyError(f"{path} holds no instructions: add one per line, or one JSON object per line.")
    return seeds


def _seed_from_json(text: str, path: Path, number: int, position: int) -> Instruction:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaxonomyError(f"{path}:{number}: not valid JSON ({e.msg}); fix or delete that line.") from None
    instruction = data.get("instruction") if isinstance(data, dict) else None
    if not isinstance(instruction, str) or not instruction.strip():
        raise TaxonomyError(f"{path}:{number}: no \"instruction\" text; each line needs {{\"instruction\": \"...\"}}.")
    instances = data.get("instances") or [{}]
    first = instances[0] if isinstance(instances, list) and instances and isinstance(instances[0], dict) else {}
    return Instruction(
        id=f"seed-{position:03d}",
        instruction=" ".join(instruction.split()),
        category=str(data.get("category") or "seed"),
        run=-1,
        origin="seed",
        input=str(first.get("input") or ""),
    )


def load_seed_tasks(path: str | Path = SEEDS_PATH) -> list[dict]:
    """The raw seed records (with their example outputs), for showing them in a notebook."""
    seeds = load_seeds(path)  # validates the file and gives clear errors
    raw = [json.loads(ln) for ln in Path(path).read_text(encoding="utf-8-sig").splitlines() if ln.strip().startswith("{")]
    return raw if len(raw) == len(seeds) else [{"instruction": s.instruction, "category": s.category} for s in seeds]


# --- Teacher runs ----------------------------------------------------------------------------------------------------


def INSTRUCTION_SCHEMA(n: int, categories: Sequence[str] | None = None) -> dict:
    """JSON schema for one run's reply: exactly n {category, instruction} items."""
    return {
        "type": "object",
        "properties": {
            "instructions": {
                "type": "array",
                "minItems": n,
                "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string", "enum": list(categories or CATEGORIES)},
                        "instruction": {"type": "string", "minLength": 15},
                    },
                    "required": ["category", "instruction"],
                },
            }
        },
        "required": ["instructions"],
    }


def build_seed_prompt(n: int, examples: Sequence[str | Instruction] = (), categories: Sequence[str] | None = None,
                      prompt: str = SEED_META_PROMPT) -> str:
    """Fill the meta-prompt's {n}, {categories} and {examples}."""
    texts = [e.instruction if isinstance(e, Instruction) else str(e) for e in examples]
    try:
        return prompt.format(n=n, categories=format_categories(list(categories) if categories else None),
                             examples=format_examples(texts))
    except (KeyError, IndexError) as e:
        raise TaxonomyError(f"the meta-prompt has an unknown placeholder {e}; use only {{n}}, {{categories}} and "
                            "{examples}, and double other braces as {{ }}.") from None


def pick_examples(k: int = 3, seed: int | None = 0,
                  source: str | Path | Sequence[Instruction | str] = SEEDS_PATH) -> list[str]:
    """k seed instructions chosen by `seed`, so each run shows the teacher different examples (as Self-Instruct does).

    `source` is a seed file or already loaded seeds."""
    items = load_seeds(source) if isinstance(source, (str, Path)) else source
    texts = [i.instruction if isinstance(i, Instruction) else str(i) for i in items]
    return random.Random(seed).sample(texts, min(k, len(texts)))


def generate_run(teacher, n: int = 20, run: int = 1, temperature: float = 0.7, seed: int | None = None, *,
                 prompt: str = SEED_META_PROMPT, system: str | None = SEED_SYSTEM,
                 examples: Sequence[str | Instruction] | None = None, categories: Sequence[str] | None = None,
                 seeds: Sequence[Instruction | str] | None = None, max_tokens: int | None = None) -> list[Instruction]:
    """Ask the teacher once for n categorised instructions; ids are "i{run:02d}-{position:03d}".

    Without `examples`, three are drawn (by `seed`) from `seeds`, or from the kit's seed file."""
    if examples is None:
        examples = pick_examples(3, seed if seed is not None else run, seeds if seeds is not None else SEEDS_PATH)
    cats = list(categories or CATEGORIES)
    reply = teacher.structured(build_seed_prompt(n, examples, cats, prompt), INSTRUCTION_SCHEMA(n, cats), system=system,
                               temperature=temperature, max_tokens=max_tokens or 80 * n + 200, seed=seed)
    items = reply.data.get("instructions") if isinstance(reply.data, dict) else None
    if not isinstance(items, list):
        got = sorted(reply.data) if isinstance(reply.data, dict) else type(reply.data).__name__
        raise TaxonomyError(f"run {run}: the reply has no \"instructions\" list (got {got}); try another seed or model.")
    out = []
    for item in items:
        text = item.get("instruction") if isinstance(item, dict) else item if isinstance(item, str) else None
        if not isinstance(text, str) or not text.strip():
            continue
        category = str(item.get("category") or "other").strip().lower() if isinstance(item, dict) else "other"
        out.append(Instruction(id=f"i{run:02d}-{len(out) + 1:03d}", instruction=" ".join(text.split()),
                               category=category, run=run, origin="teacher"))
    if not out:
        raise TaxonomyError(f"run {run}: the reply held no usable instructions; try another seed or model.")
    return out


_DANGLING = {"of", "the", "a", "an", "to", "in", "on", "and", "or", "with", "about", "from", "between", "by", "for",
             "as", "at", "into", "that", "his", "her", "their", "its", "is", "are", "was"}


def looks_cut_off(instruction: str) -> bool:
    """True for an instruction that stops mid-phrase, e.g. "Describe the plot of" (a small model wrote a quoted title
    with raw quotes inside its JSON string, and the string ended at the first one)."""
    text = instruction.strip()
    words = re.findall(r"[A-Za-z']+", text)
    return not text or (text[-1] not in ".?!)\"'”" and bool(words) and words[-1].lower() in _DANGLING)


@dataclass
class RunReport:
    run: int
    temperature: float
    seed: int | None
    count: int = 0  # instructions kept from this run
    cut_off: int = 0  # set aside because they stop mid-phrase
    error: str = ""  # one line; empty when the run worked


@dataclass
class TaxonomyResult:
    """All runs merged: the instructions, and one report per run (failed runs say why)."""

    instructions: list[Instruction] = field(default_factory=list)
    runs: list[RunReport] = field(default_factory=list)
    teacher: str = ""
    cut_off: list[Instruction] = field(default_factory=list)  # set aside, shown, not silently lost

    @property
    def failures(self) -> list[RunReport]:
        return [r for r in self.runs if r.error]

    def table(self) -> pd.DataFrame:
        return instructions_table(self.instructions)

    def runs_table(self) -> pd.DataFrame:
        return pd.DataFrame([vars(r) for r in self.runs],
                            columns=["run", "temperature", "seed", "count", "cut_off", "error"])

    def __repr__(self) -> str:
        cut = f", {len(self.cut_off)} cut off" if self.cut_off else ""
        return (f"TaxonomyResult({len(self.instructions)} instructions from {len(self.runs) - len(self.failures)}/"
                f"{len(self.runs)} runs{cut}; teacher: {self.teacher})")


def generate_taxonomy(teacher, runs: Sequence[tuple[float, int | None]] = ((0.7, 1), (0.9, 2), (1.0, 3)), n: int = 20,
                      *, first_run: int = 1, **kwargs: Any) -> TaxonomyResult:
    """Run the meta-prompt once per (temperature, seed); a failed run is reported and the others are kept.

    Instructions that stop mid-phrase go to `.cut_off` instead of `.instructions`."""
    result = TaxonomyResult(teacher=teacher.describe() if hasattr(teacher, "describe") else type(teacher).__name__)
    for number, (temperature, seed) in enumerate(runs, first_run):
        report = RunReport(number, temperature, seed)
        try:
            batch = generate_run(teacher, n, number, temperature, seed, **kwargs)
        except (ValueError, RuntimeError) as e:  # TeacherError and TaxonomyError are both; one bad run must not cost the rest
            report.error = str(e).splitlines()[0] if str(e) else type(e).__name__
            warnings.warn(f"taxonomy run {number} (temperature {temperature}, seed {seed}) failed: {report.error}",
                          stacklevel=2)
        else:
            cut = [i for i in batch if looks_cut_off(i.instruction)]
            report.count, report.cut_off = len(batch) - len(cut), len(cut)
            result.instructions.extend(i for i in batch if not looks_cut_off(i.instruction))
            result.cut_off.extend(cut)
        result.runs.append(report)
    if not result.instructions and result.runs:
        raise TaxonomyError(f"every taxonomy run failed; the first said: {result.runs[0].error}")
    return result


def instructions_table(instructions: Iterable[Instruction]) -> pd.DataFrame:
    cols = ["id", "run", "origin", "category", "instruction"]
    return pd.DataFrame([{c: getattr(i, c) for c in cols} for i in instructions], columns=cols)


# --- Near-duplicates and novelty ---------------------------------------------------------------------------------------


def merge_and_dedup(instructions: Sequence[Instruction], threshold: float = 0.7,
                    method: str = "rouge") -> tuple[list[Instruction], pd.DataFrame]:
    """Seeds first, then runs in order; drop each instruction too similar to an earlier kept one. -> (kept, dropped)."""
    from .dedup import near_duplicates

    ordered = sorted(instructions, key=lambda i: (i.origin != "seed", i.run))  # stable: position within a run is kept
    result = near_duplicates([i.instruction for i in ordered], threshold=threshold, method=method)
    kept = [ordered[k] for k in result.kept]
    rows = []
    for d in result.dropped:
        me, other = ordered[d.index], ordered[d.closest]
        rows.append({"id": me.id, "instruction": me.instruction, "category": me.category, "run": me.run,
                     "origin": me.origin, "closest_id": other.id, "closest_instruction": other.instruction,
                     "closest_run": other.run, "score": round(d.score, 3)})
    cols = ["id", "instruction", "category", "run", "origin", "closest_id", "closest_instruction", "closest_run", "score"]
    return kept, pd.DataFrame(rows, columns=cols)


def novelty_by_run(instructions: Sequence[Instruction], threshold: float = 0.7,
                   dropped: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run: how many instructions were new, and how many repeated an earlier run (seeds count as run -1)."""
    if dropped is None:
        _, dropped = merge_and_dedup(instructions, threshold)
    generated = Counter(i.run for i in instructions)
    earlier = Counter(dropped.loc[dropped["closest_run"] != dropped["run"], "run"])
    same = Counter(dropped.loc[dropped["closest_run"] == dropped["run"], "run"])
    rows, total = [], 0
    for run in sorted(generated):
        new = generated[run] - earlier[run] - same[run]
        total += new
        rows.append({"run": run, "label": "seeds" if run < 0 else f"run {run}", "generated": generated[run], "new": new,
                     "repeats_earlier": earlier[run], "repeats_same_run": same[run], "unique_so_far": total})
    return pd.DataFrame(rows, columns=["run", "label", "generated", "new", "repeats_earlier", "repeats_same_run",
                                       "unique_so_far"])


def pairwise_similarities(texts: Sequence[str], max_pairs: int = 5000, seed: int = 0) -> list[float]:
    """ROUGE-L of every pair, or of max_pairs random pairs when there are more."""
    from .dedup import rouge_l

    n = len(texts)
    total = n * (n - 1) // 2
    if total <= max_pairs:
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    else:
        rng, seen = random.Random(seed), set()
        while len(seen) < max_pairs:
            a, b = rng.sample(range(n), 2)
            seen.add((min(a, b), max(a, b)))
        pairs = sorted(seen)
    return [rouge_l(texts[a], texts[b]) for a, b in pairs]


def closest_similarities(texts: Sequence[str], others: Sequence[str] | None = None) -> list[float]:
    """For each text, its highest ROUGE-L with any other text (or with any of `others`, e.g. the seeds)."""
    from .dedup import rouge_l

    if others is not None:
        return [max((rouge_l(t, o) for o in others), default=0.0) for t in texts]
    best = [0.0] * len(texts)
    for a in range(len(texts)):
        for b in range(a + 1, len(texts)):
            s = rouge_l(texts[a], texts[b])
            best[a], best[b] = max(best[a], s), max(best[b], s)
    return best


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


# --- Leading verb and its object ---------------------------------------------------------------------------------------
# A few word lists instead of a parser: good enough to see whether every instruction starts with "Describe".

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
            after_determiner = tokens[k - 1].lower() in _DETERMINERS
            if not after_determiner and low not in _NOT_PARTICIPLES and (
                    low.endswith(("ed", "en", "ing")) or low in ("shown", "seen", "made", "told", "known", "felt", "led")):
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


# --- Coverage: characters and chapters -------------------------------------------------------------------------------
# "Miss Bennet" is left out on purpose: it is Jane in most chapters but Elizabeth at Rosings and in Lady Catherine's
# mouth, so counting it for either would mislead. "Mrs Wickham" is Lydia and "Mrs Collins" Charlotte after marriage.

_MR, _MRS, _MISS = r"Mr\.?\s+", r"Mrs\.?\s+", r"Miss\s+"
CHARACTERS: dict[str, str] = {
    "Elizabeth": r"\bElizabeth\b|\bLizzy\b|\bEliza\b",
    "Darcy": rf"(?<!Miss )(?<!Mrs )(?<!Mrs\. )(?<!Lady Anne )(?<!Georgiana )\bDarcy\b",
    "Jane": r"\bJane\b(?!\s+Austen)",
    "Bingley": r"(?<!Miss )(?<!Mrs )(?<!Mrs\. )(?<!Caroline )(?<!Louisa )\bBingley\b",
    "Wickham": r"(?<!Mrs )(?<!Mrs\. )\bWickham\b",
    "Collins": r"(?<!Mrs )(?<!Mrs\. )\bCollins\b",
    "Lydia": rf"\bLydia\b|\b{_MRS}Wickham\b",
    "Mr Bennet": rf"\b{_MR}Bennet\b",
    "Mrs Bennet": rf"\b{_MRS}Bennet\b",
    "Charlotte": rf"\bCharlotte\b|\b{_MISS}Lucas\b|\b{_MRS}Collins\b",
    "Lady Catherine": r"\bLady\s+Catherine\b|\bCatherine\s+de\s+Bourgh\b",
    "Georgiana": rf"\bGeorgiana\b|\b{_MISS}Darcy\b",
    "Caroline Bingley": rf"\bCaroline\b|\b{_MISS}Bingley\b",
    "Kitty": r"\bKitty\b|(?<!Lady )\bCatherine\b(?!\s+de\s+Bourgh)",
    "Mary": r"\bMary\b(?!\s+King)",
    "the Gardiners": r"\bGardiners?\b",
}


def _patterns(names: Sequence[str] | dict[str, Sequence[str]] | None) -> dict[str, re.Pattern]:
    if names is None:
        return {k: re.compile(v) for k, v in CHARACTERS.items()}
    if isinstance(names, dict):  # your own people: {"Ada": ["Ada", "Lovelace"]}
        return {k: re.compile("|".join(rf"\b{re.escape(a)}\b" for a in aliases)) for k, aliases in names.items()}
    return {k: re.compile(CHARACTERS.get(k, rf"\b{re.escape(k)}\b")) for k in names}


def characters_named(text: str, names: Sequence[str] | dict[str, Sequence[str]] | None = None) -> list[str]:
    """Which of the main characters a text names (by name or alias)."""
    text = " ".join(text.split())  # a line break inside "Lady\nCatherine" must not hide the title
    return [name for name, pat in _patterns(names).items() if pat.search(text)]


def character_mentions(passages: Sequence[Passage], names: Sequence[str] | dict[str, Sequence[str]] | None = None
                       ) -> pd.DataFrame:
    """Mentions of each character per chapter (rows: chapter, or source for documents; columns: characters)."""
    pats = _patterns(names)
    rows: dict[Any, Counter] = {}
    for p in passages:
        key = p.chapter if p.chapter is not None else p.source
        counts = rows.setdefault(key, Counter())
        text = " ".join(p.text.split())  # a line break inside "Lady\nCatherine" must not hide the title
        for name, pat in pats.items():
            counts[name] += len(pat.findall(text))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(pats)).fillna(0).astype(int)
    table.index.name = "chapter"
    return table


def coverage_table(instructions: Sequence[Instruction], index=None,
                   names: Sequence[str] | dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per instruction: the chapter of its top BM25 passage (needs `index`) and the characters it names."""
    rows = []
    for ins in instructions:
        row = {"id": ins.id, "category": ins.category, "run": ins.run, "instruction": ins.instruction,
               "chapter": None, "passage_id": None, "score": 0.0, "characters": characters_named(ins.instruction, names)}
        if index is not None:
            hits = index.search(ins.instruction, k=1)
            if hits and hits[0][1] > 0:
                passage, score = hits[0]
                row.update(chapter=passage.chapter if passage.chapter is not None else passage.source,
                           passage_id=passage.id, score=round(float(score), 3))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["id", "category", "run", "instruction", "chapter", "passage_id", "score",
                                        "characters"])
    if all(isinstance(c, numbers.Integral) for c in table["chapter"].dropna()):
        table["chapter"] = table["chapter"].astype("Int64")  # chapter numbers stay integers; no match is <NA>
    return table


def chapter_counts(chapters: Iterable[Any], n_chapters: int | None = None) -> pd.Series:
    """How many instructions touch each chapter; chapters 1..n_chapters all present, untouched ones as 0."""
    counts = Counter(_chapter_key(c) for c in chapters if not pd.isna(c))
    if counts and all(isinstance(c, int) for c in counts):
        last = max(n_chapters or 0, max(counts))
        series = pd.Series({ch: counts.get(ch, 0) for ch in range(1, last + 1)}, dtype=int)
    else:
        series = pd.Series(dict(counts), dtype=int)
    series.index.name = "chapter"
    return series.rename("instructions")


def _chapter_key(c: Any) -> Any:
    # chapters come back as floats (or numpy ints) from a DataFrame column that held a None
    if isinstance(c, numbers.Integral) or (isinstance(c, numbers.Real) and float(c).is_integer()):
        return int(c)
    return c


def character_counts(instructions: Iterable[Instruction | str],
                     names: Sequence[str] | dict[str, Sequence[str]] | None = None) -> pd.Series:
    """How many instructions name each character (every character listed, zeros included)."""
    pats = _patterns(names)
    counts = Counter()
    for item in instructions:
        text = item.instruction if isinstance(item, Instruction) else str(item)
        counts.update(name for name, pat in pats.items() if pat.search(text))
    return pd.Series({name: counts.get(name, 0) for name in pats}, dtype=int).rename("instructions")


def uncovered_chapters(counts: pd.Series) -> list:
    """Chapters no instruction touches: steer the next run toward them."""
    return [ch for ch, c in counts.items() if c == 0]
