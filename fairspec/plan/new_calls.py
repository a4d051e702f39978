"""The requests per mistake each run of a plan adds to the call store, as a range.

Variants share the call store: a request an earlier run made is free, but a review that
the earlier run's early exit skipped is not there (:mod:`fairspec.plan.early_exit`). So the
new calls of a run (:func:`unique_calls_per_mistake`) are a range: at least the requests
this run always makes and no earlier run can have made; at most the requests this run may
make that no earlier run surely made (the variants run after the runs above them, as
``fairspec run`` runs them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fairspec.hashing import canonical_json, sha256_text
from fairspec.plan.early_exit import review_order, review_reach_of
from fairspec.plan.graph import Plan, RunPlan
from fairspec.plan.priors import ROLES


@dataclass(frozen=True)
class CallClass:
    """One kind of teacher request per mistake in a run: who is asked, for what, and
    whether the run always makes it or only may (a review early exit can skip)."""

    teacher: str
    role: str
    always: bool
    maybe: bool


def call_classes(run: RunPlan) -> dict[str, CallClass]:
    """Distinct kinds of teacher request per mistake in a run (key -> its class).

    Two runs whose keys coincide send identical requests, so the call store answers
    the second from the first: the union over runs counts what a spec really pays for.
    A review's key holds its author's rationale key (the rationale it reads) and the
    reviewer as it asks (with ``scoring: logprobs``, asking for the distribution).
    """
    exam_fp = run.stage("exam").fingerprint
    teach = run.stage("teach").identity
    review = run.stage("review").identity
    classes: dict[str, CallClass] = {}

    def add(key: str, item: CallClass) -> None:
        old = classes.get(key)  # two teachers with one configuration send one request
        if old is not None:
            item = CallClass(old.teacher, old.role, old.always or item.always,
                             old.maybe or item.maybe)
        classes[key] = item

    rationale_key: dict[str, str] = {}
    for teacher in teach["teachers"]:
        who = sha256_text(canonical_json({k: v for k, v in teacher.items() if k != "name"}))
        for role in ("rationale", "feedback"):
            key = canonical_json([exam_fp, role, who, teach["templates"][role]["sha256"],
                                  teach["fields"]])
            add(key, CallClass(teacher["name"], role, True, True))
            if role == "rationale":
                rationale_key[teacher["name"]] = key
    if review.get("enabled"):
        reviewers = {t["name"]: t for t in review["reviewers"]}
        reach = review_reach_of(run)
        for author, order in review_order(run).items():
            for (always, maybe), name in zip(reach[author], order, strict=True):
                key = canonical_json([rationale_key[author], "review",
                                      {k: v for k, v in reviewers[name].items() if k != "name"},
                                      review["template"]["sha256"], review["fields"]])
                add(key, CallClass(name, "review", always, maybe))
    return classes


@dataclass(frozen=True)
class NewCalls:
    """Requests per mistake a run sends that no earlier run of the plan answers.

    ``max``: the run may make them and no earlier run surely made them: a true upper bound
    when the runs go in the plan's order (a retry is the same request; a failed call is
    asked again). ``min``: the run always makes them and no earlier run can have made them,
    for usable rationales (a failed or empty one gets no review) with distinct texts (two
    equal rationales get one review per reviewer). The gap holds reviews that the early
    exit of an earlier run may have skipped (``skipped_earlier``) or that this run's own
    may skip (``skipped_here``). ``min_calls``/``max_calls``: (teacher asked, role) ->
    count, for the cost.
    """

    min: int
    max: int
    min_by_role: dict[str, int] = field(default_factory=dict)
    max_by_role: dict[str, int] = field(default_factory=dict)
    min_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    max_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    skipped_earlier: int = 0
    skipped_here: int = 0

    @property
    def span(self) -> str:
        """"3" or "0-2"."""
        return str(self.max) if self.min == self.max else f"{self.min}-{self.max}"

    def breakdown(self) -> str:
        """"0-2 review" or "2 rationale + 2 feedback + 1-2 review": the roles it adds."""
        parts = []
        for role in self.max_by_role:
            low, high = self.min_by_role.get(role, 0), self.max_by_role[role]
            if high:
                parts.append(f"{high if low == high else f'{low}-{high}'} {role}")
        return " + ".join(parts) or "0"

    def why(self) -> str:
        """Why the number is a range, in words ("" when it is not)."""
        if self.min == self.max:
            return ""
        reasons = []
        if self.skipped_earlier:
            reasons.append(f"up to {self.skipped_earlier} review(s) that the early exit of "
                           "the runs above may skip")
        if self.skipped_here:
            reasons.append(f"up to {self.skipped_here} review(s) that this run's own early "
                           "exit may skip")
        return "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min, "max": self.max,
            "min_by_role": dict(self.min_by_role), "max_by_role": dict(self.max_by_role),
            "skipped_earlier": self.skipped_earlier, "skipped_here": self.skipped_here,
        }


def _by_role(classes: Mapping[str, CallClass]) -> dict[str, int]:
    counts = Counter(c.role for c in classes.values())
    return {role: counts.get(role, 0) for role in ROLES}


def unique_calls_per_mistake(plan: Plan) -> dict[str, NewCalls]:
    """Per run, in the plan's order: the range of requests per mistake no earlier run made."""
    surely: set[str] = set()  # made by an earlier run whatever the scores
    maybe: set[str] = set()  # possibly made by an earlier run
    fresh: dict[str, NewCalls] = {}
    ran: set[str] = set()  # stage fingerprints of earlier runs: a shared stage is copied
    for run in plan.runs:
        classes = call_classes(run)
        copied = {role for stage, roles in (("teach", ("rationale", "feedback")), ("review", ("review",)))
                  if run.stage(stage).fingerprint in ran for role in roles}
        classes = {k: c for k, c in classes.items() if c.role not in copied}
        ran.update(s.fingerprint for s in run.stages)
        low = {k: c for k, c in classes.items() if c.always and k not in maybe}
        high = {k: c for k, c in classes.items() if c.maybe and k not in surely}
        gap = [k for k in high if k not in low]
        fresh[run.name] = NewCalls(
            min=len(low), max=len(high), min_by_role=_by_role(low), max_by_role=_by_role(high),
            min_calls=dict(Counter((c.teacher, c.role) for c in low.values())),
            max_calls=dict(Counter((c.teacher, c.role) for c in high.values())),
            skipped_earlier=sum(1 for k in gap if k in maybe),
            skipped_here=sum(1 for k in gap if not classes[k].always),
        )
        surely.update(k for k, c in classes.items() if c.always)
        maybe.update(k for k, c in classes.items() if c.maybe)
    return fresh
