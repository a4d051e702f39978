"""The stage registry agrees with the plan's stage kinds, and imports stay lazy."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from fairspec.plan.kinds import STAGE_KINDS
from fairspec.stages import IMPLEMENTATIONS, stage_runner


def test_every_planned_kind_has_an_implementation_taking_one_context():
    assert [k.module for k in STAGE_KINDS.values()] == [f"fairspec.stages.{k}" for k in STAGE_KINDS]
    for kind in STAGE_KINDS:
        run = stage_runner(kind)
        assert list(inspect.signature(run).parameters) == ["ctx"], kind


def test_the_command_line_offers_the_registry_s_stages_and_teacher_stages_derive_from_it():
    """The CLI keeps its own tuple (importing the plan would slow every command's start);
    the other lists derive from the registry."""
    from fairspec.cli import STAGES as CLI_STAGES
    from fairspec.plan import STAGE_NAMES
    from fairspec.plan.kinds import CALL_FILES
    from fairspec.run.preflight import TEACHER_STAGES

    assert CLI_STAGES == STAGE_NAMES == tuple(STAGE_KINDS)
    assert CALL_FILES == {"teach": ("rationales.jsonl", "feedback.jsonl"), "review": ("reviews.jsonl",)}
    assert TEACHER_STAGES == ("teach", "review")
    for kind, files in CALL_FILES.items():  # a call file is a declared output of its kind
        assert set(files) <= {o.name for o in STAGE_KINDS[kind].writes}


def test_every_other_implementation_is_of_a_planned_kind_and_takes_one_context():
    assert ("exam", "recorded") in IMPLEMENTATIONS
    for kind, implementation in IMPLEMENTATIONS:
        assert kind in STAGE_KINDS
        run = stage_runner(kind, implementation)
        assert run is not stage_runner(kind)
        assert list(inspect.signature(run).parameters) == ["ctx"], (kind, implementation)
    with pytest.raises(KeyError, match="no implementation 'cached' of stage kind 'exam'"):
        stage_runner("exam", "cached")


def test_an_unknown_kind_is_named():
    try:
        stage_runner("distil")
    except KeyError as exc:
        assert "distil" in str(exc) and "exam" in str(exc)
    else:
        raise AssertionError("no error for an unknown stage kind")


def test_the_executor_and_the_exam_load_no_teacher_sdk_and_no_torch():
    heavy = ("openai", "google.genai", "torch", "transformers", "fairspec.teachers.caller")
    code = ("import sys; import fairspec.run.executor, fairspec.stages.exam; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
