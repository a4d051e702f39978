"""Decides whether a rationale passes peer review from the scores its reviewers gave (eq. 4).

The paper (section 3.3, eq. 4) keeps rationale r_k when the average of the
scores the *other* teachers gave it reaches the threshold:
``Avg(Score(r_k)) >= Th`` with ``Th = 4`` (section 4.2). That is the default
here: ``ReviewPolicy()`` is ``mean >= 4`` on a 1-5 scale.

The authors' released code (``collect_teacher_res.py`` in
zhuochunli/Learn-from-Committee) instead kept ``mean > 3`` over the *valid*
scores (a parse failure was stored as 0 and, like any score outside 1-5,
left out of the mean; no valid score meant rejection). That rule is
``ReviewPolicy(accept=">", threshold=3)``; on their released SVAMP record it
reproduces every one of the 1161 keep/drop decisions, while the paper's
``>= 4`` disagrees on the 43 rationales whose two scores average exactly 3.5.

Scores are numbers or None: an int read from the text (:func:`fairspec.review.parse_score`)
or a real-valued expected score read from log-probabilities
(:mod:`fairspec.review.logprobs`; both may meet in one rationale's reviews when a
reviewer's distribution could not be read). None is a review with no valid score; it is
left out of the aggregate; fewer than ``min_valid_scores`` valid scores means
rejection. A number outside ``score_range`` is a caller's bug (the parser maps those
to None) and raises.

Early exit: reviews can be requested one at a time and stopped as soon as
the outcome cannot change. :meth:`ReviewPolicy.decision` says whether it is
already certain, exactly, for every aggregate; :meth:`ReviewPolicy.calls_needed`
says how many reviews a given order of scores needed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from fairspec.review.score import check_score_range

logger = logging.getLogger(__name__)


def reviewable(answer: Mapping[str, Any]) -> bool:
    """A teacher's answer the review sees (a row of the teach stage's outputs): answered,
    in full or cut at its token budget, and not blank."""
    return answer["status"] in ("ok", "truncated") and bool((answer["text"] or "").strip())

Accept = Literal[">=", ">"]
Aggregate = Literal["mean", "median", "min", "trimmed_mean"]

ACCEPT_OPS: tuple[str, ...] = (">=", ">")
AGGREGATES: tuple[str, ...] = ("mean", "median", "min", "trimmed_mean")


@dataclass(frozen=True, kw_only=True)
class ReviewPolicy:
    """Peer-review acceptance rule: ``aggregate(valid scores) <accept> threshold``.

    Fields (keyword-only; each is validated, ValueError names the bad field):

    - ``score_range``: ``(low, high)`` ints, low < high; a list is accepted and stored as a tuple.
    - ``threshold``: int or float within ``score_range`` (paper: 4).
    - ``accept``: ``">="`` (paper text) or ``">"`` (authors' code, with threshold 3).
    - ``aggregate``: ``"mean"`` (paper), ``"median"``, ``"min"`` or ``"trimmed_mean"``.
      An even-sized median is the mean of the two middle scores; the trimmed mean drops
      the lowest and the highest score when there are three or more, then takes the mean
      (one outlying reviewer, harsh or lenient, no longer decides alone).
    - ``min_valid_scores``: at least this many valid scores are needed to accept (>= 1).

    Aggregates are computed exactly, on fractions of the scores as written (a float as its
    shortest decimal form), so ``mean([4, 4, 5]) >= 13/3`` and ``mean([3.9, 4.1]) >= 4``
    hold with no float rounding.
    """

    score_range: tuple[int, int] = (1, 5)
    threshold: float = 4
    accept: Accept = ">="
    aggregate: Aggregate = "mean"
    min_valid_scores: int = 1

    def __post_init__(self) -> None:
        try:
            low, high = check_score_range(self.score_range)
        except ValueError as error:
            raise ValueError(f"ReviewPolicy.{error}") from None
        object.__setattr__(self, "score_range", (low, high))
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"ReviewPolicy.threshold must be a number, got {threshold!r}")
        if not low <= threshold <= high:
            raise ValueError(
                f"ReviewPolicy.threshold {threshold!r} is outside score_range [{low}, {high}]"
            )
        if self.accept not in ACCEPT_OPS:
            raise ValueError(
                f"ReviewPolicy.accept must be one of {', '.join(ACCEPT_OPS)}, got {self.accept!r}"
            )
        if self.aggregate not in AGGREGATES:
            raise ValueError(
                f"ReviewPolicy.aggregate must be one of {', '.join(AGGREGATES)}, "
                f"got {self.aggregate!r}"
            )
        count = self.min_valid_scores
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"ReviewPolicy.min_valid_scores must be an int >= 1, got {count!r}")

    def __str__(self) -> str:
        low, high = self.score_range
        return (
            f"{self.aggregate} {self.accept} {self.threshold} "
            f"(scores {low}-{high}, at least {self.min_valid_scores} valid)"
        )

    # -- scoring -----------------------------------------------------------------------------

    def valid_scores(self, scores: Sequence[float | None]) -> list[Fraction]:
        """The valid scores in ``scores`` (None dropped), as exact fractions; ValueError on
        any other bad value."""
        low, high = self.score_range
        valid: list[Fraction] = []
        for score in scores:
            if score is None:
                continue
            if isinstance(score, bool) or not isinstance(score, int | float) \
                    or not math.isfinite(score):
                raise ValueError(f"a review score must be a number or None, got {score!r}")
            if not low <= score <= high:
                raise ValueError(
                    f"review score {score!r} is outside score_range [{low}, {high}]; "
                    "an invalid review is None"
                )
            # a float as written (its shortest decimal form): 3.9 + 4.1 is exactly 8
            valid.append(Fraction(score) if isinstance(score, int) else Fraction(repr(score)))
        return valid

    def _aggregate(self, valid: Sequence[Fraction]) -> Fraction:
        if self.aggregate == "mean":
            return sum(valid, Fraction(0)) / len(valid)
        if self.aggregate == "median":
            ordered = sorted(valid)
            middle = len(ordered) // 2
            if len(ordered) % 2:
                return ordered[middle]
            return (ordered[middle - 1] + ordered[middle]) / 2
        if self.aggregate == "trimmed_mean":
            ordered = sorted(valid)
            kept = ordered[1:-1] if len(ordered) >= 3 else ordered
            return sum(kept, Fraction(0)) / len(kept)
        return min(valid)

    def aggregate_score(self, scores: Sequence[float | None]) -> float | None:
        """The aggregate of the valid scores (for records and logs), None when there are none."""
        valid = self.valid_scores(scores)
        return float(self._aggregate(valid)) if valid else None

    def _passes(self, valid: Sequence[Fraction]) -> bool:
        if len(valid) < self.min_valid_scores:
            return False
        value = self._aggregate(valid)
        return value >= self.threshold if self.accept == ">=" else value > self.threshold

    def accepts(self, scores: Sequence[float | None]) -> bool:
        """True when the rationale with these review scores is kept (eq. 4 under this policy)."""
        return self._passes(self.valid_scores(scores))

    # -- early exit --------------------------------------------------------------------------

    def decision(self, scores_so_far: Sequence[float | None], pending: int) -> bool | None:
        """The final verdict if it is already certain, else None.

        ``pending`` reviews are still to come; each may return any score in
        ``score_range`` (an integer, or any real number when read from log-probabilities)
        or None (invalid). True/False means every possible
        completion gives that verdict, so the pending reviews need not be
        requested; None means some completions accept and some reject.

        Exact because mean, median, min and the trimmed mean never decrease when a score
        is raised:
        among completions with ``k`` valid pending scores, all-low is the worst
        and all-high the best, so checking those two for each ``k`` in
        ``0..pending`` (k < pending: the rest came back None) covers every case,
        real-valued ones included (low and high are themselves possible scores).
        """
        if isinstance(pending, bool) or not isinstance(pending, int) or pending < 0:
            raise ValueError(f"pending must be an int >= 0, got {pending!r}")
        valid = self.valid_scores(scores_so_far)
        low, high = self.score_range
        worst, best = Fraction(low), Fraction(high)
        certain_accept = all(self._passes(valid + [worst] * k) for k in range(pending + 1))
        if certain_accept:
            return True
        certain_reject = not any(self._passes(valid + [best] * k) for k in range(pending + 1))
        if certain_reject:
            return False
        return None

    def calls_needed(self, scores_in_order: Sequence[float | None]) -> int:
        """How many of these reviews, requested one at a time in this order, were needed.

        ``scores_in_order`` is every reviewer's score (None: invalid) in the
        order they would be asked. Returns the smallest ``i`` such that
        :meth:`decision` on the first ``i`` scores, with the rest pending, is
        certain; the saving is ``len(scores_in_order) - calls_needed(...)``.
        The verdict after ``i`` calls always equals ``accepts(scores_in_order)``.
        It can be 0, when the verdict is certain before any review (e.g.
        ``min_valid_scores`` is more than the number of reviewers).
        """
        total = len(scores_in_order)
        self.valid_scores(scores_in_order)  # reject bad values before counting
        for asked in range(total + 1):
            if self.decision(scores_in_order[:asked], total - asked) is not None:
                return asked
        raise AssertionError("unreachable: with nothing pending the decision is certain")


def policy_from(settings: Mapping[str, Any]) -> ReviewPolicy:
    """The policy of a review stage's settings (their ``policy`` block, as the plan compiled
    it; its ``exclude_self`` says who reviews, not how scores decide)."""
    p = settings["policy"]
    return ReviewPolicy(score_range=tuple(p["score_range"]), threshold=p["threshold"],
                        accept=p["accept"], aggregate=p["aggregate"],
                        min_valid_scores=p["min_valid_scores"])
