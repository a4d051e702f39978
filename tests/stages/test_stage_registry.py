"""The stage registry agrees with the plan's stage kinds, and imports stay lazy."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from fairspec.plan.kinds import STAGE_KINDS
from fairspec.stages import IMPLEMENTATIONS, STAGES, stage_runner


def test_every_planned_kind_has_an_implementation_taking_one_context():
    assert list(STAGES) == list(STAGE_KINDS)
    for kind in STAGES:
        run = stage_runner(kind)
        assert list(inspect.signature(run).parameters) == ["ctx"], kind


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
