"""The requests a teacher stage makes, from its inputs, and their identities in the call store.

One recipe for the teach and review stages, which send these requests, and for the plan's
estimate, which looks their keys up in the store to measure the calls a run already has:
so the keys the plan reads are the keys the stages write, by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from fairspec.prompting import TEACH_ROLES, review_prompt, teach_prompts, user_messages
from fairspec.store.keys import CallIdentity


class TeachRequest(NamedTuple):
    """One call a teacher of the teach stage makes: about ``mistake``, for ``role``
    (rationale or feedback), with ``messages`` as its sample ``sample_index``."""

    mistake: dict[str, Any]
    role: str
    messages: list[dict[str, str]]
    sample_index: int


def teach_requests(templates: Mapping[str, str], mistakes: Iterable[dict[str, Any]],
                   rationale_sample: int = 0) -> Iterator[TeachRequest]:
    """Each call of one teacher in the teach stage, in the order of ``mistakes``: a mistake's
    rationale, then its feedback. ``rationale_sample``: the rationale's sample index (a later
    round's new rationale for a question asked before); feedback is always sample 0, as it
    is keyed by the student's answer."""
    samples = {"rationale": rationale_sample, "feedback": 0}
    for mistake in mistakes:
        prompts = teach_prompts(templates, mistake)
        for role in TEACH_ROLES:
            yield TeachRequest(mistake, role, user_messages(prompts[role]), samples[role])


def review_messages(template: str, mistake: dict[str, Any], rationale: str) -> list[dict[str, str]]:
    """The messages of every review of one rationale (``rationale``: its text) of ``mistake``;
    each reviewer asks them as sample 0."""
    return user_messages(review_prompt(template, mistake, rationale))


def reviewers_of(review: Mapping[str, Any], author: str) -> list[str]:
    """The reviewers of ``author``'s rationales in the order the review stage asks them:
    the review stage's committee (``review``: its settings) by name, the author left out
    with exclude_self."""
    exclude_self = review["policy"]["exclude_self"]
    return [name for name in sorted(t["name"] for t in review["teachers"])
            if not (exclude_self and name == author)]


def teacher_identity(teacher: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
                     sample_index: int = 0) -> CallIdentity:
    """The identity of the call a teacher (its settings in a teacher stage) makes for
    ``messages``: the one its ``TeacherCaller`` builds (``make_committee`` gives the caller
    these very settings)."""
    return CallIdentity(teacher["provider"], teacher["base_url"], teacher["model"], messages,
                        teacher["generation"], sample_index)
