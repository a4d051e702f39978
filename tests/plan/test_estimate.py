"""The teacher-call estimate of a plan (fairspec.plan.estimate): calls per mistake, the cost from
the train size and prices, measured mistakes, output-length priors, what variants add, and how
early exit makes that a range."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from itertools import product
from pathlib import Path

import pytest
from rich.console import Console

from fairspec.dsl import load_spec, load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.plan.early_exit import review_reach
from fairspec.plan.estimate import calls_per_mistake, estimate_run
from fairspec.plan.new_calls import unique_calls_per_mistake
from fairspec.plan.priors import (
    OUTPUT_TOKEN_PRIORS,
    PRIOR_RECORDS,
    REVIEW_OUTPUT_TOKENS,
    measure_authors_records,
)
from fairspec.plan.render import plan_json, print_plan
from fairspec.review import ReviewPolicy

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
    estimate = estimate_run(plan.runs[0], loaded.base_dir, mistake_rate=0.25)
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
    estimate = estimate_run(run, loaded.base_dir)
    assert estimate.mistakes == 3 and estimate.mistakes_source.startswith("measured")
    (exam_dir / "manifest.json").write_text(json.dumps({"fingerprint": "stale"}))
    assert estimate_run(run, loaded.base_dir).mistakes == 8  # 16 rows x 0.5


def test_variants_new_calls_are_a_range_where_early_exit_may_skip_their_reviews():
    loaded, plan = plan_for("logiqa.yaml")
    fresh = unique_calls_per_mistake(plan)
    main = fresh[plan.runs[0].name]
    # main: 3 rationale + 3 feedback + 3..6 reviews (each rationale's second reviewer may be skipped)
    assert (main.min, main.max) == (9, 12) and main.skipped_here == 3
    spans = {r.variant: (fresh[r.name].min, fresh[r.name].max) for r in plan.runs[1:]}
    # reviewers are asked by name, gemini, gpt, mixtral: the main run always asks gemini about
    # gpt's and mixtral's rationales and gpt about gemini's; mixtral-gpt needs mixtral on gpt's
    # and gpt on mixtral's, mixtral-gemini mixtral on gemini's, which the main run may skip
    assert spans["mixtral-gpt"] == (0, 2) and spans["mixtral-gemini"] == (0, 1)
    assert spans["gemini-gpt"] == (0, 0)
    assert all(spans[v] == (0, 0) for v in ("only-gpt", "only-gemini", "only-mixtral", "no-review"))
    sub = fresh[plan.run("mixtral-gemini").name]
    assert sub.max_by_role == {"rationale": 0, "feedback": 0, "review": 1}
    assert sub.max_calls == {("mixtral", "review"): 1} and sub.skipped_earlier == 1
    assert "early exit of the runs above" in sub.why()


def test_a_variant_with_a_new_teacher_costs_its_calls():
    text = (REPO / "specs" / "quickstart.yaml").read_text().replace(
        "variants:\n  - name: no-review\n    set: {review.enabled: false}",
        "variants:\n  - name: hotter\n    set: {generation.temperature: 1.2}")
    loaded = load_spec_text(text, base_dir=REPO / "specs")
    plan = compile_plan(loaded, CPU)
    fresh = unique_calls_per_mistake(plan)
    # both teachers override temperature themselves: the shared value changes no request
    assert fresh[plan.runs[1].name].max == 0
    text2 = text.replace("{generation.temperature: 1.2}", "{generation.max_tokens: 64}")
    loaded2 = load_spec_text(text2, base_dir=REPO / "specs")
    plan2 = compile_plan(loaded2, CPU)
    new = unique_calls_per_mistake(plan2)[plan2.runs[1].name]
    assert (new.min, new.max) == (6, 6)  # one reviewer per rationale: always asked


def simulate(policy: ReviewPolicy, reviewers: int) -> list[tuple[bool, bool]]:
    """The review stage's loop over every sequence of text scores: (always, sometimes) asked."""
    low, high = policy.score_range
    asked = [[] for _ in range(reviewers)]
    for scores in product([None, *range(low, high + 1)], repeat=reviewers):
        got: list = []
        for i in range(reviewers):
            made = policy.decision(got, reviewers - i) is None
            asked[i].append(made)
            if not made:
                break
            got.append(scores[i])
        for j in range(len(got) + (0 if len(got) == reviewers else 1), reviewers):
            asked[j].append(False)
    return [(all(a), any(a)) for a in asked]


@pytest.mark.parametrize("policy", [
    ReviewPolicy(), ReviewPolicy(accept=">", threshold=3), ReviewPolicy(aggregate="min"),
    ReviewPolicy(aggregate="median", threshold=3), ReviewPolicy(threshold=1),
    ReviewPolicy(threshold=5, accept=">"), ReviewPolicy(min_valid_scores=2),
    ReviewPolicy(min_valid_scores=4), ReviewPolicy(threshold=4.5, score_range=(0, 10)),
])
@pytest.mark.parametrize("reviewers", [1, 2, 3, 4])
def test_review_reach_matches_the_review_loop(policy, reviewers):
    assert review_reach(policy, reviewers) == simulate(policy, reviewers)


