"""The review stage's early_exit and gold_check, and its asking order, against the strict
OpenAI stand-in (its ``reply`` answers each request; ``received`` counts them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from katan_runs import TEST_KEY, svamp_mistakes, teacher_line
from strict_openai import ChatCall, StrictOpenAI

from fairspec.artifacts import read_jsonl
from fairspec.run.executor import run_stage
from fairspec.store import CallStore

MISTAKES = svamp_mistakes(4)
GOLD = {m["fields"]["question"]: m["gold"] for m in MISTAKES}
#: teacher -> (its model, the score it gives as a reviewer); distinct models: no two
#: reviewers send the same request
TEACHERS = {"alpha": ("gpt-4o", 2), "beta": ("gpt-4.1", 5), "gamma": ("gpt-4o-mini", 5)}
REVIEWER = "Imagine you are a reviewer"


class Committee:
    """Replies as the three teachers: a rationale that reaches the gold answer (but
    ``wrong``'s, one more than gold), and the reviewer's fixed score."""

    def __init__(self, wrong: str | None = None) -> None:
        self.wrong = wrong

    def __call__(self, call: ChatCall) -> str:
        name = next(n for n, (model, _) in TEACHERS.items() if model == call.model)
        prompt = call.prompt
        if prompt.startswith(REVIEWER):
            return f"The steps check out as far as I can see. [{TEACHERS[name][1]}]"
        if "Student's answer" in prompt:
            return "You added where you should have subtracted."
        gold = next(g for q, g in GOLD.items() if q in prompt)
        answer = gold + 1 if name == self.wrong else gold
        return f"Let's work it out step by step, {name} style. The answer is {answer:g}."


@pytest.fixture
def server(katan_key) -> Iterator[StrictOpenAI]:  # katan_key: KATAN_KEY holds TEST_KEY
    with StrictOpenAI(key=TEST_KEY) as stand_in:
        yield stand_in


def make_run(katan_run, url: str, base: Path, review: str,
             order: tuple[str, ...] = ("alpha", "beta", "gamma")):
    teachers = "".join(teacher_line(n, url, model=TEACHERS[n][0]) for n in order)
    return katan_run(teachers, base=base, mistakes=MISTAKES, review=f"{{{review}}}").run


def review_requests(server: StrictOpenAI) -> list[str]:
    prompts = [b["messages"][-1]["content"] for b in server.bodies]
    return [p for p in prompts if p.startswith(REVIEWER)]


def run_review(run, base: Path) -> tuple[dict, list[dict]]:
    with CallStore(base / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=base, store=store)
        stats = run_stage(run, "review", base_dir=base, store=store)
    return stats, list(read_jsonl(Path(run.run_dir) / "review" / "reviews.jsonl"))


@pytest.mark.slow
def test_without_early_exit_every_reviewer_scores_every_rationale(tmp_path, server, katan_run):
    server.reply = Committee()
    run = make_run(katan_run, server.url, tmp_path, "threshold: 4, early_exit: false")
    stats, rows = run_review(run, tmp_path)
    # N(N-1) = 6 scores per question, each its own request
    assert len(rows) == 4 * 3 * 2 and len(review_requests(server)) == 4 * 3 * 2
    per_question = {i: sum(r["index"] == i for r in rows) for i in range(4)}
    assert per_question == {i: 6 for i in range(4)}
    assert stats["reviews_saved_by_early_exit"] == 0
    # with early exit, alpha's 2 decides beta's and gamma's rationales whenever it comes first
    early = make_run(katan_run, server.url, tmp_path / "early", "threshold: 4")
    assert early.stage("review").fingerprint != run.stage("review").fingerprint
    before = len(review_requests(server))
    early_stats, early_rows = run_review(early, tmp_path / "early")
    assert early_stats["reviews_saved_by_early_exit"] == 8 and len(early_rows) == 16
    assert len(review_requests(server)) - before == 16


@pytest.mark.slow
def test_the_teachers_order_in_the_spec_changes_no_review(tmp_path, server, katan_run):
    server.reply = Committee()
    runs = {order: make_run(katan_run, server.url, tmp_path / "".join(o[0] for o in order),
                            "threshold: 4", order=order)
            for order in (("alpha", "beta", "gamma"), ("gamma", "beta", "alpha"))}
    fingerprints = {r.stage("review").fingerprint for r in runs.values()}
    assert len(fingerprints) == 1
    outputs = []
    for order, run in runs.items():
        _, rows = run_review(run, tmp_path / "".join(o[0] for o in order))
        outputs.append(sorted((r["index"], r["author"], r["reviewer"], r["score"]) for r in rows))
    # alpha (score 2) is asked first by name: gamma's rationales are decided by it alone
    assert outputs[0] == outputs[1]
    assert {(a, r) for _, a, r, _ in outputs[0] if a == "gamma"} == {("gamma", "alpha")}


def test_gold_check_require_asks_no_review_of_a_wrong_rationale(tmp_path, server, katan_run):
    server.reply = Committee(wrong="gamma")
    run = make_run(katan_run, server.url, tmp_path,
                   "threshold: 4, early_exit: false, gold_check: require")
    stats, rows = run_review(run, tmp_path)
    asked = review_requests(server)
    assert len(asked) == 4 * 2 * 2  # gamma's four rationales cost no review call
    assert not any("gamma style" in prompt for prompt in asked)
    assert {r["author"] for r in rows} == {"alpha", "beta"}
    assert all(r["reaches_gold"] is True for r in rows)
    gold = stats["gold_check"]
    assert gold["dropped_before_review"] == 4
    assert gold["per_teacher"]["gamma"]["not_gold_rejected"] == 4
    accepted = list(read_jsonl(Path(run.run_dir) / "review" / "accepted.jsonl"))
    assert accepted and all(a["reaches_gold"] is True and a["teacher"] != "gamma"
                            for a in accepted)


def test_gold_check_report_records_a_wrong_rationale_and_reviews_it(tmp_path, server, katan_run):
    server.reply = Committee(wrong="gamma")
    run = make_run(katan_run, server.url, tmp_path, "threshold: 4, early_exit: false")
    assert run.stage("review").settings["gold_check"] == "report"  # the default
    stats, rows = run_review(run, tmp_path)
    assert len(review_requests(server)) == 4 * 3 * 2
    assert {r["author"] for r in rows if r["reaches_gold"] is False} == {"gamma"}
    assert all(r["reaches_gold"] is True for r in rows if r["author"] != "gamma")
    # beta (5) and alpha (2) average 3.5 on gamma's: rejected, and recorded as not gold
    assert stats["gold_check"]["per_teacher"]["gamma"] == {
        "gold_accepted": 0, "gold_rejected": 0, "not_gold_accepted": 0, "not_gold_rejected": 4}
    assert stats["gold_check"]["dropped_before_review"] == 0


@pytest.mark.parametrize("early_exit,expected", [(True, (3 + 3 + 3, 12)), (False, (12, 12))])
def test_the_plan_counts_n_n_minus_1_reviews_exactly_without_early_exit(tmp_path, early_exit,
                                                                          expected):
    from katan_runs import spec_text

    from fairspec.dsl import load_spec_text
    from fairspec.plan import Environment, compile_plan
    from fairspec.plan.new_calls import unique_calls_per_mistake

    teachers = "".join(teacher_line(n, "http://127.0.0.1:9/v1", model=TEACHERS[n][0])
                       for n in TEACHERS)
    text = spec_text(teachers, review=f"{{threshold: 4, early_exit: {str(early_exit).lower()}}}")
    loaded = load_spec_text(text, base_dir=tmp_path)
    plan = compile_plan(loaded, Environment())
    fresh = unique_calls_per_mistake(plan)
    main = fresh[plan.runs[0].name]
    # 3 rationales + 3 feedback + the reviews: 3..6 with early exit, all 6 without
    assert (main.min, main.max) == expected
