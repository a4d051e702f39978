"""What rounds 2..count are expected to ask of the teachers (``fairspec plan``).

Round k's exam covers the train split (``rounds.exam: all``) or round k-1's mistakes;
its mistakes are measured once that exam has run, else estimated from the last measured
mistake rate (round 1's estimate before anything ran). Feedback is about the new wrong
answer, so it is always a new, paid call; a rationale (and so its reviews) depends only on
the question, so the call store answers it for free when an earlier round asked it, unless
``rounds.fresh_rationales``. With ``exam: all`` which questions repeat is known only once
the exam ran: the estimate gives the range (none to all of them paid).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fairspec.artifacts import is_done, upgrade_stats
from fairspec.plan.committee import Committee
from fairspec.plan.estimate import CallEstimate
from fairspec.plan.graph import RunPlan
from fairspec.plan.kinds import settings_of, stage_name
from fairspec.plan.stage_settings import ExamSettings, ReportSettings, TeachSettings


@dataclass(frozen=True)
class RoundEstimate:
    round: int
    questions: int | None
    mistakes: int | None
    mistakes_source: str
    #: teacher calls the round pays at most / at least, and those the store answers at most
    calls_max: int
    calls_min: int
    store_answers_max: int
    usd_max: float | None
    usd_min: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _exam_stats(run: RunPlan, round_no: int) -> dict[str, Any] | None:
    """The finished exam's stats of ``round_no`` in this run's folder (None: not run yet)."""
    stage = run.stage(stage_name("exam", round_no))
    folder = Path(run.run_dir) / stage.name
    if not is_done(folder, stage.fingerprint):
        return None
    try:
        return upgrade_stats(json.loads((folder / "stats.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):  # missing or unreadable: not measured
        return None


def _usd(first: CallEstimate, calls: dict[str, int], review_share: dict[str, float]) -> float | None:
    """Dollars of ``calls`` at round 1's prices: role -> calls per teacher over the round,
    but ``review``: the round's reviews in all, each reviewer taking its ``review_share``
    (the authors it reviews, over all reviewers': a juror reviews every teacher's)."""
    total = 0.0
    for teacher in first.teachers:
        for role, count in calls.items():
            if role == "review":
                count = count * review_share.get(teacher.name, 0.0)
            if not count or role not in teacher.roles:
                continue  # a juror writes no rationale; a teacher outside the jury reviews none
            cost = teacher.usd_per_call.get(role)
            if cost is None:
                return None
            total += cost * count
    return total


def estimate_rounds(run: RunPlan, first: CallEstimate) -> list[RoundEstimate]:
    """Rounds 2..count of ``run`` (an empty list for one round), from its compiled stages."""
    out: list[RoundEstimate] = []
    rows, mistakes = first.train_rows, first.mistakes
    rate = mistakes / rows if rows and mistakes is not None else None
    committee = Committee.of(run)
    teachers = len(committee.teachers)
    reviews_per_question = first.per_mistake["review"]
    reviewed = {name: len(authors) for name, authors in committee.reviewed().items()}
    review_share = {name: n / sum(reviewed.values()) for name, n in reviewed.items()} \
        if sum(reviewed.values()) else {}
    for k in range(2, settings_of(run.stage("report"), ReportSettings).rounds + 1):
        exam = settings_of(run.stage(stage_name("exam", k)), ExamSettings)
        fresh_rationales = settings_of(run.stage(stage_name("teach", k)),
                                       TeachSettings).rationale_sample != 0
        questions = rows if exam.covers == "all" else mistakes
        measured = _exam_stats(run, k)
        if measured is not None:
            mistakes, source = measured["mistakes"], "measured (this round's exam has run)"
            if measured.get("total"):
                rate = measured["mistakes"] / measured["total"]
        elif questions is not None and rate is not None:
            mistakes = round(questions * rate)
            source = f"estimated: {questions} questions x mistake rate {rate:.2f} (the last known)"
        else:
            mistakes, source = None, "unknown until round 1's exam has run"
        m = mistakes or 0
        feedback = m * teachers
        asked = {"rationale": m * teachers, "review": m * reviews_per_question}
        if fresh_rationales:
            paid_max = paid_min = asked
        elif exam.covers == "mistakes":  # every question was asked in the round before
            paid_max = paid_min = {"rationale": 0, "review": 0}
        else:
            paid_max, paid_min = asked, {"rationale": 0, "review": 0}
        calls_max = {"feedback": feedback // teachers, "rationale": paid_max["rationale"] // teachers,
                     "review": paid_max["review"]}
        calls_min = {"feedback": feedback // teachers, "rationale": paid_min["rationale"] // teachers,
                     "review": paid_min["review"]}
        out.append(RoundEstimate(
            round=k, questions=questions, mistakes=mistakes, mistakes_source=source,
            calls_max=feedback + sum(paid_max.values()), calls_min=feedback + sum(paid_min.values()),
            store_answers_max=sum(asked.values()) - sum(paid_min.values()),
            usd_max=_usd(first, calls_max, review_share),
            usd_min=_usd(first, calls_min, review_share)))
    return out
