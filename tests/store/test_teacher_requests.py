"""Tests for fairspec.store.teacher_requests: the teach and review stages send exactly the
requests the recipe names, so the keys the plan's estimate looks up are the stages' keys."""

from __future__ import annotations

from katan_runs import TEST_KEY, svamp_mistakes, teacher_line
from strict_openai import StrictOpenAI

from fairspec.artifacts import read_jsonl
from fairspec.prompting import teach_prompts, user_messages
from fairspec.resources import resolve_path
from fairspec.run.executor import run_stage
from fairspec.store import CallStore
from fairspec.store.teacher_requests import (
    review_messages,
    reviewers_of,
    teach_requests,
    teacher_identity,
)

TEMPLATES = {"rationale": "Explain: {{ question }}",
             "feedback": "{{ question }} was answered {{ student_answer }}, not {{ gold_answer }}"}


def test_teach_requests_are_each_mistakes_rationale_then_its_feedback():
    mistakes = svamp_mistakes(2)
    requests = list(teach_requests(TEMPLATES, iter(mistakes), rationale_sample=2))
    assert [(r.mistake["index"], r.role, r.sample_index) for r in requests] == [
        (0, "rationale", 2), (0, "feedback", 0), (1, "rationale", 2), (1, "feedback", 0)]
    assert requests[1].messages == user_messages(teach_prompts(TEMPLATES, mistakes[0])["feedback"])


def test_reviewers_are_asked_by_name_and_never_about_their_own_rationale_with_exclude_self():
    review = {"teachers": [{"name": "gpt"}, {"name": "claude"}, {"name": "gemini"}],
              "policy": {"exclude_self": True}}
    assert reviewers_of(review, "gpt") == ["claude", "gemini"]
    assert reviewers_of(review, "mistral") == ["claude", "gemini", "gpt"]  # a teacher outside the jury
    review["policy"]["exclude_self"] = False
    assert reviewers_of(review, "gpt") == ["claude", "gemini", "gpt"]


def test_the_stages_store_their_calls_under_the_recipes_keys(tmp_path, katan_key, katan_run):
    with StrictOpenAI(key=TEST_KEY) as server:
        lines = teacher_line("alpha", server.url, model="gpt-4o") + \
            teacher_line("beta", server.url, model="gpt-4.1")
        made = katan_run(lines, base=tmp_path, mistakes=svamp_mistakes(3))
        with CallStore(tmp_path / "calls.sqlite") as store:
            for stage in ("teach", "review"):
                run_stage(made.run, stage, base_dir=tmp_path, store=store)
    teach = made.run.stage("teach").settings
    templates = {role: resolve_path(ref["ref"], tmp_path).read_text(encoding="utf-8")
                 for role, ref in teach["templates"].items()}
    mistakes = list(read_jsonl(made.mistakes))
    expected = {(m["index"], t["name"], role): teacher_identity(t, messages, sample).key
                for t in teach["teachers"]
                for m, role, messages, sample in teach_requests(templates, mistakes)}
    stored = {(r["index"], r["teacher"], r["role"]): r["key"]
              for name in ("rationales.jsonl", "feedback.jsonl")
              for r in read_jsonl(made.run_dir / "teach" / name)}
    assert stored == expected and len(stored) == 3 * 2 * 2
    review = made.run.stage("review").settings
    template = resolve_path(review["template"]["ref"], tmp_path).read_text(encoding="utf-8")
    rationales = {(r["index"], r["teacher"]): r["text"]
                  for r in read_jsonl(made.run_dir / "teach" / "rationales.jsonl")}
    by_name = {t["name"]: t for t in review["teachers"]}
    by_index = {m["index"]: m for m in mistakes}
    reviews = list(read_jsonl(made.run_dir / "review" / "reviews.jsonl"))
    assert len(reviews) == 3 * 2  # each rationale by the other teacher
    for row in reviews:
        assert row["reviewer"] in reviewers_of(review, row["author"])
        messages = review_messages(template, by_index[row["index"]],
                                   rationales[(row["index"], row["author"])])
        assert row["key"] == teacher_identity(by_name[row["reviewer"]], messages).key
