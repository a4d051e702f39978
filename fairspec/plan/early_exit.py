"""Which of a rationale's reviewers the review stage's early exit always asks, and which it may.

The review stage asks a rationale's reviewers one after another and stops when the verdict
is certain (unless ``review.early_exit`` is false: then all N(N-1) are asked, exactly), so
the review calls of the estimate are an upper bound; :func:`review_reach` says, exactly,
which reviewer positions are always asked and which may be asked.
"""

from __future__ import annotations

import math
from itertools import combinations_with_replacement

from fairspec.plan.graph import RunPlan
from fairspec.plan.kinds import settings_of
from fairspec.plan.stage_settings import ReviewScoring, ReviewSettings, TeachSettings
from fairspec.review import ReviewPolicy
from fairspec.review.policy import policy_from
from fairspec.store.teacher_requests import reviewers_of

#: Score sequences enumerated per reviewer position before the analysis stays conservative.
MAX_PREFIXES = 20_000


def review_reach(policy: ReviewPolicy, reviewers: int, scoring: str = "text"
                 ) -> list[tuple[bool, bool]]:
    """For each position of a rationale's ``reviewers`` (asked in order, with early exit):
    (always asked, may be asked).

    "Always" is exact: the review at position i is skipped for some scores iff some
    i scores already decide, and a decided set of scores stays decided when its valid
    scores are lowered (a rejection) or raised (an acceptance), so the all-lowest and
    all-highest prefixes with each number of invalid (None) scores are the ones to try.
    "May" enumerates every prefix of text scores (integers in the range, or None); with
    real-valued scores (``scoring: logprobs``), or too many prefixes, a position is taken
    as possibly asked whenever any review is, which keeps the upper bound true.
    """
    low, high = policy.score_range
    reach = []
    for i in range(reviewers):
        pending = reviewers - i
        always = all(policy.decision([value] * (i - nones) + [None] * nones, pending) is None
                     for nones in range(i + 1) for value in (low, high))
        values: list[int | None] = [None, *range(low, high + 1)]
        if always:
            maybe = True
        elif scoring == "text" and math.comb(len(values) + i - 1, i) <= MAX_PREFIXES:
            maybe = any(policy.decision(list(prefix), pending) is None
                        for prefix in combinations_with_replacement(values, i))
        else:
            maybe = policy.decision([], reviewers) is None
        reach.append((always, maybe))
    return reach


def review_order(run: RunPlan) -> dict[str, list[str]]:
    """author -> its reviewers, in the order the review stage asks them (by name)."""
    if not settings_of(run.stage("review"), ReviewSettings).enabled:
        return {}
    authors = sorted(t.name for t in settings_of(run.stage("teach"), TeachSettings).teachers)
    return {a: reviewers_of(run.stage("review").settings, a) for a in authors}


def review_reach_of(run: RunPlan) -> dict[str, list[tuple[bool, bool]]]:
    """author -> (always, may) per reviewer position, for this run's review stage."""
    review = settings_of(run.stage("review"), ReviewSettings)
    order = review_order(run)
    if not order:
        return {}
    if not review.early_exit:  # every reviewer is asked: N(N-1) exactly
        return {a: [(True, True)] * len(reviewers) for a, reviewers in order.items()}
    policy = policy_from(run.stage("review").settings)
    scoring = (review.scoring or ReviewScoring()).method
    return {a: review_reach(policy, len(reviewers), scoring) for a, reviewers in order.items()}
