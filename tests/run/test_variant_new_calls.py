"""What a sub-committee variant pays after the main run, with early exit on, against what
``fairspec plan`` says (issue #16): real HTTP (llm-katan, echo backend), the teach and review
stages of the main run and then of each variant, sharing one call store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from katan_runs import requests_served, spec_text, svamp_mistakes, teacher_line, write_mistakes

from fairspec.artifacts import read_jsonl
from fairspec.dsl import load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.plan.calls_view import output_tokens_line
from fairspec.plan.estimate import estimate_run
from fairspec.plan.new_calls import unique_calls_per_mistake
from fairspec.plan.priors import OUTPUT_TOKEN_PRIORS
from fairspec.run.executor import run_stage
from fairspec.store import CallStore

MISTAKES = 4
#: The echo backend returns the prompt, and the last bracketed number of a reply is its score:
#: this review template makes every score 2, so with mean >= 4 on 1-5 the first reviewer of a
#: rationale decides (2 + 5 < 8) and the main run skips every second reviewer.
LOW_SCORE_REVIEW = ("Score the rationale.\nQuestion: {{ question }}\nRationale: {{ rationale }}\n"
                    "Hint: the answer is {{ gold_answer }}.\nReply with one number: [2]\n")
VARIANTS = "[{name: ag, set: {teachers: [alpha, gamma]}}, {name: gb, set: {teachers: [gamma, beta]}}]"


def make_plan(tmp_path: Path, url: str, review_template: str | None):
    # distinct temperatures: the echoed rationales differ, so no two authors' reviews coincide
    teachers = "".join(teacher_line(name, url, generation=f"{{temperature: {t}}}")
                       for name, t in (("alpha", 0.1), ("beta", 0.2), ("gamma", 0.3)))
    sections = {"review": "{threshold: 4}", "variants": VARIANTS, "output_dir": "runs"}
    if review_template is not None:
        (tmp_path / "review.j2").write_text(review_template)
        sections["prompts"] = "{review: review.j2}"
    loaded = load_spec_text(spec_text(teachers, **sections), base_dir=tmp_path)
    plan = compile_plan(loaded, Environment())
    for run in plan.runs:
        write_mistakes(Path(run.run_dir), svamp_mistakes(MISTAKES))
    main = plan.runs[0]
    (Path(main.run_dir) / "exam" / "manifest.json").write_text(
        json.dumps({"fingerprint": main.stage("exam").fingerprint}))
    return loaded, plan


def run_teacher_stages(plan, run, store) -> None:
    for stage in ("teach", "review"):
        run_stage(run, stage, base_dir=Path(plan.base_dir), store=store)


@pytest.mark.parametrize("template,expected", [
    # every review scores 2: the main run skips the reviews the variants need, all of them
    (LOW_SCORE_REVIEW, {"ag": 1, "gb": 2}),
    # no review has a score (the builtin template gives no example to echo): no early exit,
    # nothing new
    (None, {"ag": 0, "gb": 0}),
])
def test_variant_new_calls_stay_within_the_plans_range(tmp_path, katan, katan_key, template, expected):
    loaded, plan = make_plan(tmp_path, katan.openai_url, template)
    fresh = unique_calls_per_mistake(plan)
    main, *variants = plan.runs
    # the plan: main 3 + 3 + 3..6; ag's review of alpha by gamma and gb's two reviews are
    # second reviewers in the main run, which its early exit may skip
    assert (fresh[main.name].min, fresh[main.name].max) == (9, 12)
    assert {r.variant: (fresh[r.name].min, fresh[r.name].max) for r in variants} == {
        "ag": (0, 1), "gb": (0, 2)}
    with CallStore(plan.call_store) as store:
        before = requests_served(katan)
        run_teacher_stages(plan, main, store)
        served_main = requests_served(katan) - before
        assert 9 * MISTAKES <= served_main <= 12 * MISTAKES
        for run in variants:
            before = requests_served(katan)
            run_teacher_stages(plan, run, store)
            served = requests_served(katan) - before
            new = fresh[run.name]
            assert new.min * MISTAKES <= served <= new.max * MISTAKES, run.variant
            assert served == expected[run.variant] * MISTAKES, run.variant
    if template is not None:  # the bound is not vacuous: a variant pays, as much as it says
        assert served_main == 9 * MISTAKES


def test_measured_output_lengths_replace_the_priors(tmp_path, katan, katan_key):
    loaded, plan = make_plan(tmp_path, katan.openai_url, LOW_SCORE_REVIEW)
    main = plan.runs[0]
    before = estimate_run(main, loaded.base_dir)
    prior = OUTPUT_TOKEN_PRIORS["math"]
    assert before.output_lengths["measured"] == {}
    assert all(t.per_call["rationale"]["output"] == prior["rationale"] for t in before.teachers)
    with CallStore(plan.call_store) as store:
        run_teacher_stages(plan, main, store)
        records = {r.key: r for r in store.records()}
    after = estimate_run(main, loaded.base_dir)
    run_dir = Path(main.run_dir)
    made = {"rationale": list(read_jsonl(run_dir / "teach" / "rationales.jsonl")),
            "feedback": list(read_jsonl(run_dir / "teach" / "feedback.jsonl")),
            "review": [{**r, "teacher": r["reviewer"]}
                       for r in read_jsonl(run_dir / "review" / "reviews.jsonl")]}
    for teacher in after.teachers:
        for role, rows in made.items():
            tokens = [records[r["key"]].output_tokens for r in rows if r["teacher"] == teacher.name]
            if not tokens:  # gamma is every rationale's second reviewer: early exit skips it
                assert (teacher.name, role) == ("gamma", "review")
                assert teacher.per_call[role]["output"] == prior[role]
                assert role not in after.output_lengths["from_call_store"][teacher.name]
                continue
            mean = sum(tokens) / len(tokens)
            assert teacher.per_call[role]["output"] == round(mean), (teacher.name, role)
            measured = after.output_lengths["measured"][teacher.name][role]
            assert measured["calls"] == len(tokens)
            assert teacher.per_call[role]["output"] != prior[role]  # the echo is not 82/141/50 long
        assert teacher.output_tokens == MISTAKES * (  # 2 reviews each: the upper bound
            teacher.per_call["rationale"]["output"] + teacher.per_call["feedback"]["output"]
            + 2 * teacher.per_call["review"]["output"])
    said = output_tokens_line(after)
    alpha_rt = after.output_lengths["measured"]["alpha"]["rationale"]
    assert (f"measured in this run's call store, used instead of the prior: alpha: rationale "
            f"{alpha_rt['mean']:g} ({MISTAKES} calls)") in said
    # a variant's run folder has no exam of its own yet: it reads its sibling's, and its
    # teachers' lengths are the main run's calls
    variant = plan.run("ag")
    sub = estimate_run(variant, loaded.base_dir)
    assert sub.output_lengths["from_call_store"]["alpha"] == ["rationale", "feedback", "review"]
    alpha = next(t for t in after.teachers if t.name == "alpha")
    sub_alpha = next(t for t in sub.teachers if t.name == "alpha")
    assert sub_alpha.per_call["rationale"] == alpha.per_call["rationale"]
