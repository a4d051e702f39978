"""The teacher-call estimate of a plan (fairspec.plan.estimate): calls per mistake, the cost from
the train size and prices, measured mistakes, and what variants add."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fairspec.dsl import load_spec, load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.plan.estimate import calls_per_mistake, estimate_run, unique_calls_per_mistake

REPO = Path(__file__).resolve().parents[2]
CPU = Environment(cuda_devices=0, vllm=False)


def plan_for(name: str, env: Environment = CPU):
    loaded = load_spec(REPO / "specs" / name)
    return loaded, compile_plan(loaded, env)


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
    run = replace(plan.runs[0], run_dir=str(tmp_path / "run"))
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
