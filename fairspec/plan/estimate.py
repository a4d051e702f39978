"""The plan's teacher-call arithmetic, token and cost estimate of a run.

Per mistake, each of N teachers writes one rationale and one feedback, and each
rationale is scored by the other N-1 teachers (all N without exclude_self): with
exclude_self, N + N + N(N-1) calls, 12 for the paper's three teachers; 2N without
review. The mistake count is measured when the run's exam already finished, else
estimated as train rows x --mistake-rate.

Tokens. Inputs are the real templates rendered with texts of the dataset's typical
lengths (:mod:`fairspec.plan.sizes`). Outputs per call are the priors measured on the paper
authors' released records (:mod:`fairspec.plan.priors`), capped at max_tokens; once this
run's calls are in the call store, each teacher's measured mean per role replaces them
(:mod:`fairspec.plan.measured`). Costs use each teacher's price.

The review calls are an upper bound: early exit skips some (:mod:`fairspec.plan.early_exit`
says which reviewer positions are always asked); what each variant adds to the runs above
it is :mod:`fairspec.plan.new_calls`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fairspec.plan.committee import Committee
from fairspec.plan.early_exit import review_reach_of
from fairspec.plan.graph import RunPlan
from fairspec.plan.kinds import settings_of
from fairspec.plan.measured import measured_mistakes, measured_output_tokens, recorded_mistakes
from fairspec.plan.priors import ROLES, MeasuredLength, as_json, prior_output_tokens, prior_source
from fairspec.plan.sizes import CHARS_PER_TOKEN, TaskText, count_train_rows, prompt_tokens
from fairspec.plan.stage_settings import ExamSettings, TeacherSettings, TeachSettings
from fairspec.providers.registry import provider_kind


@dataclass(frozen=True)
class TeacherEstimate:
    name: str
    rationale_calls: int
    feedback_calls: int
    review_calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None
    #: role -> {"input": tokens, "output": tokens} of one call
    per_call: dict[str, dict[str, int]] = field(default_factory=dict)
    #: role -> dollars of one call (None: no price known)
    usd_per_call: dict[str, float | None] = field(default_factory=dict)
    #: asked through the provider's batch API: ``usd`` is at batch prices, ``online_usd``
    #: what the same calls would cost online (None: not a batch teacher, or unknown)
    batch: bool = False
    online_usd: float | None = None
    #: what it is asked for: rationale and feedback (a teacher), review (a reviewer)
    roles: tuple[str, ...] = ROLES

    @property
    def calls(self) -> int:
        return self.rationale_calls + self.feedback_calls + self.review_calls


@dataclass(frozen=True)
class CallEstimate:
    """The teacher calls, tokens and cost of one run.

    ``per_mistake`` counts every call (reviews at most: early exit skips some);
    ``per_mistake_min`` counts the reviews early exit can never skip. ``output_lengths``
    says what each teacher's output tokens per call were taken to be, and from where.
    """

    run: str
    mistakes: int | None
    mistakes_source: str
    train_rows: int | None
    per_mistake: dict[str, int]
    teachers: list[TeacherEstimate] = field(default_factory=list)
    per_mistake_min: dict[str, int] = field(default_factory=dict)
    output_lengths: dict[str, Any] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.teachers)

    @property
    def usd(self) -> float | None:
        costs = [t.usd for t in self.teachers]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    def usd_of(self, calls_per_mistake: Mapping[tuple[str, str], int]) -> float | None:
        """Dollars of these calls per mistake ((teacher, role) -> count) over every mistake."""
        if self.mistakes is None:
            return None
        by_name = {t.name: t for t in self.teachers}
        total = 0.0
        for (teacher, role), count in calls_per_mistake.items():
            if not count:
                continue
            cost = by_name[teacher].usd_per_call.get(role)
            if cost is None:
                return None
            total += cost * count
        return total * self.mistakes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(calls=self.calls, usd=self.usd, assumptions={
            "chars_per_token": CHARS_PER_TOKEN,
            "output_tokens": self.output_lengths,
            "student_answer": "0.6 x exam max_new_tokens",
        })
        del data["output_lengths"]
        for teacher, obj in zip(data["teachers"], self.teachers, strict=True):
            teacher["calls"] = obj.calls
        return data


def calls_per_mistake(n_teachers: int, review_enabled: bool, exclude_self: bool,
                      reviews: int | None = None) -> dict[str, int]:
    """{"rationale": N, "feedback": N, "review": N(N-1) or N*N or 0, "total": ...};
    ``reviews``: the review calls per mistake when a jury reviews
    (:meth:`~fairspec.plan.committee.Committee.reviewed`)."""
    if not review_enabled:
        reviews = 0
    elif reviews is None:
        reviews = n_teachers * (n_teachers - 1 if exclude_self else n_teachers)
    counts = {"rationale": n_teachers, "feedback": n_teachers, "review": reviews}
    counts["total"] = sum(counts.values())
    return counts


def _mistake_count(run: RunPlan, base_dir: Path, train_rows: int | None, mistake_rate: float,
                   mistakes: int | None) -> tuple[int | None, str]:
    """The run's mistakes and where the number comes from: given, measured, listed by a
    recorded exam, or estimated from the train rows."""
    if mistakes is not None:
        return mistakes, "given"
    measured = measured_mistakes(run)
    if measured is not None:
        return measured, "measured (the exam of this run has finished)"
    listed = recorded_mistakes(run, base_dir)
    if listed is not None:
        return listed, "the recorded exam's wrong answers"
    if train_rows is not None:
        return (round(train_rows * mistake_rate),
                f"estimated: {train_rows} train rows x mistake rate {mistake_rate}")
    return None, "unknown: give --mistakes N (the train size of this hub dataset is not known)"


def _output_lengths(committee: Committee, task_kind: str,
                    measured: Mapping[str, Mapping[str, MeasuredLength]]
                    ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Each caller's output tokens per role (the prior capped at its max_tokens, or its
    measured mean), and the roles measured in the call store, by caller."""
    lengths: dict[str, dict[str, int]] = {}
    from_store: dict[str, list[str]] = {}
    for teacher in committee.callers:
        lengths[teacher.name] = prior_output_tokens(task_kind, teacher.generation["max_tokens"])
        found = measured.get(teacher.name, {})
        for role in ROLES:
            if role in found:
                lengths[teacher.name][role] = max(1, round(found[role].mean))
                from_store.setdefault(teacher.name, []).append(role)
    return lengths, from_store


