"""A run's committee as its compiled teach and review stages hold it: who writes, who reviews
whose rationales, and every model the run calls, for the estimate and the plan's printout."""

from __future__ import annotations

from dataclasses import dataclass

from fairspec.plan.graph import RunPlan
from fairspec.plan.kinds import settings_of
from fairspec.plan.stage_settings import ReviewSettings, TeacherSettings, TeachSettings


@dataclass(frozen=True)
class Committee:
    """``teachers``: the authors, in the spec's order; ``callers``: every model the run calls,
    the teachers then the jurors (in the order the spec declares them); ``reviewers``: who
    reviews, by name (none with review off); ``jury``: the members of ``review.jury``, in
    its order (none without a jury)."""

    teachers: tuple[TeacherSettings, ...]
    callers: tuple[TeacherSettings, ...]
    reviewers: tuple[str, ...]
    jury: tuple[str, ...]
    review: ReviewSettings

    @classmethod
    def of(cls, run: RunPlan) -> Committee:
        """The committee of ``run``'s first round (every round asks the same one)."""
        teach = settings_of(run.stage("teach"), TeachSettings)
        review = settings_of(run.stage("review"), ReviewSettings)
        reviewing = review.teachers if review.enabled and review.teachers else ()
        authors = {t.name for t in teach.teachers}
        jurors = {t.name: t for t in reviewing if t.name not in authors}
        order = [name for name in run.callers if name in jurors] + sorted(jurors)
        return cls(teachers=teach.teachers,
                   callers=teach.teachers + tuple(jurors[name] for name in dict.fromkeys(order)),
                   reviewers=tuple(t.name for t in reviewing), jury=run.jury, review=review)

    @property
    def exclude_self(self) -> bool:
        return self.review.policy is not None and self.review.policy.exclude_self

    def reviewed(self) -> dict[str, list[str]]:
        """Each caller -> the teachers whose rationales it reviews (none when review is off
        or it is not a reviewer)."""
        reviewers = set(self.reviewers)
        return {c.name: [a.name for a in self.teachers if c.name in reviewers
                         and not (self.exclude_self and a.name == c.name)]
                for c in self.callers}
