"""The notebook helpers students see through: tables must draw whatever a cell hands them."""

import pandas as pd

from lecture_utils.notebook import nb


def test_a_table_stacked_from_two_tables_is_shown(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
    rouge = pd.DataFrame({"check": ["ROUGE-L"], "instruction": ["Who came to tell Charlotte the news?"]})
    meaning = pd.DataFrame({"check": ["meaning"], "instruction": ["Who told Charlotte the same news?"]})
    stacked = pd.concat([rouge, meaning])  # both rows are labelled 0
    nb.show_table(stacked, ["check", "instruction"], max_height=300)
    assert "ROUGE-L" in shown[0] and "Who told Charlotte the same news?" in shown[0]
    assert "max-height:300px" in shown[0]
