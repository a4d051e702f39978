"""`fairspec run` checks what it can before any stage starts, spending nothing, and reports
every problem at once (exit 2): keys, models, hub data, vLLM, the output folder, the budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from katan_runs import committee, compile_run, spec_text, write_spec

from fairspec.artifacts import write_manifest
from fairspec.plan.graph import STAGE_NAMES
from fairspec.run.preflight import check

UNSET = "FAIRSPEC_TEST_UNSET_KEY"
PRICED = ", price: {input_per_mtok: 1.0, output_per_mtok: 10.0}"


def teachers(url: str = "http://127.0.0.1:9/v1", **options) -> str:
    return committee(url, names=("alpha", "beta"), key_env=UNSET, **options)


def test_run_stops_before_the_exam_naming_every_problem(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    spec = write_spec(tmp_path, spec_text(
        teachers(), student="{model: ./no-such-model, hardware: {device: cpu}}",
        output_dir=str(blocker / "runs")))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 30  # no model was loaded, no exam ran
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("- ")]
    assert lines == [
        f"- teacher alpha: environment variable {UNSET} is not set (export {UNSET}=... ; "
        "`--until exam` needs no key)",
        f"- teacher beta: environment variable {UNSET} is not set (export {UNSET}=... ; "
        "`--until exam` needs no key)",
        f"- model ./no-such-model: no such folder {tmp_path / 'no-such-model'}",
        f"- output folder {blocker / 'runs'} is not writable: Not a directory",
    ], done.stderr
    assert "nothing was started" in done.stderr and "Traceback" not in done.stderr
    assert not (blocker.parent / "runs").exists()


def made(tmp_path: Path, *, teacher_text: str | None = None, **sections):
    result = compile_run(spec_text(teacher_text or teachers(), **sections), tmp_path)
    return result.plan, result.run


def test_the_exam_alone_needs_no_key_and_replay_needs_none(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    plan, run = made(tmp_path)
    assert check(plan, [run], ("exam",)) == []
    assert check(plan, [run], STAGE_NAMES, replay=True) == []
    assert len(check(plan, [run], STAGE_NAMES)) == 2  # alpha's and beta's key


def test_stages_already_done_need_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    plan, run = made(tmp_path)
    for name in ("teach", "review"):
        folder = Path(run.run_dir) / name
        folder.mkdir(parents=True)
        write_manifest(folder, stage=name, fingerprint=run.stage(name).fingerprint, inputs={},
                       outputs=[], counts={}, started=time.time())
    assert check(plan, [run], STAGE_NAMES) == []


def test_a_budget_below_one_calls_reply_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(UNSET, "sk-test-not-a-real-key-000000")
    plan, run = made(tmp_path, teacher_text=teachers(price="{input_per_mtok: 1.0, "
                                                     "output_per_mtok: 10.0}"),
                     generation="{max_tokens: 1000}")
    assert check(plan, [run], STAGE_NAMES, budget_usd=0.5) == []
    problems = check(plan, [run], STAGE_NAMES, budget_usd=0.005)
    assert problems == [
        f"teacher {name}: one call reserves at least $0.0100 (its whole reply budget, "
        "max_tokens 1000), more than the budget $0.005; raise budget.max_usd (or --max-cost) "
        "or lower max_tokens" for name in ("alpha", "beta")]


def test_vllm_that_does_not_import_and_a_model_folder_without_config(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv(UNSET, "sk-test-not-a-real-key-000000")
    (tmp_path / "model").mkdir()
    plan, run = made(tmp_path, student="{model: model, exam: {engine: vllm}}")
    exam = run.stage("exam")
    assert exam.settings["engine"] == "vllm"
    problems = check(plan, [run], ("exam",))
    assert f"model model: the folder {tmp_path / 'model'} has no config.json" in problems
    vllm_here = importlib.util.find_spec("vllm") is not None
    assert any(p.startswith("the exam engine is vllm") for p in problems) is not vllm_here
    (tmp_path / "model" / "config.json").write_text(json.dumps({}))
    assert all("model model" not in p for p in check(plan, [run], ("exam",)))
