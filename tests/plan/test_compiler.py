"""Spec -> Plan: stages, fingerprints, sharing between variants, hardware mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairspec.dsl import load_spec, load_spec_text
from fairspec.plan import STAGE_NAMES, Environment, compile_plan
from fairspec.plan.estimate import calls_per_mistake, estimate_run, unique_calls_per_mistake

REPO = Path(__file__).resolve().parents[2]
CPU = Environment(cuda_devices=0, vllm=False)
GPU = Environment(cuda_devices=4, vllm=True)


def plan_for(name: str, env: Environment = CPU):
    loaded = load_spec(REPO / "specs" / name)
    return loaded, compile_plan(loaded, env)


def test_every_run_has_the_seven_stages_in_order():
    _, plan = plan_for("logiqa.yaml")
    for run in plan.runs:
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
    assert exam["vllm"] == {"tensor_parallel_size": 1, "dtype": "bfloat16", "seed": 42}


def test_multi_gpu_training_uses_accelerate_with_a_generated_config():
    _, plan = plan_for("gsm8k.yaml", GPU)
    train = plan.runs[0].stage("train").settings
    assert train["command"].startswith("accelerate launch --config_file ")
    assert "--num_processes 4" in train["command"]
    assert train["accelerate_config"]["distributed_type"] == "FSDP"
    assert train["accelerate_config"]["num_processes"] == 4
    assert train["accelerate_config"]["mixed_precision"] == "fp16"
    _, single = plan_for("quickstart.yaml")
    assert single.runs[0].stage("train").settings["command"].startswith("python -m ")


@pytest.mark.parametrize("n,enabled,exclude_self,total", [
    (3, True, True, 12), (3, False, True, 6), (3, True, False, 15), (2, True, True, 6), (1, False, True, 2),
])
def test_calls_per_mistake(n, enabled, exclude_self, total):
    assert calls_per_mistake(n, enabled, exclude_self)["total"] == total


def test_estimate_uses_table6_train_size_and_prices():
    loaded, plan = plan_for("logiqa.yaml")
    estimate = estimate_run(loaded.spec, loaded.base_dir, plan.runs[0], mistake_rate=0.25)
    assert estimate.train_rows == 7376
    assert estimate.mistakes == 1844
    assert estimate.calls == 1844 * 12
    gpt = next(t for t in estimate.teachers if t.name == "gpt")
    expected = (gpt.input_tokens * 0.5 + gpt.output_tokens * 1.5) / 1e6
    assert gpt.usd == pytest.approx(expected)
    assert estimate.usd == pytest.approx(sum(t.usd for t in estimate.teachers))


def test_measured_mistakes_replace_the_estimate(tmp_path):
    loaded, plan = plan_for("quickstart.yaml")
    run = plan.runs[0]
    from dataclasses import replace

    run = replace(run, run_dir=str(tmp_path / "run"))
    exam_dir = tmp_path / "run" / "exam"
    exam_dir.mkdir(parents=True)
    (exam_dir / "mistakes.jsonl").write_text("{}\n{}\n{}\n")
    (exam_dir / "manifest.json").write_text(json.dumps({"fingerprint": run.stage("exam").fingerprint}))
    estimate = estimate_run(loaded.spec, loaded.base_dir, run)
    assert estimate.mistakes == 3 and estimate.mistakes_source.startswith("measured")
    (exam_dir / "manifest.json").write_text(json.dumps({"fingerprint": "stale"}))
    assert estimate_run(loaded.spec, loaded.base_dir, run).mistakes == 8  # 16 rows x 0.5


def test_variants_cost_no_new_teacher_calls():
    loaded, plan = plan_for("logiqa.yaml")
    specs = {plan.runs[0].name: loaded.spec}
    specs.update({r.name: loaded.variants[r.variant].spec for r in plan.runs[1:]})
    fresh = unique_calls_per_mistake(specs, plan)
    assert fresh[plan.runs[0].name] == 12
    assert all(fresh[r.name] == 0 for r in plan.runs[1:])


def test_a_variant_with_a_new_teacher_costs_its_calls():
    text = (REPO / "specs" / "quickstart.yaml").read_text().replace(
        "variants:\n  - name: no-review\n    set: {review.enabled: false}",
        "variants:\n  - name: hotter\n    set: {generation.temperature: 1.2}")
    loaded = load_spec_text(text, base_dir=REPO / "specs")
    plan = compile_plan(loaded, CPU)
    specs = {plan.runs[0].name: loaded.spec, plan.runs[1].name: loaded.variants["hotter"].spec}
    fresh = unique_calls_per_mistake(specs, plan)
    # both teachers override temperature themselves: the shared value changes no request
    assert fresh[plan.runs[1].name] == 0
    text2 = text.replace("{generation.temperature: 1.2}", "{generation.max_tokens: 64}")
    loaded2 = load_spec_text(text2, base_dir=REPO / "specs")
    plan2 = compile_plan(loaded2, CPU)
    specs2 = {plan2.runs[0].name: loaded2.spec, plan2.runs[1].name: loaded2.variants["hotter"].spec}
    assert unique_calls_per_mistake(specs2, plan2)[plan2.runs[1].name] == 6
