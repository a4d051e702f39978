"""A run folder the previous release wrote is still read: its manifest.json and stats.json
carry no ``schema_version`` and its run.json has the previous layout, yet the report renders
from it and a rerun skips its finished stages (fingerprints did not change)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from run_folders import replay_spec, write

from fairspec.artifacts import (
    RUN_INFO_SCHEMA_VERSION,
    output_files,
    prepare_stage_folder,
    read_manifest,
    upgrade_run_info,
)
from fairspec.dsl import load_spec
from fairspec.plan import Environment, compile_plan
from fairspec.report import write_report
from fairspec.report.collect import collect
from fairspec.run.executor import execute

#: what the previous release's stages wrote as their summaries (no schema_version)
OLD_STATS: dict[str, dict[str, Any]] = {
    "exam": {"total": 2, "wrong": 1, "invalid": 0, "truncated": 0},
    "teach": {"mistakes": 1, "teachers": {"a": {
        "calls": 1, "made": 1, "cached": 0, "replayed": 0, "errors": 0, "retries": 0,
        "input_tokens": 10, "output_tokens": 5, "usd": None}}},
    "review": {"enabled": False, "rationales": 1, "reviewable": 0, "accepted": 1,
               "accepted_per_teacher": {"a": 1}, "rationales_per_teacher": {"a": 1}, "teachers": {}},
    "build": {"samples": 1, "examples": 2, "rationale_examples": 1, "feedback_examples": 1,
              "selection": "random_one", "per_teacher": {"a": {"rationale": 1, "feedback": 1}}},
    "train": {"examples": 2, "steps": 1, "truncated": 0, "first_loss": 2.0, "last_loss": 1.5,
              "seconds": 1.0, "log": [{"step": 1, "loss": 1.5}]},
    "evaluate": {"base": {"accuracy": 0.5, "correct": 1, "total": 2, "invalid": 0},
                 "tuned": {"accuracy": 1.0, "correct": 2, "total": 2, "invalid": 0}},
}


def old_stage(folder: Path, stage: Any) -> None:
    """``stage`` finished as the previous release left it: its outputs, then a manifest with
    the files it wrote and no ``schema_version``."""
    prepare_stage_folder(folder, stage.fingerprint)
    outputs = [o.name for o in stage.outputs]
    for name in outputs:
        if name.endswith("/"):
            write(folder / name / "config.json", {})
        elif name in ("stats.json", "metrics.json"):
            write(folder / name, OLD_STATS.get(stage.kind, {}))
        elif name.endswith(".jsonl"):
            write(folder / name, [])
        else:
            (folder / name).write_text("")
    write(folder / "manifest.json", {
        "stage": stage.name, "fingerprint": stage.fingerprint, "inputs": {}, "outputs": outputs,
        "files": output_files(folder, outputs), "counts": {}, "started_at": 0.0,
        "finished_at": 1.0, "seconds": 1.0})


def test_a_run_folder_of_the_previous_release_renders_and_resumes(tmp_path):
    spec = replay_spec(tmp_path, "old")
    loaded = load_spec(spec)
    plan = compile_plan(loaded, Environment())
    run = plan.runs[0]
    run_dir = Path(run.run_dir)
    for stage in run.stages:
        old_stage(run_dir / stage.name, stage)
    write(run_dir / "run.json", {  # the previous release's layout: no schema_version
        "name": run.name, "spec": plan.spec_name, "spec_file": plan.spec_file, "variant": None,
        "origin": "spec", "overrides": {}, "description": "an old run", "alpha": 0.5, "seed": 0,
        "train_seed": None, "repeats": None,
        "settings": loaded.spec.model_dump(mode="json", exclude={"variants", "sweep"})})
    assert "schema_version" not in json.loads((run_dir / "exam" / "manifest.json").read_text())
    assert read_manifest(run_dir / "exam")["schema_version"] == 2  # read in the current layout

    summary = collect(run_dir)
    assert summary.exam == {**OLD_STATS["exam"], "schema_version": 1}
    assert summary.accuracy("tuned") == 1.0 and summary.settings["training.alpha"] == 0.5
    page = write_report(run_dir)[0].read_text(encoding="utf-8")
    assert "FAIR run `old`" in page and "an old run" in page

    report = execute(loaded, plan)
    assert {o.status for o in report.outcomes} == {"skipped"}, report.outcomes
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))  # rewritten from the plan
    assert info["schema_version"] == RUN_INFO_SCHEMA_VERSION and info["settings"]["name"] == "old"


def test_run_json_of_any_earlier_layout_reads_in_the_current_one():
    oldest = upgrade_run_info({"name": "r", "spec": "s", "variant": "v", "overrides": {"a": 1}}, "dir")
    assert oldest["settings"] is None and oldest["alpha"] is None and oldest["repeats"] is None
    assert oldest["overrides"] == {"a": 1} and oldest["schema_version"] == RUN_INFO_SCHEMA_VERSION
    with_settings = upgrade_run_info({"name": "r", "settings": {"training": {"alpha": 0.3}}}, "dir")
    assert with_settings["alpha"] == 0.3
    assert upgrade_run_info(None, "dir")["name"] == "dir"
