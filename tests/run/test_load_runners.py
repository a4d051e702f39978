"""A run imports every selected stage's code before its first stage runs, so a run that
lasts hours uses the code it started with to the end (fairspec upgraded on disk meanwhile
once failed a run's evaluate stage with a TypeError between two versions)."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from run_folders import replay_spec

import fairspec.plan.kinds as kinds
from fairspec.dsl import load_spec
from fairspec.plan import Environment, compile_plan
from fairspec.run.executor import execute, load_runners


def plan_in(tmp_path):
    loaded = load_spec(replay_spec(tmp_path, "preload"))
    return loaded, compile_plan(loaded, Environment())


def test_the_selected_stages_code_is_imported_up_front(tmp_path):
    _, plan = plan_in(tmp_path)
    runners = load_runners(list(plan.runs), ("train", "evaluate"))
    assert set(runners) == {("train", None), ("evaluate", None)}  # the selected kinds only
    assert runners[("evaluate", None)] is sys.modules["fairspec.stages.evaluate"].run


def test_a_stage_whose_code_cannot_load_stops_the_run_before_anything_runs(tmp_path, monkeypatch):
    loaded, plan = plan_in(tmp_path)
    monkeypatch.setitem(kinds.STAGE_KINDS, "evaluate", dataclasses.replace(
        kinds.STAGE_KINDS["evaluate"], module="fairspec.stages.no_such_stage"))
    ran = []
    with pytest.raises(ModuleNotFoundError):
        execute(loaded, plan, stages=("exam", "evaluate"), on_stage=ran.append)
    assert ran == [] and not (tmp_path / "runs" / "preload" / "exam").exists()
