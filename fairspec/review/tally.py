"""The review stage's counts, kept as its rows go by: stats.json (Table 4 counts, the
reviewer x author mean-score matrix, invalid scores, early-exit savings) without holding
the rows."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

#: How a review's score was read (``scored_by`` in reviews.jsonl, with scoring: logprobs).
SCORED_BY = ("logprobs", "logprobs-forced", "text")


class Tally:
    """The review's counts, kept as rows go by (stats.json without holding the rows)."""

    def __init__(self) -> None:
        self.rationales: Counter[str] = Counter()
        self.reviewable: Counter[str] = Counter()  # per author
        self.accepted: Counter[str] = Counter()
        self.reviews = 0
        self.saved = 0
        self.invalid = 0
        self.failed = 0
        self.histogram: Counter[int] = Counter()
        self.sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        self.reviewers: set[str] = set()
        self.scored_by: Counter[str | None] = Counter()
        # gold check: per author, (reaches gold, accepted) -> rationales; dropped unreviewed
        self.gold: Counter[tuple[str, bool, bool]] = Counter()
        self.dropped: Counter[str] = Counter()  # per author

    def review(self, row: dict[str, Any]) -> None:
        self.reviews += 1
        self.reviewers.add(row["reviewer"])
        self.failed += row["status"] == "error"
        self.scored_by[row.get("scored_by")] += 1
        score = row["score"]
        if score is None:
            self.invalid += 1
            return
        self.histogram[int(score + 0.5)] += 1  # scores are >= 0: round half up
        cell = self.sums[(row["reviewer"], row["author"])]
        cell[0] += score
        cell[1] += 1

    def decided(self, author: str, reaches_gold: bool | None, accepted: bool) -> None:
        """One rationale's outcome against the gold check (nothing when the check is off)."""
        if reaches_gold is not None:
            self.gold[(author, reaches_gold, accepted)] += 1

    def drop_for_gold(self, author: str) -> None:
        """A rationale of ``author`` the gold check drops before any review."""
        self.dropped[author] += 1
        self.decided(author, False, False)

    def gold_stats(self) -> dict[str, Any]:
        """Rationales that reach the gold answer or not, accepted or not, per author."""
        authors = sorted(self.rationales)
        per = {a: {f"{'gold' if g else 'not_gold'}_{'accepted' if k else 'rejected'}":
                   self.gold[(a, g, k)] for g in (True, False) for k in (True, False)}
               for a in authors}
        total = {cell: sum(row[cell] for row in per.values())
                 for cell in ("gold_accepted", "gold_rejected", "not_gold_accepted",
                              "not_gold_rejected")}
        return {"gold_check": {"per_teacher": per, "total": total,
                               "dropped_before_review": sum(self.dropped.values())}}

    def stats(self, usage: dict[str, Any], enabled: bool) -> dict[str, Any]:
        """Table 4 counts, the reviewer x author mean-score matrix, invalid scores, savings."""
        authors = sorted(self.rationales)

        def mean(reviewer: str, author: str) -> float | None:
            total, count = self.sums.get((reviewer, author), (0.0, 0))
            return total / count if count else None

        matrix = {reviewer: {author: mean(reviewer, author) for author in authors}
                  for reviewer in sorted(self.reviewers)}
        return {
            "enabled": enabled,
            "rationales": sum(self.rationales.values()),
            "reviewable": sum(self.reviewable.values()),
            "accepted": sum(self.accepted.values()),
            "accepted_per_teacher": {a: self.accepted[a] for a in authors},
            "rationales_per_teacher": {a: self.rationales[a] for a in authors},
            "reviews_made": self.reviews,
            "reviews_saved_by_early_exit": self.saved,
            "invalid_scores": self.invalid,
            # text scores are integers; an expected score counts at its nearest integer
            "score_histogram": {str(s): self.histogram[s] for s in sorted(self.histogram)},
            "mean_score_matrix": matrix,  # reviewer -> author -> mean valid score
            "teachers": usage,
        }

    def logprob_stats(self) -> dict[str, Any]:
        """How each review was scored (the report draws the distributions from the rows)."""
        scored_by = {how: self.scored_by[how] for how in SCORED_BY}
        scored_by["none"] = self.scored_by[None]
        return {"scored_by": scored_by}
