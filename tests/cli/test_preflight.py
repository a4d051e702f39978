"""`fairspec run` checks what it can before any stage starts, spending nothing, and reports
every problem at once (exit 2): keys, models, hub data, vLLM, the output folder, the budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from katan_runs import committee, compile_run, spec_text, write_spec

from fairspec.artifacts import write_manifest
from fairspec.plan.kinds import STAGE_NAMES
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


def test_deepspeed_that_does_not_import_is_a_problem_with_its_install_command(
        tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv(UNSET, "sk-test-not-a-real-key-000000")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # absent even where it is installed
                        lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a))
    said = ("student.hardware.strategy: deepspeed needs the deepspeed package, which does not "
            "import here: pip install 'fairspec[deepspeed]' (or pip install deepspeed), or "
            "strategy: fsdp")
    plan, run = made(tmp_path, student="{model: builtin:smollm2-135m-instruct, hardware: "
                                       "{device: cuda, gpus: 2, strategy: deepspeed}}")
    assert run.stage("train").settings["accelerate_config"]["distributed_type"] == "DEEPSPEED"
    assert said in check(plan, [run], ("train",))
    assert said not in check(plan, [run], ("exam",))  # training is not among the stages to run
    plan, run = made(tmp_path, student="{model: builtin:smollm2-135m-instruct, hardware: "
                                       "{device: cuda, gpus: 2, strategy: fsdp}}")
    assert said not in check(plan, [run], ("train",))


def test_an_auto_exam_on_gpus_without_vllm_is_a_loud_warning_before_the_run(tmp_path,
                                                                           monkeypatch):
    from fairspec.dsl import load_spec_text
    from fairspec.plan import compile_plan
    from fairspec.plan.environment import Environment
    from fairspec.run.preflight import run_warnings as warnings

    text = spec_text(teachers(), student="{model: builtin:smollm2-135m-instruct, hardware: "
                                         "{device: auto, gpus: 2, data_parallel: 2}}")
    loaded = load_spec_text(text, base_dir=tmp_path)
    gpus_no_vllm = compile_plan(loaded, Environment(cuda_devices=2, vllm=False))
    run = gpus_no_vllm.runs[0]
    exam = run.stage("exam").settings
    assert (exam["engine"], exam["device"]) == ("hf", "cuda")
    assert exam["replicas"] == {"replicas": 2, "per_replica": 1}
    said = warnings([run], ("exam",))
    assert len(said) == 1 and "vllm does not import here" in said[0]
    assert "pip install vllm" in said[0] and "2 replica(s)" in said[0]
    assert warnings([run], ("teach",)) == []  # no exam or evaluation to run
    with_vllm = compile_plan(loaded, Environment(cuda_devices=2, vllm=True)).runs[0]
    assert with_vllm.stage("exam").settings["engine"] == "vllm"
    assert warnings([with_vllm], ("exam",)) == []
    on_cpu = compile_plan(loaded, Environment()).runs[0]
    assert warnings([on_cpu], ("exam",)) == []  # hf is the engine of a CPU
    asked = compile_plan(load_spec_text(text.replace("{model: builtin:smollm2-135m-instruct,",
                                                     "{model: builtin:smollm2-135m-instruct, "
                                                     "exam: {engine: hf},"), base_dir=tmp_path),
                         Environment(cuda_devices=2, vllm=False)).runs[0]
    assert warnings([asked], ("exam",)) == []  # hf asked for by name: no surprise


def test_run_prints_the_auto_engine_warning_before_anything_runs(tmp_path, monkeypatch):
    """Through the command line: the warning comes before the preflight's problems."""
    monkeypatch.delenv(UNSET, raising=False)
    spec = write_spec(tmp_path, spec_text(
        teachers(), student="{model: ./no-such-model, hardware: {device: cuda, gpus: 1}}",
        output_dir=str(tmp_path / "runs")))
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm imports here: auto picks it, nothing to warn about")
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "run", str(spec)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    flat = " ".join(done.stderr.split())
    assert "warning: katan-test: student.exam.engine is auto on cuda and vllm does not import" \
        in flat and "pip install vllm" in flat
    assert flat.index("warning: katan-test") < flat.index("problem(s) found")
