"""Scores from log-probabilities: the expectation over the score tokens at the stated score."""

from __future__ import annotations

import math

import pytest

from fairspec.review.logprobs import (
    ScoreReading,
    TokenChoices,
    check_single_digits,
    distribution_at,
    expected_score,
    read_stated,
)

LN = math.log


def test_expected_score_is_the_renormalised_expectation_over_score_tokens() -> None:
    # the reviewer put 0.5 on "4", 0.25 on "3", 0.125 on "5" and 0.125 on a word
    alternatives = [("4", LN(0.5)), ("3", LN(0.25)), ("5", LN(0.125)), ("the", LN(0.125))]
    reading = distribution_at("4", 0, alternatives, (1, 5))
    assert reading is not None
    mass = 0.5 + 0.25 + 0.125
    assert reading.mass == pytest.approx(mass)
    assert reading.distribution == pytest.approx(
        {1: 0.0, 2: 0.0, 3: 0.25 / mass, 4: 0.5 / mass, 5: 0.125 / mass})
    assert reading.expected == pytest.approx((3 * 0.25 + 4 * 0.5 + 5 * 0.125) / mass)
    assert reading.how == "stated"


def test_tokens_that_differ_only_in_whitespace_count_for_the_same_score() -> None:
    alternatives = [(" 4", LN(0.4)), ("4", LN(0.2)), (" 2", LN(0.2)), ("2 ", LN(0.2))]
    reading = distribution_at(" 4", 1, alternatives, (1, 5))
    assert reading is not None
    assert reading.distribution[4] == pytest.approx(0.6)
    assert reading.distribution[2] == pytest.approx(0.4)


def test_a_bracket_merged_into_the_score_token_is_matched_as_such() -> None:
    # the chosen token is "[4": its alternatives are "[1".."[5", not bare digits
    alternatives = [("[4", LN(0.6)), ("[3", LN(0.3)), ("3", LN(0.1))]
    reading = distribution_at("[4", 1, alternatives, (1, 5))
    assert reading is not None
    assert reading.distribution[4] == pytest.approx(2 / 3)
    assert reading.distribution[3] == pytest.approx(1 / 3)


def test_scores_outside_the_range_and_duplicates_are_ignored() -> None:
    alternatives = [("4", LN(0.5)), ("4", LN(0.5)), ("7", LN(0.3)), ("0", LN(0.1)),
                    ("2", float("-inf"))]
    reading = distribution_at("4", 0, alternatives, (1, 5))
    assert reading is not None and reading.distribution[4] == 1.0
    assert reading.mass == pytest.approx(0.5)  # the repeated chosen token counted once


def test_no_score_token_among_the_alternatives_reads_nothing() -> None:
    assert distribution_at("4", 0, [("the", LN(0.9)), ("a", LN(0.1))], (1, 5)) is None


def test_read_stated_finds_the_token_of_the_score_the_text_parser_reads() -> None:
    # "[3] ... on reflection [4]": the last bracketed score is read, at its own token
    tokens = [TokenChoices("[", [("[", 0.0)]), TokenChoices("3", [("3", LN(0.9)), ("2", LN(0.1))]),
              TokenChoices("] on reflection [", []),
              TokenChoices("4", [("4", LN(0.7)), ("5", LN(0.2)), ("x", LN(0.1))]),
              TokenChoices("]", [])]
    text = "".join(t.text for t in tokens)
    reading = read_stated(text, tokens, (1, 5))
    assert reading is not None
    assert reading.expected == pytest.approx((4 * 0.7 + 5 * 0.2) / 0.9)


def test_read_stated_is_none_without_a_stated_score_or_when_tokens_do_not_line_up() -> None:
    tokens = [TokenChoices("The answer is 7.", [("The", 0.0)])]
    assert read_stated("The answer is 7.", tokens, (1, 5)) is None
    # tokens that do not spell the text at the score's place (e.g. bytes split by the API)
    assert read_stated("Score: [4]", [TokenChoices("Score: [x]", [("x", 0.0)])], (1, 5)) is None
    assert read_stated("Score: [4]", [], (1, 5)) is None


def test_a_reading_round_trips_through_its_json_form() -> None:
    reading = ScoreReading(distribution={1: 0.1, 2: 0.2, 3: 0.3, 4: 0.25, 5: 0.15}, mass=0.8,
                           how="forced")
    again = ScoreReading.from_json(reading.to_json())
    assert again.how == "forced" and again.mass == pytest.approx(0.8)
    assert again.expected == pytest.approx(reading.expected)
    assert expected_score({1: 0.5, 5: 0.5}) == 3.0
    with pytest.raises(ValueError, match="sum to 1"):
        ScoreReading(distribution={1: 0.5}, mass=1.0, how="stated")
    with pytest.raises(ValueError, match="how"):
        ScoreReading(distribution={1: 1.0}, mass=1.0, how="guessed")  # type: ignore[arg-type]


@pytest.mark.parametrize("score_range", [(1, 10), (-1, 5), (0, 100)])
def test_scores_must_be_single_digits(score_range: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="single digits"):
        check_single_digits(score_range)
    assert check_single_digits((0, 9)) == (0, 9)
