"""A finished stage whose fingerprint no longer matches (a changed setting, a new fairspec
version) runs again, but its finished folder is moved to ``<stage>.previous/``, never
deleted; `fairspec run` and `fairspec plan` say which stages before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from run_folders import replay_spec

from fairspec.artifacts import OWNER_FILE, prepare_stage_folder, write_manifest
from fairspec.cli import cli
from fairspec.dsl import load_spec
from fairspec.plan import Environment, compile_plan
from fairspec.run.preflight import finished_elsewise, run_warnings


def finished(folder: Path, fingerprint: str, content: str = "weights") -> None:
    """A stage folder finished for ``fingerprint``, holding model.bin."""
    prepare_stage_folder(folder, fingerprint)
    (folder / "model.bin").write_text(content)
    write_manifest(folder, stage=folder.name, fingerprint=fingerprint, inputs={},
                   outputs=["model.bin"], counts={}, started=0.0)


def test_a_finished_stage_of_another_fingerprint_is_moved_aside_not_deleted(tmp_path):
    stage = tmp_path / "train"
    finished(stage, "old", "20 minutes of training")
    assert prepare_stage_folder(stage, "new") is False  # nothing of it is reused ...
    kept = tmp_path / "train.previous"
    assert (kept / "model.bin").read_text() == "20 minutes of training"  # ... and nothing lost
    assert (stage / OWNER_FILE).read_text().strip() == "new" and not (stage / "model.bin").exists()
    # the next change keeps the newest finished one only
    finished(stage, "new", "the second training")
    prepare_stage_folder(stage, "newer")
    assert (kept / "model.bin").read_text() == "the second training"


def test_an_unfinished_folder_of_another_fingerprint_is_cleared(tmp_path):
    stage = tmp_path / "train"
    prepare_stage_folder(stage, "old")
    (stage / "partial.bin").write_text("half")
    prepare_stage_folder(stage, "new")
    assert not (tmp_path / "train.previous").exists() and not (stage / "partial.bin").exists()


def test_run_and_plan_name_the_finished_stages_that_will_run_again(tmp_path):
    spec = replay_spec(tmp_path, "again")
    plan = compile_plan(load_spec(spec), Environment())
    run = plan.runs[0]
    finished(Path(run.run_dir) / "exam", run.stage("exam").fingerprint)  # still current
    finished(Path(run.run_dir) / "train", "made-by-fairspec-0.9")  # another fingerprint
    warnings = run_warnings([run], ("exam", "teach", "review", "build", "train", "evaluate"))
    (line,) = [w for w in warnings if "run again" in w]
    assert line.startswith("again: train finished earlier") and "train.previous" not in line
    assert "<stage>.previous/" in line
    assert finished_elsewise([run], ("exam",)) == []  # train not selected: nothing to say

    shown = CliRunner().invoke(cli, ["plan", str(spec)])
    assert shown.exit_code == 0, shown.output
    assert "warning: again: train finished earlier" in shown.output
    as_json = CliRunner().invoke(cli, ["plan", str(spec), "--json"])
    assert json.loads(as_json.stdout)["runs_again"] == [line]
