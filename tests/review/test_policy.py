"""Tests for fairspec.review.policy: validation, acceptance, exact early exit, authors' record."""

from __future__ import annotations

import dataclasses
import itertools
import json
from fractions import Fraction
from pathlib import Path

import pytest

import fairspec.review as review
from fairspec.review import ReviewPolicy, parse_score
from fairspec.review.policy import policy_from

TEACHERS = ("gpt", "gemini", "mistral")
RECORD = "fair-authors-record/Llama-2-7b-chat-hf_svamp_rationale_round0.json"


def test_public_api_is_exactly_all() -> None:
    assert sorted(review.__all__) == sorted(
        ["ACCEPT_OPS", "AGGREGATES", "ReviewPolicy", "ScoredReview", "parse_score"]
    )
    for name in review.__all__:
        assert hasattr(review, name)


def test_a_review_stages_settings_give_its_policy() -> None:
    settings = {"policy": {"score_range": [1, 10], "threshold": 6.5, "accept": ">",
                           "aggregate": "trimmed_mean", "min_valid_scores": 2, "exclude_self": True}}
    assert policy_from(settings) == ReviewPolicy(score_range=(1, 10), threshold=6.5, accept=">",
                                                 aggregate="trimmed_mean", min_valid_scores=2)


def test_defaults_are_the_papers_rule() -> None:
    policy = ReviewPolicy()
    assert (policy.score_range, policy.threshold, policy.accept) == ((1, 5), 4, ">=")
    assert (policy.aggregate, policy.min_valid_scores) == ("mean", 1)
    assert str(policy) == "mean >= 4 (scores 1-5, at least 1 valid)"


def test_policy_is_frozen_and_keyword_only() -> None:
    policy = ReviewPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.threshold = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        ReviewPolicy((1, 5), 4)  # type: ignore[misc]


def test_score_range_given_as_a_list_is_stored_as_a_tuple() -> None:
    policy = ReviewPolicy(score_range=[0, 10], threshold=7)  # type: ignore[arg-type]
    assert policy.score_range == (0, 10)
    assert hash(policy) == hash(ReviewPolicy(score_range=(0, 10), threshold=7))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 6}, "threshold"),
        ({"threshold": 0.5}, "threshold"),
        ({"threshold": "4"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"score_range": (5, 1)}, "score_range"),
        ({"score_range": (3, 3), "threshold": 3}, "score_range"),
        ({"score_range": (1, 2, 3)}, "score_range"),
        ({"score_range": (1.0, 5)}, "score_range"),
        ({"score_range": None}, "score_range"),
        ({"accept": "=>"}, "accept"),
        ({"accept": "<"}, "accept"),
        ({"aggregate": "max"}, "aggregate"),
        ({"aggregate": "avg"}, "aggregate"),
        ({"min_valid_scores": 0}, "min_valid_scores"),
        ({"min_valid_scores": 1.5}, "min_valid_scores"),
        ({"min_valid_scores": True}, "min_valid_scores"),
    ],
)
def test_invalid_policy_raises_value_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"ReviewPolicy\.{field}\b"):
        ReviewPolicy(**kwargs)  # type: ignore[arg-type]


def test_threshold_may_sit_on_either_end_of_the_range() -> None:
    assert ReviewPolicy(threshold=1).accepts([1])
    assert not ReviewPolicy(threshold=5, accept=">").accepts([5, 5])


