"""Agreement between reviewers (Krippendorff's alpha, pairwise Spearman) and each reviewer
against the gold answer, from the review stage's rows: hand-computed and published cases."""

from __future__ import annotations

import math
import random

import pytest

from fairspec.review import agreement
from fairspec.review.agreement import (
    auroc,
    krippendorff_alpha,
    pairwise_spearman,
    reviewer_quality,
    score_table,
)

NAN = None  # a hole: no valid score


def rows_from(matrix: dict[str, list[float | None]], *, author: str = "gpt",
              gold: list[bool | None] | None = None) -> list[dict]:
    """reviews.jsonl rows from reviewer -> one score per rationale (index = position; None: a
    review without a valid score; ``gold``: each rationale's reaches_gold)."""
    return [{"index": i, "author": author, "reviewer": reviewer, "text": "...", "status": "ok",
             "score": score, "key": f"{reviewer}-{i}",
             "reaches_gold": None if gold is None else gold[i]}
            for reviewer, scores in matrix.items() for i, score in enumerate(scores)]


def without_holes(rows: list[dict]) -> list[dict]:
    """The rows early exit would have written: a reviewer not asked writes no row at all."""
    return [r for r in rows if r["score"] is not None]


#: Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
#: 12 units, values 1-5; published alpha: nominal 0.743, ordinal 0.815, interval 0.849.
PAPER = {"A": [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
         "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
         "C": [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
         "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN]}


# -- Krippendorff's alpha -------------------------------------------------------------------


def test_alpha_reproduces_krippendorffs_published_ordinal_example():
    alpha = krippendorff_alpha(without_holes(rows_from(PAPER)))
    assert round(alpha.value, 3) == 0.815
    # unit 12 has one value (B's 3): not pairable; n = 40 pairable values, as in the paper
    assert (alpha.units, alpha.pairable, alpha.scores) == (12, 11, 40)


def test_invalid_scores_are_holes_like_reviewers_never_asked():
    with_holes = krippendorff_alpha(rows_from(PAPER))
    assert with_holes == krippendorff_alpha(without_holes(rows_from(PAPER)))


def test_the_linear_time_path_gives_the_packages_alpha(monkeypatch):
    """Many distinct (real-valued) scores take the O(n) mid-rank formulas; they agree with the
    krippendorff package on the paper's example and on real-valued scores."""
    rng = random.Random(7)
    real = {f"r{j}": [round(rng.uniform(1, 5), 3) if rng.random() < 0.8 else None
                      for _ in range(60)] for j in range(4)}
    for matrix in (PAPER, real):
        rows = without_holes(rows_from(matrix))
        dense = krippendorff_alpha(rows)
        monkeypatch.setattr(agreement, "_DENSE_CELLS", 0)
        linear = krippendorff_alpha(rows)
        monkeypatch.undo()
        assert linear.value == pytest.approx(dense.value, abs=1e-12)
    assert round(krippendorff_alpha(without_holes(rows_from(PAPER))).value, 3) == 0.815


def test_alpha_of_a_small_example_computed_by_hand():
    # units (1,1), (2,2), (1,2): n_1 = n_2 = 3, n = 6, o_12 = o_21 = 1, delta^2_12 = 3^2 = 9
    # alpha = 1 - (n-1) * (o_12 + o_21) * 9 / (2 * n_1 * n_2 * 9) = 1 - 5 * 2 / 18 = 4/9
    alpha = krippendorff_alpha(rows_from({"a": [1, 2, 1], "b": [1, 2, 2]}))
    assert alpha.value == pytest.approx(4 / 9)


def test_perfect_agreement_is_one():
    alpha = krippendorff_alpha(rows_from({"a": [1, 3, 5, 2], "judge": [1, 3, 5, 2],
                                          "b": [1, NAN, 5, 2]}))
    assert alpha.value == pytest.approx(1.0)
    assert (alpha.units, alpha.pairable) == (4, 4)


def test_reversed_scores_disagree_systematically():
    assert krippendorff_alpha(rows_from({"a": [1, 2, 4, 5], "b": [5, 4, 2, 1]})).value < 0


def test_alpha_needs_two_pairable_rationales():
    # early exit asked the second reviewer once: one pairable rationale
    alpha = krippendorff_alpha(rows_from({"a": [1, 2, 3], "b": [2, NAN, NAN]}))
    assert alpha.value is None and (alpha.units, alpha.pairable) == (3, 1)
    assert "1 rationale(s) have two or more valid scores" in alpha.reason


def test_alpha_without_variation_is_none_with_the_reason():
    alpha = krippendorff_alpha(rows_from({"a": [4, 4, 4], "b": [4, 4, NAN]}))
    assert alpha.value is None and alpha.reason == "no variation: every pairable score is 4"


def test_rationales_are_index_and_author_and_reviewers_need_not_be_authors():
    rows = rows_from({"judge": [5, 1], "gemini": [5, 1]}, author="gpt") \
        + rows_from({"judge": [1, 5], "gpt": [1, 5]}, author="gemini")
    assert set(score_table(rows)) == {(0, "gpt"), (1, "gpt"), (0, "gemini"), (1, "gemini")}
    alpha = krippendorff_alpha(rows)
    assert alpha.value == pytest.approx(1.0) and alpha.pairable == 4


# -- Spearman -------------------------------------------------------------------------------


def test_spearman_of_reversed_rankings_is_minus_one_and_of_equal_ones_one():
    found = pairwise_spearman(rows_from({"a": [1, 2, 3, 4], "b": [4, 3, 2, 1],
                                         "c": [2, 3, 4, 5]}))
    rho = {(c.first, c.second): c.rho for c in found}
    assert rho[("a", "b")] == pytest.approx(-1.0)
    assert rho[("a", "c")] == pytest.approx(1.0)
    assert rho[("b", "c")] == pytest.approx(-1.0)


def test_spearman_reads_only_the_rationales_both_scored():
    # shared: rationales 0, 1, 3: a = (1, 2, 3), b = (5, 3, 4): ranks (1,2,3) vs (3,1,2):
    # d^2 = 4 + 1 + 1 = 6, rho = 1 - 6 * 6 / (3 * 8) = -0.5
    (c,) = pairwise_spearman(rows_from({"a": [1, 2, 5, 3], "b": [5, 3, NAN, 4]}))
    assert c.n == 3 and c.rho == pytest.approx(-0.5)


def test_spearman_is_none_for_fewer_than_three_or_a_constant_reviewer():
    (few,) = pairwise_spearman(rows_from({"a": [1, 2, 3], "b": [1, NAN, 3]}))
    assert few.rho is None and few.n == 2 and "fewer than 3" in few.reason
    (flat,) = pairwise_spearman(rows_from({"a": [1, 2, 3], "b": [4, 4, 4]}))
    assert flat.rho is None and flat.reason == "b gave every one of them the same score"


# -- against the gold answer ----------------------------------------------------------------


def test_each_reviewer_alone_keeps_wrong_and_drops_right_against_the_threshold():
    gold = [True, True, True, False, False]
    rows = rows_from({"lenient": [5, 4, 3, 4, 5], "strict": [4, 3, NAN, 3, 1]}, gold=gold)
    by = {q.reviewer: q for q in reviewer_quality(rows, threshold=4, accept=">=")}
    lenient, strict = by["lenient"], by["strict"]
    assert (lenient.reviews, lenient.valid, lenient.gold, lenient.not_gold) == (5, 5, 3, 2)
    assert lenient.kept_wrong == 2 and lenient.kept_wrong_rate == 1.0   # 4 and 5 pass
    assert lenient.dropped_right == 1 and lenient.dropped_right_rate == pytest.approx(1 / 3)
    assert lenient.mean_gold == pytest.approx(4.0) and lenient.mean_not_gold == pytest.approx(4.5)
    assert (strict.reviews, strict.valid, strict.gold, strict.not_gold) == (5, 4, 2, 2)
    assert strict.kept_wrong == 0 and strict.dropped_right == 1  # its 3 on a gold one
    assert strict.mean == pytest.approx(11 / 4)
    # the authors' rule, mean > 3: a 4 still passes, a 3 no longer
    by = {q.reviewer: q for q in reviewer_quality(rows, threshold=4, accept=">")}
    assert by["lenient"].kept_wrong == 1 and by["lenient"].dropped_right == 2


def test_without_a_threshold_or_gold_the_counts_are_none():
    rows = rows_from({"a": [5, 1]}, gold=[True, False])
    (q,) = reviewer_quality(rows, threshold=None)
    assert q.kept_wrong is None and q.kept_wrong_rate is None and q.auroc == 1.0
    (q,) = reviewer_quality(rows_from({"a": [5, 1]}), threshold=4)
    assert (q.gold, q.not_gold, q.auroc, q.mean_gold) == (0, 0, None, None)
    assert q.kept_wrong == 0 and q.kept_wrong_rate is None


def test_auroc_perfect_chance_backwards_and_ties():
    assert auroc([4, 5], [1, 2, 3]) == 1.0
    assert auroc([1, 2], [4, 5]) == 0.0
    assert auroc([3, 3], [3, 3, 3]) == 0.5  # every pair tied: one half each
    assert auroc([5, 1], [3]) == 0.5
    assert auroc([4, 3], [3]) == 0.75  # 4 > 3 counts 1, the tie 3 = 3 counts 1/2
    assert auroc([], [1]) is None and auroc([1], []) is None


def test_auroc_is_mann_whitney_u_over_the_pairs():
    from scipy.stats import mannwhitneyu

    rng = random.Random(3)
    positive = [rng.choice([1, 2, 3, 4, 5]) for _ in range(40)]
    negative = [rng.choice([1, 2, 2, 3, 4]) for _ in range(30)]
    u = mannwhitneyu(positive, negative).statistic
    assert auroc(positive, negative) == pytest.approx(u / (40 * 30))
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    assert math.isclose(auroc(positive, negative), pairs / (40 * 30))
