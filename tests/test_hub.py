"""The Hugging Face dataset folder: datasets.load_dataset reads it offline, and the test split does not leak."""

import json

import pytest
import yaml

from lecture_utils.records import Passage, QAPair
from lecture_utils.scale import hub
from lecture_utils.scale.formats import ExportError


def corpus(chapters=10, per=3):
    return [Passage(f"ch{c:02d}-p{i:03d}", "lamps.txt", f"Chapter {c}, part {i}: the keeper trims lamp {c}{i}.",
                    0, 10, chapter=c) for c in range(1, chapters + 1) for i in range(1, per + 1)]


def pairs_over(passages, straddle=True):
    out = [QAPair(id=f"qa-{p.id}", instruction_id=p.id, instruction=f"Which lamp does the keeper trim in {p.id}?",
                  category="recall a fact" if i % 2 else "explain why", answer=f"Lamp {p.id}.", cited=[p.id],
                  teacher="t", review="checks", checks={"support": 0.9, "faithful": "YES"})
           for i, p in enumerate(passages)]
    # the same question asked of two chapters, and one pair citing two chapters
    out.append(QAPair(id="qa-again", instruction_id="again", instruction=out[0].instruction.upper() + "  ",
                      category="recall a fact", answer="Again.", cited=[passages[-1].id], teacher="t"))
    if straddle:
        out.append(QAPair(id="qa-both", instruction_id="both", instruction="Compare the first and last lamps.",
                          category="compare", answer="Both are trimmed.", cited=[passages[0].id, passages[-1].id],
                          teacher="t"))
    out.append(QAPair(id="qa-refusal", instruction_id="no", instruction="What colour is the sea?", category="x",
                      answer="The passages do not say.", not_in_text=True, teacher="t"))
    return out


def test_load_dataset_reads_train_and_test_offline_and_nothing_leaks(tmp_path, monkeypatch):
    """Also: a second export to the same folder is what load_dataset reads (datasets caches by file names)."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    passages = corpus()
    result = hub.write_hf(pairs_over(passages), passages, tmp_path / "hf", test_size=0.3, seed=1,
                          source="Lamps (a test)", licence="cc-by-4.0")
    loaded = datasets.load_dataset(str(tmp_path / "hf"))
    assert set(loaded) == {"train", "test"}
    train, test = loaded["train"], loaded["test"]
    assert len(train) == result.splits["train"] and len(test) == result.splits["test"] >= 6
    assert len(train) + len(test) < len(pairs_over(passages))  # the refusal and the leaks stayed out
    assert not {c for r in train for c in r["cited"]} & {c for r in test for c in r["cited"]}
    assert not {u for r in train for u in r["units"]} & {u for r in test for u in r["units"]}
    asked = [hub.same_instruction(r["messages"][1]["content"]) for r in train]
    assert not set(asked) & {hub.same_instruction(r["messages"][1]["content"]) for r in test}
    row = test[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert "Lamps" in row["messages"][0]["content"] and row["task_type"] and json.loads(row["checks"]) is not None
    again = hub.write_hf(pairs_over(passages)[:12], passages, tmp_path / "hf", test_size=0.3, seed=1)
    reloaded = datasets.load_dataset(str(tmp_path / "hf"))
    assert {k: len(v) for k, v in reloaded.items()} == again.splits != result.splits
    assert len(list((tmp_path / "hf" / "data").iterdir())) == len(again.splits)  # the old files are gone


def test_the_cards_yaml_header_parses_and_says_how_the_split_was_drawn(tmp_path):
    passages = corpus()
    result = hub.write_hf(pairs_over(passages), passages, tmp_path / "hf", seed=3, source="Lamps (a test)")
    text = result.card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "unknown" and header["language"] == ["en"]
    assert header["size_categories"] == ["n<1K"] and "question-answering" in header["task_categories"]
    files = {f["split"]: f["path"] for f in header["configs"][0]["data_files"]}
    assert files == {k: str(v.relative_to(tmp_path / "hf")) for k, v in result.files.items()}
    assert set(files) == {"train", "test"} and all((tmp_path / "hf" / p).exists() for p in files.values())
    assert "seed 3" in text and ", ".join(result.test_units) in text


def test_the_split_depends_on_the_seed_and_a_count_works_as_well_as_a_share():
    passages = corpus(chapters=12)
    pairs = pairs_over(passages, straddle=False)
    _, test_a, how_a = hub.split_by_unit(pairs, passages, 6, seed=0)
    _, _, how_b = hub.split_by_unit(pairs, passages, 6, seed=5)
    assert how_a["test_units"] != how_b["test_units"]
    assert 6 <= len(test_a) + how_a["repeated"] <= 8  # whole chapters of three pairs each
    both = pairs_over(passages)  # "qa-both" cites chapters 1 and 12
    for seed in range(20):
        train, test, how = hub.split_by_unit(both, passages, 6, seed=seed)
        split_up = ("chapter 1" in how["test_units"]) != ("chapter 12" in how["test_units"])
        assert how["straddling"] == split_up and ("qa-both" in {p.id for p in train + test}) != split_up


def test_too_few_pairs_or_too_big_a_test_is_a_clear_error(tmp_path):
    passages = corpus(chapters=2)
    one = pairs_over(passages)[:1]
    with pytest.raises(ExportError, match="at least two"):
        hub.write_hf(one, passages, tmp_path / "hf")
    with pytest.raises(ExportError, match="no training pairs"):
        hub.split_by_unit(pairs_over(passages), passages, 100)


def test_one_chapter_gives_a_train_split_only_and_the_card_says_why(tmp_path):
    datasets = pytest.importorskip("datasets")
    passages = corpus(chapters=1)
    pairs = pairs_over(passages, straddle=False)[:3]
    result = hub.write_hf(pairs, passages, tmp_path / "hf", test_size=0.0)
    assert result.splits == {"train": 3} and "no test split" in result.card.read_text(encoding="utf-8")
    assert list(datasets.load_dataset(str(tmp_path / "hf"))) == ["train"]


def test_the_export_command_writes_the_formats_and_the_hf_folder(tmp_path, capsys):
    from lecture_utils.__main__ import main
    from lecture_utils.records import write_jsonl

    passages = corpus()
    write_jsonl(tmp_path / "passages.jsonl", passages)
    write_jsonl(tmp_path / "dataset.jsonl", pairs_over(passages))
    assert main(["export", str(tmp_path), "--seed", "2", "--licence", "mit"]) == 0
    assert (tmp_path / "export" / "alpaca.json").exists()
    header = yaml.safe_load((tmp_path / "export" / "hf" / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert header["license"] == "mit"
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "run notebook 5" in capsys.readouterr().err


def test_a_split_whose_rows_all_lack_evidence_loads_beside_one_that_has_some(tmp_path):
    """Seen on Treasure Island: without the card's stated column types, test's empty lists were read as nulls."""
    import dataclasses

    datasets = pytest.importorskip("datasets")
    passages = corpus(chapters=4)
    pairs = [dataclasses.replace(p, evidence=["the keeper trims lamp"] if p.cited[0].startswith(("ch01", "ch02"))
                                 else []) for p in pairs_over(passages, straddle=False) if p.cited]
    result = hub.write_hf(pairs, passages, tmp_path / "hf", test_size=3, seed=0)
    loaded = datasets.load_dataset(str(tmp_path / "hf"))
    assert {k: len(v) for k, v in loaded.items()} == result.splits
    assert loaded["train"].features["evidence"] == loaded["test"].features["evidence"]
    assert any(r["evidence"] for r in loaded["train"]) != any(r["evidence"] for r in loaded["test"])
