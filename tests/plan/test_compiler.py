"""Spec -> Plan: stages, fingerprints, sharing between variants, hardware mapping (the teacher-call
estimate is tested in test_estimate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairspec.dsl import load_spec, load_spec_text
from fairspec.plan import STAGE_NAMES, Environment, compile_plan

REPO = Path(__file__).resolve().parents[2]
CPU = Environment(cuda_devices=0, vllm=False)
GPU = Environment(cuda_devices=4, vllm=True)


def plan_for(name: str, env: Environment = CPU):
    loaded = load_spec(REPO / "specs" / name)
    return loaded, compile_plan(loaded, env)


def test_every_run_has_the_seven_stages_in_order():
    _, plan = plan_for("logiqa.yaml")
    for run in plan.runs:
        if run.variant == "two-rounds":  # round 2's six stages come before the report
            assert tuple(s.name for s in run.stages) == STAGE_NAMES[:-1] + tuple(
                f"round-2/{name}" for name in STAGE_NAMES[:-1]) + ("report",)
            continue
        assert tuple(s.name for s in run.stages) == STAGE_NAMES


def test_alpha_sweep_shares_every_stage_before_training():
    _, plan = plan_for("logiqa.yaml")
    main = plan.runs[0]
    sweep = [r for r in plan.runs if r.origin == "sweep"]
    assert len(sweep) == 5
    for run in sweep:
        for name in ("exam", "teach", "review", "build"):
            assert run.stage(name).fingerprint == main.stage(name).fingerprint
        assert run.stage("train").fingerprint != main.stage("train").fingerprint
    assert len({r.stage("train").fingerprint for r in sweep}) == 5


def test_no_review_variant_shares_exam_and_teach_only():
    _, plan = plan_for("logiqa.yaml")
    main, variant = plan.runs[0], plan.run("no-review")
    assert variant.stage("teach").fingerprint == main.stage("teach").fingerprint
    assert variant.stage("review").fingerprint != main.stage("review").fingerprint


def test_fingerprints_are_stable_and_ignore_throughput_settings(tmp_path):
    base = (REPO / "specs" / "quickstart.yaml").read_text()
    spec_dir = REPO / "specs"
    first = compile_plan(load_spec_text(base, base_dir=spec_dir), CPU)
    again = compile_plan(load_spec_text(base, base_dir=spec_dir), CPU)
    assert [s.fingerprint for s in first.runs[0].stages] == [s.fingerprint for s in again.runs[0].stages]
    tuned = base.replace("    batch_size: 16", "    batch_size: 3").replace(
        "    generation: {temperature: 0.3}", "    generation: {temperature: 0.3}\n    concurrency: 2")
    assert tuned != base
    other = compile_plan(load_spec_text(tuned, base_dir=spec_dir), CPU)
    assert [s.fingerprint for s in other.runs[0].stages] == [s.fingerprint for s in first.runs[0].stages]


def test_teacher_sampling_change_invalidates_teach_but_not_exam():
    base = (REPO / "specs" / "quickstart.yaml").read_text()
    changed = base.replace("  max_tokens: 128", "  max_tokens: 256")
    a = compile_plan(load_spec_text(base, base_dir=REPO / "specs"), CPU).runs[0]
    b = compile_plan(load_spec_text(changed, base_dir=REPO / "specs"), CPU).runs[0]
    assert a.stage("exam").fingerprint == b.stage("exam").fingerprint
    assert a.stage("teach").fingerprint != b.stage("teach").fingerprint
    assert a.stage("train").fingerprint != b.stage("train").fingerprint  # downstream follows


def test_template_content_is_part_of_the_fingerprint(tmp_path):
    spec = (REPO / "specs" / "quickstart.yaml").read_text().replace(
        "path: builtin:data/svamp-mini", f"path: {REPO}/fairspec/resources/data/svamp-mini")
    spec += "prompts:\n  exam: exam.j2\n"
    (tmp_path / "exam.j2").write_text("Solve: {{ question }}")
    first = compile_plan(load_spec_text(spec, base_dir=tmp_path), CPU).runs[0]
    (tmp_path / "exam.j2").write_text("Solve carefully: {{ question }}")
    second = compile_plan(load_spec_text(spec, base_dir=tmp_path), CPU).runs[0]
    assert first.stage("exam").fingerprint != second.stage("exam").fingerprint


def test_local_dataset_content_is_part_of_the_fingerprint(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text('{"question_concat": "1+1?", "Answer": 2}\n')
    spec = (REPO / "specs" / "quickstart.yaml").read_text().replace(
        "path: builtin:data/svamp-mini", "path: data")
    first = compile_plan(load_spec_text(spec, base_dir=tmp_path), CPU).runs[0]
    (data / "train.jsonl").write_text('{"question_concat": "1+2?", "Answer": 3}\n')
    second = compile_plan(load_spec_text(spec, base_dir=tmp_path), CPU).runs[0]
    assert first.stage("exam").fingerprint != second.stage("exam").fingerprint
    assert first.stage("evaluate").settings["base_fingerprint"] == \
        second.stage("evaluate").settings["base_fingerprint"]  # test split unchanged


def test_auto_engine_picks_vllm_only_with_gpu_and_vllm():
    _, cpu_plan = plan_for("students/logiqa-qwen2.5-1.5b.yaml", CPU)
    _, gpu_plan = plan_for("students/logiqa-qwen2.5-1.5b.yaml", GPU)
    assert cpu_plan.runs[0].stage("exam").settings["engine"] == "hf"
    exam = gpu_plan.runs[0].stage("exam").settings
    assert exam["engine"] == "vllm"
    assert exam["vllm"] == {"tensor_parallel_size": 1, "data_parallel_size": 1,
                            "dtype": "bfloat16", "seed": 42}


def test_multi_gpu_training_uses_accelerate_with_a_generated_config():
    _, plan = plan_for("gsm8k.yaml", GPU)
    train = plan.runs[0].stage("train").settings
    assert train["layout"] == {"launcher": "accelerate", "nodes": 1, "processes": 4,
                               "world_size": 4}
    assert train["accelerate_config"]["distributed_type"] == "FSDP"
    assert train["accelerate_config"]["num_processes"] == 4
    assert train["accelerate_config"]["mixed_precision"] == "fp16"
    _, single = plan_for("quickstart.yaml")
    assert single.runs[0].stage("train").settings["layout"]["launcher"] == "inline"


def test_the_graph_check_refuses_an_input_the_fingerprint_does_not_follow():
    from fairspec.errors import PlanError
    from fairspec.plan.compiler import check_graph
    from fairspec.plan.graph import Input, Output, Stage

    def stage(name, after=(), inputs=(), outputs=("out.json",)):
        return Stage(name=name, kind=name, fingerprint=name, settings={}, identity={},
                     after=tuple(after), inputs=tuple(Input(*i) for i in inputs),
                     outputs=tuple(Output(o) for o in outputs))

    check_graph("r", [stage("a"), stage("b", ["a"]), stage("c", ["b"], [("a", "out.json")])])
    with pytest.raises(PlanError, match="stage c reads a/out.json, but its fingerprint"):
        check_graph("r", [stage("a"), stage("b"), stage("c", ["b"], [("a", "out.json")])])
    with pytest.raises(PlanError, match="which a does not declare"):
        check_graph("r", [stage("a"), stage("c", ["a"], [("a", "model/")])])


def test_plan_json_declares_each_stages_inputs_and_outputs(tmp_path):
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "plan",
                           str(REPO / "specs" / "quickstart.yaml"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stages = {s["name"]: s for s in json.loads(done.stdout)["runs"][0]["stages"]}
    assert stages["build"]["inputs"] == ["exam/mistakes.jsonl", "teach/feedback.jsonl",
                                         "review/accepted.jsonl"]
    assert stages["build"]["after"] == ["review"]
    evaluate = {o["name"]: o["required"] for o in stages["evaluate"]["outputs"]}
    assert evaluate == {"predictions-base.jsonl": False, "predictions-tuned.jsonl": False,
                        "base.jsonl": False, "metrics.json": True}
    # the one file a stage rewrites inside an input: the tuned model's card
    assert stages["evaluate"]["amends"] == ["train/model/README.md"]
    assert {name: s["amends"] for name, s in stages.items() if s["amends"]} == \
        {"evaluate": ["train/model/README.md"]}
    assert "review/accepted.jsonl" in stages["report"]["inputs"]  # the sample browser's


def test_a_rewrite_outside_every_input_is_a_plan_error():
    from fairspec.errors import PlanError
    from fairspec.plan.compiler import check_graph
    from fairspec.plan.graph import Input, Stage

    train = Stage(name="train", kind="train", fingerprint="a", settings={}, identity={},
                  after=(), inputs=(), outputs=())
    evaluate = Stage(name="evaluate", kind="evaluate", fingerprint="b", settings={}, identity={},
                     after=("train",), inputs=(), outputs=(),
                     amends=(Input("train", "model/README.md"),))
    with pytest.raises(PlanError, match="rewrites train/model/README.md, which is inside none"):
        check_graph("r", [train, evaluate])


def test_local_teachers_run_on_the_students_device_and_dtype():
    from fairspec.teachers.committee import make_provider

    text = (REPO / "specs" / "quickstart.yaml").read_text()
    on_gpu = text.replace("    device: cpu\n    dtype: fp32\n", "    device: auto\n    dtype: auto\n")
    assert on_gpu != text
    for source, env, where in ((text, GPU, ("cpu", "fp32")), (on_gpu, GPU, ("cuda", "bf16")),
                               (on_gpu, CPU, ("cpu", "fp32"))):
        plan = compile_plan(load_spec_text(source, base_dir=REPO / "specs"), env)
        teachers = plan.runs[0].stage("teach").settings["teachers"]
        assert {(t["device"], t["dtype"]) for t in teachers} == {where}
        provider = make_provider(teachers[0], REPO / "specs")  # loads no model yet
        assert (provider.device, provider.dtype) == where