def _dollars(price: Mapping[str, float], tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * price["input_per_mtok"] + tokens_out * price["output_per_mtok"]) / 1e6


@dataclass(frozen=True)
class _RunSizes:
    """What every caller's estimate of one run shares."""

    committee: Committee
    mistakes: int | None
    lengths: dict[str, dict[str, int]]  # caller -> role -> output tokens of one call
    reviewed: dict[str, list[str]]  # caller -> the authors it reviews
    rationale_input: int  # input tokens of a rationale call
    feedback_input: int  # and of a feedback call


def _per_call(text: TaskText, teacher: TeacherSettings, sizes: _RunSizes
              ) -> dict[str, dict[str, int]]:
    """role -> {"input": tokens, "output": tokens} of one of ``teacher``'s calls."""
    out = sizes.lengths[teacher.name]
    # a review reads another teacher's rationale: the mean of the authors it reviews
    authors = sizes.reviewed[teacher.name] or [a.name for a in sizes.committee.teachers]
    rationale_chars = int(sum(sizes.lengths[a]["rationale"] for a in authors) / len(authors)
                          * CHARS_PER_TOKEN)
    review = sizes.committee.review
    review_input = prompt_tokens(text, "prompts.review", review.template.ref,
                                 {"rationale": rationale_chars, "gold_answer": 4}) \
        if review.enabled and review.template is not None else 0
    return {"rationale": {"input": sizes.rationale_input, "output": out["rationale"]},
            "feedback": {"input": sizes.feedback_input, "output": out["feedback"]},
            "review": {"input": review_input, "output": out["review"]}}


