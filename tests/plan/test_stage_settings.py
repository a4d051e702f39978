"""Each stage kind's settings type: the plan's mapping read back exactly (keys and order), a
key the type does not know or a key it needs refused with where it is, and the keys a plan
compiled by an earlier fairspec lacks read as that plan meant them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairspec.dsl import load_spec
from fairspec.errors import PlanError
from fairspec.plan import Environment, compile_plan
from fairspec.plan.kinds import STAGE_KINDS
from fairspec.plan.stage_settings import (
    BuildSettings,
    EvaluateSettings,
    ReviewScoring,
    ReviewSettings,
    TeachSettings,
    TrainSettings,
)

REPO = Path(__file__).resolve().parents[2]


def quickstart(variant: int = 0):
    return compile_plan(load_spec(REPO / "specs" / "quickstart.yaml"), Environment()).runs[variant]


def without(settings, *keys):
    return {k: v for k, v in settings.items() if k not in keys}


def test_every_stage_reads_back_to_the_very_mapping_the_plan_holds():
    for run in (quickstart(0), quickstart(1)):  # review on (logprobs) and off
        for stage in run.stages:
            typed = STAGE_KINDS[stage.kind].settings.from_mapping(stage.settings)
            assert json.dumps(typed.to_mapping()) == json.dumps(stage.settings)


def test_stages_read_attributes_of_nested_blocks():
    run = quickstart()
    review = ReviewSettings.from_mapping(run.stage("review").settings)
    assert review.scoring == ReviewScoring(method="logprobs", fallback="text")
    assert review.policy is not None and review.policy.threshold == 2.2
    assert [t.name for t in review.teachers or ()] == ["smol-cool", "smol-warm"]
    teach = TeachSettings.from_mapping(run.stage("teach").settings)
    assert teach.templates["rationale"].ref and teach.teachers[0].device == "cpu"


def test_an_unknown_or_missing_key_is_refused_and_says_where():
    teach = dict(quickstart().stage("teach").settings)
    teach["teachers"] = [{**teach["teachers"][0], "colour": "red"}]
    with pytest.raises(PlanError, match=r"TeachSettings.teachers: TeacherSettings: unknown key 'colour'"):
        TeachSettings.from_mapping(teach)
    with pytest.raises(PlanError, match="missing key 'selection'"):
        BuildSettings.from_mapping(without(quickstart().stage("build").settings, "selection"))


def test_a_plan_from_before_a_key_reads_as_it_meant():
    run = quickstart()
    review = ReviewSettings.from_mapping(without(run.stage("review").settings, "scoring", "answer",
                                                 "gold_check", "early_exit"))
    assert review.scoring == ReviewScoring(method="text", fallback="text")
    assert review.checks_gold == "off" and review.early_exit
    build = BuildSettings.from_mapping(without(run.stage("build").settings, "decontaminate", "card"))
    assert build.decontaminate.mode == "off" and build.card is None
    train = TrainSettings.from_mapping(without(run.stage("train").settings, "precision", "save_steps",
                                               "keep_checkpoints", "attn_implementation", "tracking"))
    assert (train.precision, train.save_steps, train.keep_checkpoints, train.attn_implementation,
            train.tracking) == ("mixed", None, "none", "auto", None)
    evaluate = EvaluateSettings.from_mapping({
        **without(run.stage("evaluate").settings, "samples", "card", "replicas"),
        "vllm": {"data_parallel_size": 2, "tensor_parallel_size": 4}})
    assert evaluate.samples == 1 and evaluate.card is None
    assert (evaluate.engines().replicas, evaluate.engines().per_replica) == (2, 4)