def test_review_reach_with_real_scores_never_says_less_than_may():
    # logprobs scores are real-valued: "may be asked" stays true wherever any review is asked
    reach = review_reach(ReviewPolicy(), 3, scoring="logprobs")
    assert reach == [(True, True), (False, True), (False, True)]
    assert review_reach(ReviewPolicy(min_valid_scores=4), 3, scoring="logprobs") == [(False, False)] * 3


def test_plan_json_states_both_bounds_and_totals_use_the_upper_one():
    loaded, plan = plan_for("gsm8k.yaml")
    estimates = {r.name: estimate_run(r, loaded.base_dir, mistakes=100)
                 for r in plan.runs}
    fresh = unique_calls_per_mistake(plan)
    data = plan_json(plan, estimates, fresh, None)
    runs = {r["variant"]: r for r in data["runs"]}
    assert (runs["mixtral-gemini"]["new_calls_per_mistake"],
            runs["mixtral-gemini"]["new_calls_per_mistake_max"]) == (0, 1)
    assert runs["mixtral-gemini"]["new_calls"]["max_by_role"]["review"] == 1
    assert (runs[None]["new_calls_per_mistake"], runs[None]["new_calls_per_mistake_max"]) == (9, 12)
    totals = data["totals"]
    assert totals["calls"] == 100 * (12 + 2 + 1) and totals["calls_min"] == 100 * 9
    main = estimates[plan.runs[0].name]
    assert totals["main_run_calls"] == 1200
    # the upper bound pays for the variants' reviews: mixtral's on two rationales, gpt's on one
    mixtral = next(t for t in main.teachers if t.name == "mixtral")
    gpt = next(t for t in main.teachers if t.name == "gpt")
    extra = 100 * (2 * mixtral.usd_per_call["review"] + gpt.usd_per_call["review"])
    assert totals["usd"] == pytest.approx(main.usd + extra)
    assert totals["usd_min"] < main.usd < totals["usd"]


def render_plan(name: str, **kwargs) -> str:
    loaded, plan = plan_for(name)
    estimates = {r.name: estimate_run(r, loaded.base_dir, **kwargs) for r in plan.runs}
    out = io.StringIO()
    print_plan(Console(file=out, width=200, color_system=None), plan, estimates,
               unique_calls_per_mistake(plan), loaded.spec.budget.max_usd)
    return out.getvalue()


def test_plan_prints_the_variants_ranges_and_the_length_assumption():
    text = render_plan("gsm8k.yaml")
    assert "mixtral-gemini: 0-1 new review calls per mistake: up to 1 review(s) that the early exit" in text
    assert "mixtral-gpt: 0-2 new review calls per mistake" in text
    assert "= 12 at most; at least 9 (3 review)" in text
    assert ("Output tokens per call assumed: rationale 82, feedback 141, review 50 "
            "(authors' records, math: SVAMP") in text
    assert "The variants add 0-3 new teacher request(s) per mistake" in text
    boolean = render_plan("strategyqa.yaml")
    assert "none were released for boolean, so the math lengths stand in" in boolean


# -- output lengths -----------------------------------------------------------------------------


def test_priors_are_what_the_authors_records_measure(shared_data):
    measured = measure_authors_records(shared_data / "fair-authors-record")
    for role, (_, texts) in PRIOR_RECORDS.items():
        assert measured[role]["texts"] == texts
        assert round(measured[role]["mean"]) == OUTPUT_TOKEN_PRIORS["math"][role]
    per = measured["rationale"]["per_teacher"]
    # the per-sample lengths: rationale + feedback, chars/4
    sample = {t: per[t] + measured["feedback"]["per_teacher"][t] for t in per}
    assert [round(sample[t]) for t in ("gpt", "gemini", "mistral")] == [207, 176, 286]


def test_the_estimate_uses_the_priors_capped_at_max_tokens(tmp_path):
    loaded, plan = plan_for("svamp.yaml")
    est = estimate_run(plan.runs[0], loaded.base_dir, mistakes=10)
    prior = OUTPUT_TOKEN_PRIORS["math"]
    for t in est.teachers:
        assert {r: c["output"] for r, c in t.per_call.items()} == prior
        assert t.output_tokens == 10 * (prior["rationale"] + prior["feedback"] + 2 * prior["review"])
    assert est.output_lengths["measured"] == {} and est.output_lengths["from_call_store"] == {}
    # max_tokens 128 < the feedback prior; a copy, so that a run of the README's main command in
    # this checkout (runs/quickstart, measured lengths) does not change the estimate
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "quickstart.yaml").write_text((REPO / "specs" / "quickstart.yaml").read_text())
    quick = load_spec(tmp_path / "specs" / "quickstart.yaml")
    qplan = compile_plan(quick, CPU)
    small = estimate_run(qplan.runs[0], quick.base_dir, mistakes=1)
    assert all(t.per_call["feedback"]["output"] == 128 for t in small.teachers)
    assert all(t.per_call["review"]["output"] == REVIEW_OUTPUT_TOKENS for t in small.teachers)