@pytest.mark.parametrize(
    ("policy", "scores", "expected"),
    [
        (ReviewPolicy(), [4, 4], True),
        (ReviewPolicy(), [3, 4], False),  # mean 3.5 < 4
        (ReviewPolicy(), [2, 5], False),
        (ReviewPolicy(accept=">", threshold=3), [3, 4], True),  # authors' code: 3.5 > 3
        (ReviewPolicy(accept=">", threshold=3), [3, 3], False),
        (ReviewPolicy(accept=">", threshold=4), [4, 4], False),
        (ReviewPolicy(threshold=3.5), [3, 4], True),
        (ReviewPolicy(threshold=3.5, accept=">"), [3, 4], False),
        (ReviewPolicy(), [4, 4, 5], True),
        (ReviewPolicy(threshold=4.5), [4, 4, 5], False),  # 13/3 < 4.5
        (ReviewPolicy(aggregate="median"), [1, 4, 5], True),
        (ReviewPolicy(aggregate="median"), [1, 3, 5, 5], True),  # (3 + 5) / 2
        (ReviewPolicy(aggregate="median"), [1, 3, 4, 5], False),  # 3.5
        (ReviewPolicy(aggregate="min"), [4, 5, 5], True),
        (ReviewPolicy(aggregate="min"), [3, 5, 5], False),
        (ReviewPolicy(aggregate="trimmed_mean"), [1, 4, 5], True),  # 1 and 5 dropped: 4
        (ReviewPolicy(aggregate="trimmed_mean"), [1, 4, 4, 5], True),  # (4 + 4) / 2
        (ReviewPolicy(aggregate="trimmed_mean"), [1, 3, 3, 5, 5], False),  # (3 + 3 + 5) / 3
        (ReviewPolicy(aggregate="trimmed_mean"), [3, 5], True),  # two scores: their mean
        (ReviewPolicy(aggregate="trimmed_mean"), [2, 5], False),
    ],
)
def test_accepts_compares_the_aggregate_with_the_threshold(
    policy: ReviewPolicy, scores: list[int | None], expected: bool
) -> None:
    assert policy.accepts(scores) is expected


def test_invalid_reviews_are_left_out_of_the_aggregate() -> None:
    policy = ReviewPolicy()
    assert policy.accepts([5, None])  # mean of [5], not of [5, 0]
    assert not policy.accepts([3, None])
    assert ReviewPolicy(aggregate="min").accepts([None, 4, None])
    assert policy.aggregate_score([5, None, 4]) == 4.5
    assert policy.aggregate_score([None, None]) is None


def test_too_few_valid_scores_is_a_rejection() -> None:
    assert not ReviewPolicy().accepts([])
    assert not ReviewPolicy().accepts([None, None])
    assert not ReviewPolicy(min_valid_scores=2).accepts([5, None])
    assert ReviewPolicy(min_valid_scores=2).accepts([5, 4, None])


@pytest.mark.parametrize("bad", [0, 6, 83, -1, True, 0.5, 5.25, float("nan"), float("inf"), "4"])
def test_a_score_that_is_neither_valid_nor_none_raises(bad: object) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace(".", r"\.")):
        ReviewPolicy().accepts([5, bad])  # type: ignore[list-item]


def test_real_valued_scores_aggregate_exactly() -> None:
    """Expected scores from log-probabilities are real numbers, aggregated as given."""
    policy = ReviewPolicy()
    assert policy.accepts([3.9, 4.1])  # mean exactly 4: no float rounding
    assert not policy.accepts([3.9, 4.0999])
    assert policy.aggregate_score([3.5, None, 4]) == 3.75
    assert ReviewPolicy(aggregate="median").aggregate_score([4.5, 1.25, 3.0]) == 3.0
    assert ReviewPolicy(aggregate="min").accepts([4.01, 5])
    assert not ReviewPolicy(accept=">").accepts([4.0, 4])


def test_decision_stops_when_the_outcome_cannot_change() -> None:
    policy = ReviewPolicy()
    assert policy.decision([2], pending=1) is False  # (2 + 5) / 2 = 3.5 < 4
    assert policy.decision([3], pending=1) is None  # (3 + 5) / 2 = 4 could pass
    assert policy.decision([5], pending=1) is None  # a 1 would fail it, None would pass it
    assert policy.decision([5, 5], pending=1) is None  # (5 + 5 + 1) / 3 < 4
    assert policy.decision([5, 5, 5], pending=1) is True  # worst case (15 + 1) / 4 = 4
    assert policy.decision([None], pending=1) is None
    assert ReviewPolicy(min_valid_scores=3).decision([5], pending=1) is False
    assert ReviewPolicy(min_valid_scores=2).decision([5, 5, 5], pending=1) is True


@pytest.mark.parametrize("pending", [-1, 1.0, True])
def test_decision_rejects_a_bad_pending_count(pending: object) -> None:
    with pytest.raises(ValueError, match="pending"):
        ReviewPolicy().decision([4], pending)  # type: ignore[arg-type]


