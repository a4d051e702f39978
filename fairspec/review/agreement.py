"""Whether the committee's reviews are worth their calls: agreement between reviewers and each
reviewer against the gold answer, computed from the review stage's rows (``reviews.jsonl``).

Pure functions over those rows (dicts with ``index``, ``author``, ``reviewer``, ``score``
and ``reaches_gold``); no I/O. A *rationale* (a unit, in Krippendorff's words) is one
``(index, author)``; its reviewers are whoever scored it, teachers or jurors who teach
nothing (``review.jury``): reviewers are never assumed to be the authors. A review with no
valid score (``score`` None) is a hole, as is a reviewer early exit never asked.

- :func:`krippendorff_alpha`: the committee's agreement, ordinal level (Krippendorff 2011,
  "Computing Krippendorff's Alpha-Reliability", Departmental Papers (ASC), University of
  Pennsylvania), over the rationales with two or more valid scores.
- :func:`pairwise_spearman`: Spearman's rank correlation between each pair of reviewers over
  the rationales both scored (Spearman 1904, "The proof and measurement of association
  between two things").
- :func:`reviewer_quality`: per reviewer, its scores against the gold answer: mean scores,
  what it alone would keep that is wrong and drop that is right, and the AUROC of its score.

scipy and krippendorff (``pip install 'fairspec[stats]'``) are imported inside the functions
that need them, so importing this module needs neither; :func:`reviewer_quality` needs none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

#: A rationale: (question index, author).
Unit = tuple[int, str]

#: Above this many cells (units x values x values) the krippendorff package's dense
#: coincidence tensor is too big (real-valued expected scores from log-probabilities make
#: nearly every score its own value); alpha is then computed by the same formulas in O(n).
_DENSE_CELLS = 20_000_000


def score_table(rows: Iterable[Mapping[str, Any]]) -> dict[Unit, dict[str, float]]:
    """Each rationale's valid scores by reviewer: ``{(index, author): {reviewer: score}}``.

    A review with no valid score is left out (a hole). Should a reviewer have scored one
    rationale more than once, it counts once, with the mean of its valid scores."""
    sums: dict[Unit, dict[str, list[float]]] = defaultdict(dict)
    for row in rows:
        score = row.get("score")
        if score is None:
            continue
        cell = sums[(row["index"], row["author"])].setdefault(row["reviewer"], [0.0, 0])
        cell[0] += float(score)
        cell[1] += 1
    return {unit: {reviewer: total / count for reviewer, (total, count) in scores.items()}
            for unit, scores in sums.items()}


def gold_of(rows: Iterable[Mapping[str, Any]]) -> dict[Unit, bool]:
    """Whether each rationale reaches the gold answer, where known (``review.gold_check`` on)."""
    return {(row["index"], row["author"]): bool(row["reaches_gold"])
            for row in rows if row.get("reaches_gold") is not None}


# -- agreement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alpha:
    """Krippendorff's alpha over the committee's scores.

    ``value``: 1 - D_o / D_e, the observed disagreement between scores of the same rationale
    over the disagreement expected by chance (from every pairable score), with the ordinal
    distance (scores compared by rank, not by size). 1: perfect agreement; 0: no better than
    chance; below 0: systematic disagreement. Krippendorff (2011) suggests relying on data
    with alpha >= 0.8 and drawing tentative conclusions only from alpha >= 0.667.
    None, with ``reason``, when it cannot be computed.

    ``units``: rationales with at least one valid score; ``pairable``: those with two or more,
    the only ones alpha reads (early exit and invalid scores leave the rest with one score);
    ``scores``: the valid scores in the pairable rationales (Krippendorff's n)."""

    value: float | None
    units: int
    pairable: int
    scores: int
    reason: str | None = None


def krippendorff_alpha(rows: Iterable[Mapping[str, Any]]) -> Alpha:
    """Krippendorff's alpha, ordinal level, over rationales x reviewers (Krippendorff 2011,
    "Computing Krippendorff's Alpha-Reliability"), missing where a reviewer gave no valid
    score or was not asked. Computed by the ``krippendorff`` package (imported here);
    ImportError without it. None (with a reason) with fewer than 2 pairable rationales or
    when every pairable score is the same (no variation: D_e is 0)."""
    table = score_table(rows)
    pairable = {unit: scores for unit, scores in table.items() if len(scores) >= 2}
    values = [score for scores in pairable.values() for score in scores.values()]
    found = {"units": len(table), "pairable": len(pairable), "scores": len(values)}
    if len(pairable) < 2:
        return Alpha(None, **found, reason=f"{len(pairable)} rationale(s) have two or more "
                     "valid scores; alpha needs at least 2")
    domain = sorted(set(values))
    if len(domain) < 2:
        return Alpha(None, **found, reason=f"no variation: every pairable score is {domain[0]:g}")
    import krippendorff
    import numpy as np

    if len(pairable) * len(domain) ** 2 > _DENSE_CELLS:
        return Alpha(_ordinal_alpha(list(pairable.values())), **found)
    reviewers = sorted({r for scores in pairable.values() for r in scores})
    data = np.array([[scores.get(r, np.nan) for scores in pairable.values()] for r in reviewers],
                    dtype=float)
    value = krippendorff.alpha(reliability_data=data, value_domain=domain,
                               level_of_measurement="ordinal")
    return Alpha(float(value), **found)


def _ordinal_alpha(units: Sequence[Mapping[str, float]]) -> float:
    """Ordinal alpha in O(n) (each unit with >= 2 values, at least two distinct values in all).

    Krippendorff's ordinal distance between values c <= k is
    ``(sum_{g=c..k} n_g - (n_c + n_k) / 2) ** 2`` (2011, section C), which is
    ``(a_k - a_c) ** 2`` with ``a_g`` the mid-rank of value g among the n pairable values:
    ordinal alpha is interval alpha on mid-ranks. Then
    ``D_o = sum_u sum_{i != j in u} (a_i - a_j)^2 / (m_u - 1) / n`` and
    ``D_e = sum_{i != j} (a_i - a_j)^2 / (n (n - 1))`` over all pairable values."""
    import numpy as np
    from scipy.stats import rankdata

    sizes = [len(u) for u in units]
    ranks = rankdata(np.array([v for u in units for v in u.values()], dtype=float))
    n = len(ranks)
    observed, start = 0.0, 0
    for m in sizes:
        a = ranks[start:start + m]
        start += m
        # sum over ordered pairs i != j of (a_i - a_j)^2 = 2 (m sum a^2 - (sum a)^2)
        observed += 2 * (m * float(a @ a) - float(a.sum()) ** 2) / (m - 1)
    expected = 2 * (n * float(ranks @ ranks) - float(ranks.sum()) ** 2) / (n - 1)
    return 1 - observed / expected


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho between two reviewers' scores over the rationales both scored (``n``):
    1 when they rank those rationales the same way, -1 when in reverse order, 0 when their
    rankings are unrelated; ties take mid-ranks. ``p``: the two-sided p-value of rho = 0
    (scipy's t approximation; rough for small n). None, with ``reason``, when n < 3 or one of
    the two gave every shared rationale the same score."""

    first: str
    second: str
    n: int
    rho: float | None
    p: float | None = None
    reason: str | None = None


def pairwise_spearman(rows: Iterable[Mapping[str, Any]]) -> list[Correlation]:
    """Spearman's rank correlation (Spearman 1904) for each pair of reviewers, by name, over
    the rationales both gave a valid score (``scipy.stats.spearmanr``, imported here)."""
    from scipy.stats import spearmanr

    table = score_table(rows)
    reviewers = sorted({r for scores in table.values() for r in scores})
    out = []
    for first, second in combinations(reviewers, 2):
        pairs = [(s[first], s[second]) for s in table.values() if first in s and second in s]
        if len(pairs) < 3:
            out.append(Correlation(first, second, len(pairs), None,
                                   reason="fewer than 3 rationales scored by both"))
            continue
        x, y = zip(*pairs, strict=True)
        constant = [name for name, col in ((first, x), (second, y)) if len(set(col)) == 1]
        if constant:
            out.append(Correlation(first, second, len(pairs), None,
                                   reason=f"{constant[0]} gave every one of them the same score"))
            continue
        rho, p = spearmanr(x, y)
        out.append(Correlation(first, second, len(pairs), float(rho), float(p)))
    return out


# -- against the gold answer ----------------------------------------------------------------


@dataclass(frozen=True)
class ReviewerQuality:
    """One reviewer's reviews, and its valid scores against the gold answer.

    ``reviews``: the reviews it wrote; ``valid``: those with a valid score; ``mean``: its mean
    valid score (one per rationale). The rest count the rationales it gave a valid score whose
    gold verdict is known: ``gold`` reach the gold answer, ``not_gold`` do not;
    ``mean_gold`` / ``mean_not_gold``: its mean score on each.
    ``kept_wrong``: the not-gold rationales its score alone would accept
    (``score <accept> threshold``); ``dropped_right``: the gold ones it alone would reject.
    None where the threshold is unknown. ``auroc``: the probability that it scores a random
    gold rationale above a random not-gold one, ties counting one half (the Mann-Whitney U
    over ``gold * not_gold``): 1 separates them perfectly, 0.5 is chance, below 0.5 is
    backwards; None unless both kinds are present."""

    reviewer: str
    reviews: int
    valid: int
    mean: float | None = None
    gold: int = 0
    not_gold: int = 0
    mean_gold: float | None = None
    mean_not_gold: float | None = None
    kept_wrong: int | None = None
    dropped_right: int | None = None
    auroc: float | None = None

    @property
    def kept_wrong_rate(self) -> float | None:
        """The share of the not-gold rationales it would accept."""
        return None if self.kept_wrong is None or not self.not_gold \
            else self.kept_wrong / self.not_gold

    @property
    def dropped_right_rate(self) -> float | None:
        """The share of the gold rationales it would reject."""
        return None if self.dropped_right is None or not self.gold \
            else self.dropped_right / self.gold


def passes(score: float, threshold: float, accept: str = ">=") -> bool:
    """Whether one score alone meets the review policy's threshold (``accept``: ">=" or ">")."""
    if accept not in (">=", ">"):
        raise ValueError(f"accept must be '>=' or '>', got {accept!r}")
    return score >= threshold if accept == ">=" else score > threshold


def reviewer_quality(rows: Iterable[Mapping[str, Any]], *, threshold: float | None,
                     accept: str = ">=") -> list[ReviewerQuality]:
    """Per reviewer, by name: its reviews, valid scores, and its scores against the gold answer
    (see :class:`ReviewerQuality`). ``threshold`` and ``accept``: the run's policy
    (``review.threshold``, ``review.accept``); None: the keep/drop counts are None.
    Early exit asks a rationale's later reviewers only while the verdict is open, so a
    reviewer late in the order sees a harder mix than one asked first."""
    rows = list(rows)
    table, gold = score_table(rows), gold_of(rows)
    made: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        made[row["reviewer"]][0] += 1
        made[row["reviewer"]][1] += row.get("score") is not None
    out = []
    for reviewer in sorted(made):
        given = [s[reviewer] for s in table.values() if reviewer in s]
        right = [s[reviewer] for u, s in table.items() if reviewer in s and gold.get(u) is True]
        wrong = [s[reviewer] for u, s in table.items() if reviewer in s and gold.get(u) is False]
        known = threshold is not None
        out.append(ReviewerQuality(
            reviewer, *made[reviewer], mean=_mean(given), gold=len(right), not_gold=len(wrong),
            mean_gold=_mean(right), mean_not_gold=_mean(wrong),
            kept_wrong=sum(passes(s, threshold, accept) for s in wrong) if known else None,
            dropped_right=sum(not passes(s, threshold, accept) for s in right) if known else None,
            auroc=auroc(right, wrong)))
    return out


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """The area under the ROC curve of a score separating ``positive`` from ``negative``:
    P(a positive scores above a negative) + P(tie) / 2, i.e. the Mann-Whitney U statistic of
    the positives over ``len(positive) * len(negative)``, from mid-ranks of the pooled scores
    (ties handled). None unless both are non-empty."""
    if not positive or not negative:
        return None
    pooled = sorted([(float(s), True) for s in positive] + [(float(s), False) for s in negative])
    rank_sum, i = 0.0, 0
    while i < len(pooled):
        j = i
        while j < len(pooled) and pooled[j][0] == pooled[i][0]:
            j += 1
        mid = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += mid * sum(1 for _, pos in pooled[i:j] if pos)
        i = j
    n1, n2 = len(positive), len(negative)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n2)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None
