"""A new stage kind takes three files: its module (``run(ctx)``), its settings type (here
beside the functions that compile it: its parts and its placement in a round) and one
``STAGE_KINDS`` line (its contract, naming its settings type and compile functions).
Registered here from a package made in a temporary folder, it is compiled into every round
of a plan (its settings checked against its type), chained into the fingerprints, checked
by the graph, and runs through the stage context like the builtin kinds, reading its
settings by attribute."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass

import pytest
from run_folders import replay_spec

import fairspec.plan.kinds as kinds
from fairspec.dsl import load_spec
from fairspec.errors import PlanError
from fairspec.plan import Environment, compile_plan
from fairspec.plan.kinds import StageKind, _out
from fairspec.plan.stage_settings import StageSettings, checked_settings
from fairspec.run.executor import run_stage

SETTINGS = '''
from dataclasses import dataclass

from fairspec.plan.stage_parts import Parts, Placement
from fairspec.plan.stage_settings import StageSettings


@dataclass(frozen=True, kw_only=True)
class SummarizeSettings(StageSettings):
    say: str


def summarize_parts(facts):
    said = {"say": f"{facts.run_name} done"}
    return Parts(said, said)


def place_summarize(k, rounds, parts):
    return Placement(parts.identity, parts.settings, after=("evaluate",))
'''

MODULE = '''
import json

from toykind.settings import SummarizeSettings


def run(ctx):
    ctx.prepare()
    metrics = json.loads(ctx.input("evaluate", "metrics.json").read_text())
    summary = {"said": ctx.settings_as(SummarizeSettings).say, "tuned": metrics["tuned"]["accuracy"]}
    ctx.output("summary.json").write_text(json.dumps(summary))
    ctx.finish({"lines": 1})
    return summary
'''


def test_a_stage_kind_from_outside_the_package_is_compiled_into_every_round_and_runs(
        tmp_path, monkeypatch):
    package = tmp_path / "plugin" / "toykind"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "summarize.py").write_text(MODULE)
    (package / "settings.py").write_text(SETTINGS)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    toy = importlib.import_module("toykind.settings")
    # the one registry line: its settings type, how it compiles, reads the evaluation, writes
    # a summary, runs from its module
    monkeypatch.setitem(kinds.STAGE_KINDS, "summarize", StageKind(
        "summarize", toy.SummarizeSettings, toy.summarize_parts, toy.place_summarize,
        reads=(("evaluate", "metrics.json"),), writes=_out("summary.json"), module="toykind.summarize"))

    spec = replay_spec(tmp_path, "toy")
    spec.write_text(spec.read_text() + "rounds: {count: 2}\n")
    run = compile_plan(load_spec(spec), Environment()).runs[0]
    names = [s.name for s in run.stages]
    assert names.index("summarize") == names.index("evaluate") + 1
    assert "round-2/summarize" in names and names[-1] == "report"
    summarize, evaluate = run.stage("summarize"), run.stage("evaluate")
    assert summarize.after == ("evaluate",)
    assert [str(i) for i in summarize.inputs] == ["evaluate/metrics.json"]
    assert summarize.fingerprint in {s.fingerprint for s in run.stages}
    assert run.stage("round-2/summarize").fingerprint != summarize.fingerprint  # chained per round

    # it runs through the stage context: the declared input read, the output and manifest written
    metrics = {"tuned": {"accuracy": 0.25}}
    (tmp_path / "runs" / "toy" / "evaluate").mkdir(parents=True)
    (tmp_path / "runs" / "toy" / "evaluate" / "metrics.json").write_text(json.dumps(metrics))
    summary = run_stage(run, "summarize", base_dir=tmp_path)
    assert summary == {"said": "toy done", "tuned": 0.25}
    folder = tmp_path / "runs" / "toy" / "summarize"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fingerprint"] == summarize.fingerprint and manifest["outputs"] == ["summary.json"]
    assert evaluate.fingerprint in manifest["inputs"].values()
    assert "toykind.summarize" in sys.modules
    assert run.stage("round-2/summarize").settings == {"say": "toy done", "round": 2}


def test_settings_a_kinds_type_does_not_know_fail_the_compile():
    @dataclass(frozen=True, kw_only=True)
    class Said(StageSettings):
        said: str

    with pytest.raises(PlanError, match="unknown key 'say'"):
        checked_settings("summarize", Said, {"say": "x"})
    with pytest.raises(PlanError, match="missing key 'said'"):
        checked_settings("summarize", Said, {})
