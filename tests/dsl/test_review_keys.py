"""``review.early_exit`` and ``review.gold_check`` in a spec: their defaults, and a bad value
as an error at its line."""

from __future__ import annotations

import pytest
from katan_runs import committee, spec_text, write_spec

from fairspec.dsl import load_spec
from fairspec.errors import SpecError

REVIEW = """
  threshold: 4
  early_exit: {early_exit}
  gold_check: {gold_check}"""


def spec(tmp_path, early_exit: str = "true", gold_check: str = "report"):
    return write_spec(tmp_path, spec_text(committee("http://127.0.0.1:9/v1"), review=REVIEW.format(
        early_exit=early_exit, gold_check=gold_check)))


def test_the_defaults_keep_todays_review(tmp_path):
    review = load_spec(write_spec(tmp_path, spec_text(committee("http://127.0.0.1:9/v1")))).spec.review
    assert review.early_exit is True and review.gold_check == "report"


@pytest.mark.parametrize("gold_check", ["off", "report", "require"])
def test_every_gold_check_is_accepted(tmp_path, gold_check):
    review = load_spec(spec(tmp_path, "false", gold_check)).spec.review
    assert review.gold_check == gold_check and review.early_exit is False


def test_an_unknown_gold_check_is_an_error_at_its_line(tmp_path):
    path = spec(tmp_path, gold_check="strict")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    found = [p for p in caught.value.problems if p.path == "review.gold_check"]
    assert len(found) == 1, "\n".join(p.format() for p in caught.value.problems)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "gold_check:" in text)
    assert found[0].line == line
