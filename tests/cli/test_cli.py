"""The fairspec command line, run as a user runs it: a subprocess, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "specs").rglob("*.yaml"))


def fairspec(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fairspec.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=120, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )


def test_specs_folder_is_not_empty():
    names = {p.relative_to(REPO / "specs").as_posix() for p in SPECS}
    assert {"quickstart.yaml", "gsm8k.yaml", "svamp.yaml", "strategyqa.yaml", "logiqa.yaml"} <= names
    assert any("/" in name for name in names)  # subfolders are covered too


@pytest.mark.parametrize("spec", SPECS, ids=[p.relative_to(REPO).as_posix() for p in SPECS])
def test_every_shipped_spec_validates(spec):
    result = fairspec("validate", str(spec))
    assert result.returncode == 0, result.stderr
    assert ": ok (" in result.stdout


def test_validate_reports_problems_with_exit_2_and_no_traceback(tmp_path):
    bad = (REPO / "specs" / "logiqa.yaml").read_text().replace("threshold: 4", "threshold: 9")
    bad = bad.replace("  aggregate: mean", "  aggregate: avg").replace("../", f"{REPO}/")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    result = fairspec("validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    threshold_line = bad.splitlines().index("  threshold: 9") + 1
    assert any(line.startswith(f"{path}:{threshold_line}:") and "review.threshold:" in line
               for line in lines)
    assert any("review.aggregate:" in line and "allowed: 'mean', 'median', 'min' or 'trimmed_mean'" in line
               for line in lines)
    assert lines[-1] == "2 problems found."


def test_validate_check_env_requires_the_key_variables_and_never_prints_them():
    spec = str(REPO / "specs" / "logiqa.yaml")
    clean = {k: "" for k in ("OPENAI_API_KEY", "GEMINI_API_KEY", "DEEPINFRA_API_KEY")}
    missing = fairspec("validate", "--check-env", spec, env=clean)
    assert missing.returncode == 2 and "OPENAI_API_KEY is not set" in missing.stderr
    marker = "sk-MARKER0000000000000000000000"
    present = fairspec("validate", "--check-env", spec, env={k: marker for k in clean})
    assert present.returncode == 0, present.stderr
    assert marker not in present.stdout + present.stderr


def test_plan_prints_the_call_arithmetic_and_cost():
    result = fairspec("plan", "specs/logiqa.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 rationale + 3 feedback + 6 review (3x2, exclude_self) = 12" in out
    assert "7376 train rows x mistake rate 0.5" in out
    assert "$" in out and "-m accelerate.commands.launch" in out


def test_plan_json_is_machine_readable_and_keyless():
    marker = "sk-MARKER1111111111111111111111"
    result = fairspec("plan", "specs/logiqa.yaml", "--json", "--mistakes", "100",
                      env={"OPENAI_API_KEY": marker})
    assert result.returncode == 0, result.stderr
    assert marker not in result.stdout
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1
    main = data["runs"][0]
    assert [s["name"] for s in main["stages"]] == [
        "exam", "teach", "review", "build", "train", "evaluate", "report"]
    assert all(len(s["fingerprint"]) == 64 for s in main["stages"])
    assert main["calls"]["calls"] == 1200 and main["calls"]["per_mistake"]["total"] == 12
    # at most 12 + 2 + 1 per mistake: sub-committee variants may need reviews the main run's
    # early exit skipped; at least the 9 the main run always makes
    # and the two-rounds variant's round 2: its 100 estimated mistakes' feedback (300) always,
    # their rationales and reviews (900) unless the store holds them from round 1
    (later,) = next(r for r in data["runs"] if r["variant"] == "two-rounds")["rounds"]
    assert later["mistakes"] == 100 and (later["calls_min"], later["calls_max"]) == (300, 1200)
    assert data["totals"]["calls"] == 1500 + 1200 and data["totals"]["calls_min"] == 900 + 300
    assert len(data["runs"]) == 14


@pytest.mark.slow
def test_plan_one_variant():
    result = fairspec("plan", "specs/logiqa.yaml", "--json", "--variant", "only-gpt")
    data = json.loads(result.stdout)
    (run,) = data["runs"]
    assert run["variant"] == "only-gpt" and run["calls"]["per_mistake"]["total"] == 2
    unknown = fairspec("plan", "specs/logiqa.yaml", "--variant", "nope")
    assert unknown.returncode == 2 and "no variant 'nope'" in unknown.stderr


def test_plan_of_an_invalid_spec_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("fairspec: 1\nname: x\n")
    result = fairspec("plan", str(path))
    assert result.returncode == 2 and "required key 'task' is missing" in result.stderr


def test_schema_is_json_schema_of_the_spec():
    result = fairspec("schema")
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"task", "student", "teachers", "review", "training"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["extends"]["type"] == "string"  # editors accept the key


@pytest.mark.parametrize("task", ["gsm8k", "svamp", "strategyqa", "logiqa"])
def test_init_writes_a_valid_starter_spec_anywhere(tmp_path, task):
    result = fairspec("init", "--task", task, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / f"{task}.yaml"
    assert "builtin:prompts/" in written.read_text()
    assert fairspec("validate", str(written), cwd=tmp_path).returncode == 0
    again = fairspec("init", "--task", task, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.slow
def test_init_extends_writes_a_child_of_the_paper_spec(tmp_path):
    result = fairspec("init", "--task", "gsm8k", "--extends", "-o", "mine.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "mine.yaml").read_text()
    assert "extends: builtin:specs/gsm8k.yaml" in text and len(text.splitlines()) < 25
    plan = json.loads(fairspec("plan", "--json", "mine.yaml", cwd=tmp_path).stdout)
    assert [f["file"] for f in plan["spec_files"]] == ["mine.yaml", "builtin:specs/gsm8k.yaml"]
    assert plan["output_dir"] == "runs"
    # what the child changes against the paper's spec: its name, description, output folder
    diff = fairspec("diff", "--json", "builtin:specs/gsm8k.yaml", "mine.yaml", cwd=tmp_path)
    assert diff.returncode == 1, diff.stderr
    assert {d["key"] for d in json.loads(diff.stdout)["differences"]} == \
        {"name", "description", "output_dir"}
    # an edit in the child: the paper's variants still compile, on top of the change
    (tmp_path / "mine.yaml").write_text(text + "training:\n  alpha: 0.25\n")
    checked = fairspec("validate", "mine.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "variant(s)" in checked.stdout, checked.stderr