def _teacher_estimate(text: TaskText, teacher: TeacherSettings, sizes: _RunSizes
                      ) -> TeacherEstimate:
    """One caller's calls, tokens and dollars over the run's mistakes."""
    per_call = _per_call(text, teacher, sizes)
    reviews_each = len(sizes.reviewed[teacher.name])
    writes = 1 if teacher.name in {t.name for t in sizes.committee.teachers} else 0  # a juror writes none
    free = not provider_kind(teacher.provider).priced  # local or already paid
    price = teacher.price  # batch prices for a batch teacher
    usd_per_call: dict[str, float | None] = {
        role: _dollars(price, tokens["input"], tokens["output"]) if price is not None
        else (0.0 if free else None)
        for role, tokens in per_call.items()}
    m = sizes.mistakes or 0
    tokens_in = m * (writes * (per_call["rationale"]["input"] + per_call["feedback"]["input"])
                     + reviews_each * per_call["review"]["input"])
    tokens_out = m * (writes * (per_call["rationale"]["output"] + per_call["feedback"]["output"])
                      + reviews_each * per_call["review"]["output"])
    usd = _dollars(price, tokens_in, tokens_out) if price is not None else (0.0 if free else None)
    online = None
    if teacher.batch and teacher.online_price is not None and sizes.mistakes is not None:
        online = _dollars(teacher.online_price, tokens_in, tokens_out)
    return TeacherEstimate(
        name=teacher.name, rationale_calls=m * writes, feedback_calls=m * writes,
        review_calls=m * reviews_each, input_tokens=tokens_in, output_tokens=tokens_out,
        usd=usd if sizes.mistakes is not None else None, per_call=per_call,
        usd_per_call=usd_per_call, batch=teacher.batch, online_usd=online,
        roles=tuple(r for r in ROLES if (r == "review" and reviews_each)
                    or (r != "review" and writes)),
    )


def estimate_run(
    run: RunPlan, base_dir: Path, *, mistake_rate: float = 0.5,
    mistakes: int | None = None, call_store: str | os.PathLike[str] | None = None,
) -> CallEstimate:
    """Calls, tokens and cost of one run, for a measured or estimated number of mistakes,
    from its compiled stages (``base_dir``: the spec's folder, which their paths are
    relative to).

    ``call_store`` (default: the plan's, ``calls.sqlite`` beside the run folder): where this
    run's calls, once made, give the measured output lengths."""
    exam = settings_of(run.stage("exam"), ExamSettings)
    teach = settings_of(run.stage("teach"), TeachSettings)
    committee = Committee.of(run)
    text = TaskText.of(exam, base_dir)
    train_rows = count_train_rows(text)
    mistakes, source = _mistake_count(run, base_dir, train_rows, mistake_rate, mistakes)
    reviewed = committee.reviewed()
    per = calls_per_mistake(len(committee.teachers), committee.review.enabled, committee.exclude_self,
                            sum(len(a) for a in reviewed.values()))
    per_min = dict(per)
    per_min["review"] = sum(1 for reach in review_reach_of(run).values()
                            for always, _ in reach if always)
    per_min["total"] = per_min["rationale"] + per_min["feedback"] + per_min["review"]
    measured = measured_output_tokens(run, base_dir, call_store)
    kind = exam.answer.task_kind
    lengths, from_store = _output_lengths(committee, kind, measured)
    answer_chars = int(0.6 * exam.sampling.max_new_tokens * CHARS_PER_TOKEN)
    sizes = _RunSizes(
        committee, mistakes, lengths, reviewed,
        prompt_tokens(text, "prompts.rationale", teach.templates["rationale"].ref, {}),
        prompt_tokens(text, "prompts.feedback", teach.templates["feedback"].ref,
                      {"student_answer": answer_chars, "gold_answer": 4}))
    output_lengths = {
        "task_kind": kind,
        "prior": dict(prior_output_tokens(kind, 10**9)),
        "prior_source": prior_source(kind),
        "measured": as_json(measured),
        "from_call_store": from_store,
        "per_teacher": lengths,
    }
    return CallEstimate(run=run.name, mistakes=mistakes, mistakes_source=source,
                        train_rows=train_rows, per_mistake=per,
                        teachers=[_teacher_estimate(text, t, sizes) for t in committee.callers],
                        per_mistake_min=per_min, output_lengths=output_lengths)
