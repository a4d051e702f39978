"""`fairspec diff`: two specs or records compared key by key on the resolved spec (files by
what they hold), and records also by datasets, packages and stage fingerprints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from katan_runs import committee, spec_text

from fairspec.dsl import load_spec
from fairspec.errors import DiffError
from fairspec.plan import Environment, compile_plan
from fairspec.resources import resource_root
from fairspec.run.diff import compare, open_pair
from fairspec.run.record import write_record
from fairspec.store import CallStore

RESOLVED = {"student.exam.engine", "student.hardware.dtype", "task.answer.extractor"}


def fairspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fairspec.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ), stdin=subprocess.DEVNULL)


def write_spec(folder: Path, file: str = "spec.yaml", **sections: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = spec_text(committee("http://127.0.0.1:9/v1", ("alpha", "beta")), name="lab",
                     output_dir="runs", **sections)
    path = folder / file
    path.write_text(text)
    return path


@pytest.fixture
def records(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A spec with an alpha sweep, and the record of each of its runs (written from the
    compiled plan, as the executor writes it; no stage has run)."""
    spec = write_spec(tmp_path / "project", sweep="{training.alpha: [0, 1]}")
    loaded = load_spec(spec)
    plan = compile_plan(loaded, Environment())
    found = {}
    with CallStore(tmp_path / "calls.sqlite") as store:
        for run in plan.runs:
            found[run.variant or "main"] = write_record(run, plan, store)
    return spec, found


def keys(differences, section: str = "spec") -> set[str]:
    return {d.key for d in differences if d.section == section}


def test_two_sweep_points_differ_in_alpha_only(records) -> None:
    _, found = records
    assert set(found) == {"main", "alpha-0", "alpha-1"}
    a, b = open_pair(found["alpha-0"], found["alpha-1"])
    differences = compare(a, b)
    assert keys(differences) == {"training.alpha"}
    (alpha,) = [d for d in differences if d.section == "spec"]
    assert (alpha.a, alpha.b) == (0.0, 1.0)
    # alpha enters the training and what follows it; the exam and teacher stages are shared
    assert "train" in keys(differences, "stages")
    assert keys(differences, "stages") <= {"train", "evaluate", "report"}
    assert keys(differences, "packages") == keys(differences, "datasets") == set()


def test_a_record_against_its_own_spec_shows_only_what_the_run_resolved(records) -> None:
    spec, found = records
    differences = compare(*open_pair(spec, found["main"]))
    assert keys(differences) == RESOLVED
    by_key = {d.key: (d.a, d.b) for d in differences}
    assert by_key["student.exam.engine"] == ("auto", "hf")
    assert by_key["student.hardware.dtype"] == ("auto", "fp32")
    # a spec facing a sweep point's record is compared as that point
    a, b = open_pair(spec, found["alpha-1"])
    assert a.variant == "alpha-1" and keys(compare(a, b)) == RESOLVED
    # and the run folder names its record
    assert keys(compare(*open_pair(spec, found["main"].parent))) == RESOLVED


def test_templates_are_compared_by_what_they_hold(tmp_path: Path) -> None:
    builtin = resource_root() / "prompts" / "math" / "rationale.j2"
    ours = tmp_path / "rationale.j2"
    ours.write_text(builtin.read_text())
    a = write_spec(tmp_path, "a.yaml")
    b = write_spec(tmp_path, "b.yaml", prompts="{rationale: rationale.j2}")
    assert compare(*open_pair(a, b)) == []
    ours.write_text(builtin.read_text() + "\nShow every step.")
    (difference,) = compare(*open_pair(a, b))
    assert (difference.key, difference.a, difference.b) == \
        ("prompts.rationale", "builtin:prompts/math/rationale.j2", "rationale.j2")


def test_records_differ_by_package_versions(records) -> None:
    _, found = records
    environment = found["alpha-1"] / "environment.json"
    data = json.loads(environment.read_text())
    data["packages"]["transformers"] = "0.0.1"
    environment.write_text(json.dumps(data))
    differences = compare(*open_pair(found["alpha-1"], found["alpha-1"]))
    assert [(d.section, d.key, d.b) for d in differences] == []
    differences = compare(*open_pair(found["alpha-0"], found["alpha-1"]))
    assert ("packages", "transformers", "0.0.1") in {(d.section, d.key, d.b) for d in differences}


def test_a_chained_spec_equals_its_flat_copy(tmp_path: Path) -> None:
    base = write_spec(tmp_path / "base")
    flat = write_spec(tmp_path / "base", "flat.yaml", review="{threshold: 3.5}")
    child = tmp_path / "child" / "spec.yaml"
    child.parent.mkdir()
    child.write_text(f"extends: {os.path.relpath(base, child.parent)}\nreview: {{threshold: 3.5}}\n")
    a, b = open_pair(flat, child)
    assert compare(a, b) == []  # the base's output_dir names the base's runs folder
    moved = tmp_path / "flat.yaml"
    moved.write_text(flat.read_text())
    (difference,) = compare(*open_pair(moved, child))
    assert (difference.key, difference.a, difference.b) == ("output_dir", "runs", "../base/runs")
    assert keys(compare(*open_pair(base, child))) == {"review.threshold"}


@pytest.mark.slow
def test_the_command_exits_0_1_or_2(records, tmp_path: Path) -> None:
    spec, found = records
    same = fairspec("diff", str(found["main"]), str(found["main"]), cwd=tmp_path)
    assert same.returncode == 0 and "no differences" in same.stdout, same.stderr
    differ = fairspec("diff", "--json", str(found["alpha-0"]), str(found["alpha-1"]), cwd=tmp_path)
    assert differ.returncode == 1, differ.stderr
    report = json.loads(differ.stdout)
    assert report["equal"] is False and report["a"]["kind"] == "record"
    assert {"section": "spec", "key": "training.alpha", "a": 0.0, "b": 1.0} in report["differences"]
    text = fairspec("diff", str(spec), str(found["alpha-0"]), cwd=tmp_path)
    assert text.returncode == 1 and "student.exam.engine: auto -> hf" in text.stdout
    assert "(spec, variant alpha-0)" in text.stdout
    missing = fairspec("diff", str(spec), str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such spec file or run record" in missing.stderr
    folder = fairspec("diff", str(spec), str(tmp_path), cwd=tmp_path)
    assert folder.returncode == 2 and "not a spec file or a run record" in folder.stderr
    builtin = fairspec("diff", "builtin:specs/svamp.yaml", "builtin:specs/svamp.yaml", cwd=tmp_path)
    assert builtin.returncode == 0, builtin.stderr


def test_a_spec_without_the_records_variant_is_an_error(records, tmp_path: Path) -> None:
    _, found = records
    other = write_spec(tmp_path / "other")
    with pytest.raises(DiffError, match="ran variant 'alpha-0'"):
        open_pair(other, found["alpha-0"])
