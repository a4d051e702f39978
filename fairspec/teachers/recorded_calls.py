"""What the teacher stages tell recorded teachers: what each call is about, and, before any
call, whether the recorded files answer every call the stage may make."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairspec.errors import RecordedMissing
from fairspec.store.recorded_answers import About, missing_message
from fairspec.teachers.caller import TeacherCaller


def about(mistake: dict[str, Any], role: str, **review: Any) -> About:
    """What a teacher call on ``mistake`` is about (for answers recorded by question)."""
    return About(role, mistake["index"], str(mistake["fields"].get("question", "")), **review)


def check_recorded(callers: Mapping[str, TeacherCaller],
                   abouts: Mapping[str, list[About]]) -> None:
    """Before any call: every call a recorded teacher may be asked has an answer (or a
    fallback), else one error listing what is missing."""
    problems = []
    for name, wanted in abouts.items():
        missing = callers[name].missing(wanted)
        if missing:
            problems.append(missing_message(name, missing, len(wanted)))
    if problems:
        raise RecordedMissing("; ".join(problems))
