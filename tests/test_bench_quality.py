"""The quality benchmark's answer check: a right answer written with digits counts as right."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_quality import says, with_digits  # noqa: E402


def test_numbers_are_compared_as_numbers():
    assert with_digits("Two thousand a year, or 2,000") == "2000 a year, or 2000"
    assert with_digits("five-and-twenty and twenty-five and 5-and-twenty") == "25 and 25 and 25"
    assert with_digits("one hundred pounds") == "100 pounds"
    assert says("The yearly value of Mr. Bennet's estate is 2000 pounds.", ["two thousand"])
    assert says("She lives about 50 miles away.", ["fifty miles"])


def test_a_wrong_answer_stays_wrong():
    assert not says("Five years before", ["ten or a dozen", "ten or twelve"])
    assert not says("Twelve thousand pounds", ["two thousand"])
    assert not says("Elizabeth", ["kitty"])