def _policies(score_range: tuple[int, int]) -> list[ReviewPolicy]:
    low, high = score_range
    thresholds = sorted({low, high, (low + high) / 2, low + 1, high - 1, low + 4 / 3})
    return [
        ReviewPolicy(
            score_range=score_range, threshold=t, accept=op, aggregate=agg, min_valid_scores=m
        )
        for t in thresholds
        for op in (">=", ">")
        for agg in ("mean", "median", "min", "trimmed_mean")
        for m in (1, 2, 3, 4)
    ]


def _brute_force_accepts(policy: ReviewPolicy, scores: tuple[float | None, ...]) -> bool:
    """eq. 4 written out independently: exact fractions and sorted lists, no policy internals."""
    valid = sorted(Fraction(str(s)) for s in scores if s is not None)
    if len(valid) < policy.min_valid_scores:
        return False
    n = len(valid)
    if policy.aggregate == "mean":
        value = sum(valid, Fraction(0)) / n
    elif policy.aggregate == "median":
        value = (valid[(n - 1) // 2] + valid[n // 2]) / 2
    elif policy.aggregate == "trimmed_mean":
        middle = valid[1:n - 1] if n >= 3 else valid
        value = sum(middle, Fraction(0)) / len(middle)
    else:
        value = valid[0]
    threshold = Fraction(policy.threshold)
    return value >= threshold if policy.accept == ">=" else value > threshold


@pytest.mark.parametrize("score_range", [(1, 5), pytest.param((0, 3), marks=pytest.mark.slow)])
def test_decision_is_exact_against_every_completion(score_range: tuple[int, int]) -> None:
    """For every prefix of up to 4 reviews, decision() == what all completions agree on."""
    low, high = score_range
    outcomes: list[int | None] = [None, *range(low, high + 1)]
    reviewers = 4 if score_range == (0, 3) else 3
    checked = 0
    for policy in _policies(score_range):
        verdict = {
            full: _brute_force_accepts(policy, full)
            for full in itertools.product(outcomes, repeat=reviewers)
        }
        for asked in range(reviewers + 1):
            for prefix in itertools.product(outcomes, repeat=asked):
                finals = {
                    verdict[prefix + rest]
                    for rest in itertools.product(outcomes, repeat=reviewers - asked)
                }
                expected = finals.pop() if len(finals) == 1 else None
                assert policy.decision(list(prefix), reviewers - asked) is expected, (
                    policy,
                    prefix,
                )
                checked += 1
        for full, accepted in verdict.items():
            assert policy.accepts(list(full)) is accepted, (policy, full)
    assert checked > 10_000


def test_decision_is_exact_with_real_valued_scores() -> None:
    """Log-probability scores are any real in the range: decision() must agree with every
    completion. Checked on a grid that holds the range's ends (by monotonicity the worst
    and best completions are all-low and all-high, both on the grid) and values on
    both sides of each threshold, with int and real scores mixed."""
    outcomes: list[float | None] = [None, 1, 2.5, 3.75, 3.999, 4, 4.001, 4.3, 5]
    reviewers = 3
    checked = 0
    policies = [ReviewPolicy(threshold=t, accept=op, aggregate=agg, min_valid_scores=m)
                for t in (3.5, 4, 4.2) for op in (">=", ">") for agg in ("mean", "median", "min")
                for m in (1, 2)]
    for policy in policies:
        verdict = {full: _brute_force_accepts(policy, full)
                   for full in itertools.product(outcomes, repeat=reviewers)}
        for asked in range(reviewers + 1):
            for prefix in itertools.product(outcomes, repeat=asked):
                finals = {verdict[prefix + rest]
                          for rest in itertools.product(outcomes, repeat=reviewers - asked)}
                expected = finals.pop() if len(finals) == 1 else None
                assert policy.decision(list(prefix), reviewers - asked) is expected, (policy, prefix)
                checked += 1
        for full, accepted in verdict.items():
            assert policy.accepts(list(full)) is accepted, (policy, full)
    assert checked > 20_000


def test_calls_needed_is_minimal_and_keeps_the_verdict() -> None:
    outcomes: list[int | None] = [None, 1, 2, 3, 4, 5]
    reviewers = 3
    for policy in _policies((1, 5)):
        verdict = {
            full: _brute_force_accepts(policy, full)
            for full in itertools.product(outcomes, repeat=reviewers)
        }

        def verdicts(prefix: tuple[int | None, ...], verdict: dict = verdict) -> set[bool]:
            rests = itertools.product(outcomes, repeat=reviewers - len(prefix))
            return {verdict[prefix + rest] for rest in rests}

        for full, accepted in verdict.items():
            needed = policy.calls_needed(list(full))
            assert 0 <= needed <= reviewers
            # after `needed` calls every completion gives the true verdict ...
            assert verdicts(full[:needed]) == {accepted}, (policy, full)
            # ... and one call fewer some completion would have changed it
            if needed > 0:
                assert verdicts(full[: needed - 1]) == {True, False}, (policy, full)


def test_calls_needed_examples() -> None:
    policy = ReviewPolicy()
    assert policy.calls_needed([2, 5]) == 1
    assert policy.calls_needed([5, 5]) == 2
    assert policy.calls_needed([]) == 0
    assert ReviewPolicy(min_valid_scores=3).calls_needed([5, 5]) == 0
    with pytest.raises(ValueError, match="83"):
        policy.calls_needed([2, 83])


# -- the authors' released record ----------------------------------------------------------


def _load_record(shared_data: Path) -> list[dict]:
    return json.loads((shared_data / RECORD).read_text(encoding="utf-8"))


def _reviews(record: list[dict]) -> list[tuple[str, list[int | None], bool]]:
    """(text, scores read back with parse_score, kept by the authors) for every rationale."""
    rows = []
    for sample in record:
        for teacher in TEACHERS:
            text, *stored = sample[f"{teacher}_rationale"]
            scores = [parse_score(str(s)) for s in stored]
            rows.append((text, scores, text in sample["correct_rationale"]))
    return rows


def test_record_has_the_shape_the_readme_describes(shared_data: Path) -> None:
    record = _load_record(shared_data)
    assert len(record) == 387
    stored = [s for sample in record for t in TEACHERS for s in sample[f"{t}_rationale"][1:]]
    assert len(stored) == 387 * 3 * 2
    assert all(type(s) is int for s in stored)  # ints, not strings
    # the authors stored a parse failure as 0; one reviewer answered the question (83)
    assert sorted(s for s in stored if not 1 <= s <= 5) == [0, 83]
    for sample in record:
        texts = [sample[f"{t}_rationale"][0] for t in TEACHERS]
        assert len(set(texts)) == 3  # membership by text is unambiguous
        kept = sample["correct_rationale"]
        assert kept == [t for t in texts if t in kept]  # kept in teacher order, no strays


def test_authors_rule_reproduces_every_kept_rationale(shared_data: Path) -> None:
    rows = _reviews(_load_record(shared_data))
    authors = ReviewPolicy(accept=">", threshold=3)
    mismatches = [(text[:60], scores) for text, scores, kept in rows
                  if authors.accepts(scores) != kept]
    assert mismatches == []
    assert len(rows) == 1161
    assert sum(kept for _, _, kept in rows) == 826
    # the stored 0 and 83 became None; the rationales they scored were kept on the other score
    invalid = [(scores, kept) for _, scores, kept in rows if None in scores]
    assert invalid == [([None, 5], True), ([5, None], True)]


def test_papers_rule_differs_only_where_the_mean_is_exactly_3_5(shared_data: Path) -> None:
    rows = _reviews(_load_record(shared_data))
    paper = ReviewPolicy()
    differ = [scores for _, scores, kept in rows if paper.accepts(scores) != kept]
    assert len(differ) == 43  # agreement 1118 / 1161 = 96.3 %
    assert {tuple(sorted(s)) for s in differ} == {(2, 5), (3, 4)}
    # every difference is a rationale the authors kept and the paper's ">= 4" drops
    assert all(not paper.accepts(s) for s in differ)


def test_early_exit_savings_on_the_record(shared_data: Path) -> None:
    rows = _reviews(_load_record(shared_data))
    paper = ReviewPolicy()
    saved = sum(len(scores) - paper.calls_needed(scores) for _, scores, _ in rows)
    # two reviewers, mean >= 4: a first score of 1 or 2 already caps the mean at 3.5
    assert saved == sum(1 for _, scores, _ in rows if scores[0] in (1, 2))
    assert saved > 0
