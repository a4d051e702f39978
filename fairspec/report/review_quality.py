"""The report's section on whether peer review is worth its calls: how far the reviewers agree
(Krippendorff's alpha, pairwise Spearman) and how each one's scores fare against the gold
answer (``review.gold_check``), from the run's ``reviews.jsonl`` rows."""

from __future__ import annotations

from typing import Any

from fairspec.report.collect import RunSummary
from fairspec.report.document import Document, Heading, Table, Text
from fairspec.review.agreement import (
    Alpha,
    Correlation,
    ReviewerQuality,
    krippendorff_alpha,
    pairwise_spearman,
    reviewer_quality,
)

HEADING = "Reviewers: agreement and against the gold answer"
#: without the gold check there is only the agreement to show
HEADING_NO_GOLD = "Reviewers: agreement"
INSTALL = "pip install 'fairspec[stats]'"


def add_review_quality(doc: Document, run: RunSummary) -> None:
    """The section, for a run whose review was on; nothing for one without review."""
    if not run.review or not run.review.get("enabled"):
        return
    rows = run.reviews
    gold_known = any(row.get("reaches_gold") is not None for row in rows)
    doc.add(Heading(HEADING if gold_known else HEADING_NO_GOLD))
    if not any(row.get("score") is not None for row in rows):
        doc.add(Text("No review has a valid score: there is nothing to measure."))
        return
    settings = run.settings or {}
    threshold = settings.get("review.threshold")
    threshold = threshold if isinstance(threshold, int | float) \
        and not isinstance(threshold, bool) else None
    accept = settings.get("review.accept") or ">="
    per_reviewer = reviewer_quality(rows, threshold=threshold, accept=accept)
    if len(run.rounds) > 1:
        doc.add(Text("From round 1's reviews."))
    try:
        alpha, pairs = krippendorff_alpha(rows), pairwise_spearman(rows)
    except ImportError:
        alpha, pairs = None, None
    if alpha is None or pairs is None:
        doc.add(Text("Agreement between reviewers (Krippendorff's alpha, Spearman's rho) "
                     f"needs scipy and krippendorff: {INSTALL}."))
    else:
        doc.add(Text(_alpha_text(alpha)))
        _spearman(doc, pairs)
    if gold_known:
        _against_gold(doc, per_reviewer, threshold, accept)
    else:
        doc.add(Table(["reviewer", "reviews", "valid scores", "mean score"],
                      [[q.reviewer, q.reviews, q.valid, _num(q.mean)] for q in per_reviewer],
                      "Per reviewer"))
        doc.add(Text("The gold check was off (review.gold_check: off), so the reviewers' "
                     "scores are not compared with the gold answer; review.gold_check: report "
                     "records whether each rationale reaches it without changing what is "
                     "accepted."))


def _alpha_text(alpha: Alpha) -> str:
    where = (f"over the {alpha.pairable} rationales with two or more valid scores "
             f"({alpha.scores} scores; {alpha.units} rationales have at least one)")
    if alpha.value is None:
        return f"Krippendorff's alpha (ordinal) cannot be computed {where}: {alpha.reason}."
    single = alpha.units - alpha.pairable
    return (f"Krippendorff's alpha (ordinal) {where}: {alpha.value:.3f}. 1 is perfect "
            "agreement, 0 agreement by chance, below 0 systematic disagreement; Krippendorff "
            "(2011) relies on alpha >= 0.800 and draws tentative conclusions from >= 0.667."
            + (f" {'1 rationale' if single == 1 else f'{single} rationales'} with a single "
               f"valid score (early exit stopped asking, or a review had no score) "
               f"{'is' if single == 1 else 'are'} not in it: with early exit, alpha reads the "
               "rationales whose verdict was still open after the first reviews."
               if single else ""))


def _spearman(doc: Document, pairs: list[Correlation]) -> None:
    if not pairs:
        doc.add(Text("One reviewer only: there is no pair of reviewers to correlate."))
        return
    doc.add(Table(["reviewers", "rationales both scored", "Spearman rho", "p", "note"],
                  [[f"{c.first} / {c.second}", c.n, _num(c.rho, 3), _num(c.p, 3), c.reason]
                   for c in pairs],
                  "Spearman's rank correlation of each pair of reviewers' scores over the "
                  "rationales both scored: 1 same ranking, -1 reversed, 0 unrelated"))


def _against_gold(doc: Document, per_reviewer: list[ReviewerQuality], threshold: float | None,
                  accept: str) -> None:
    rule = f"score {accept} {threshold:g}" if threshold is not None else None
    rows: list[list[Any]] = [
        [q.reviewer, q.reviews, q.valid, _mean_of(q.mean_gold, q.gold),
         _mean_of(q.mean_not_gold, q.not_gold), _share(q.kept_wrong, q.not_gold),
         _share(q.dropped_right, q.gold), _num(q.auroc, 3)]
        for q in per_reviewer]
    doc.add(Table(
        ["reviewer", "reviews", "valid scores", "mean score, gold (n)",
         "mean score, not gold (n)", "alone would keep wrong", "alone would drop right", "AUROC"],
        rows,
        "gold: the rationale reaches the gold answer. Over the rationales each reviewer scored: "
        + (f"alone would keep wrong: the not-gold ones its score alone accepts ({rule}); "
           "alone would drop right: the gold ones it alone rejects; "
           if rule else "the review threshold is not recorded in this run's run.json, so "
           "what each reviewer alone would keep is not shown; ")
        + "AUROC: the chance it scores a gold rationale above a not-gold one (ties half), "
          "1 perfect, 0.5 chance"))


def _num(value: float | None, places: int = 2) -> str | None:
    return None if value is None else f"{value:.{places}f}"


def _mean_of(mean: float | None, n: int) -> str | None:
    return None if mean is None else f"{mean:.2f} ({n})"


def _share(count: int | None, of: int) -> str | None:
    if count is None or not of:
        return None
    return f"{count} / {of} ({100 * count / of:.2f}%)"
