"""Whether a rationale reaches the gold answer, read with the task's extractor."""

from __future__ import annotations

import pytest

from fairspec.review.gold_check import gold_verdict, reaches_gold

NUMBER = {"extractor": "number", "pattern": None, "tolerance": 1e-6}
MISTAKE = {"index": 0, "fields": {"question": "3 + 4.5?"}, "gold": 7.5, "gold_text": "7.5"}


@pytest.mark.parametrize("text,expected", [
    ("3 + 4.5 = 7.5. The answer is 7.5.", True),
    ("The answer is 7.50", True),  # compared as numbers
    ("3 + 4.5 = 7.5, so the answer is 8.", False),  # the final answer counts, not a step
    ("I cannot tell.", False),  # no answer read: not the gold one
    ("", False),
])
def test_a_rationale_reaches_the_gold_answer_only_with_its_final_answer(text, expected):
    assert reaches_gold(text, MISTAKE, NUMBER) is expected


def test_the_tasks_tolerance_applies():
    loose = {**NUMBER, "tolerance": 0.1}
    assert reaches_gold("The answer is 7.55.", MISTAKE, loose)
    assert not reaches_gold("The answer is 7.55.", MISTAKE, NUMBER)


def test_a_choice_is_read_against_the_questions_options():
    mistake = {"index": 1, "fields": {"question": "q", "options": ["red", "blue", "green"]},
               "gold": 1, "gold_text": "B"}
    choice = {"extractor": "choice", "pattern": None, "tolerance": 1e-6}
    assert reaches_gold("So the answer is (B).", mistake, choice)
    assert not reaches_gold("So the answer is (C).", mistake, choice)


def test_off_records_nothing_and_a_bad_check_raises():
    assert gold_verdict("off", "The answer is 7.5.", MISTAKE, NUMBER) is None
    assert gold_verdict("report", "The answer is 7.5.", MISTAKE, NUMBER) is True
    with pytest.raises(ValueError, match="gold_check"):
        gold_verdict("strict", "x", MISTAKE, NUMBER)
