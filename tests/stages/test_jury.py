"""``review.jury``: reviewers that are not teachers (declared like teachers), or a chosen
subset of the teachers, scoring the rationales under the review policy; validated, planned
and priced as the teachers are, and shown in the report's heatmap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from katan_runs import TEST_KEY, spec_text, svamp_mistakes, teacher_line
from strict_openai import ChatCall, StrictOpenAI

from fairspec.artifacts import read_jsonl
from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError
from fairspec.run.executor import run_stage
from fairspec.store import CallStore

MISTAKES = svamp_mistakes(3)
GOLD = {m["fields"]["question"]: m["gold"] for m in MISTAKES}
#: model -> the score it gives as a reviewer (teachers and jurors alike)
SCORES = {"gpt-4o": 1, "gpt-4.1": 1, "gpt-4.1-mini": 5, "gpt-4o-mini": 4}
REVIEWER = "Imagine you are a reviewer"


class Replies:
    """Every model answers as a teacher (a gold rationale, feedback) and as a reviewer
    (its fixed score)."""

    def __call__(self, call: ChatCall) -> str:
        if call.prompt.startswith(REVIEWER):
            return f"Checked each step. [{SCORES[call.model]}]"
        if "Student's answer" in call.prompt:
            return "You added where you should have subtracted."
        gold = next(g for q, g in GOLD.items() if q in call.prompt)
        return f"Step by step ({call.model}). The answer is {gold:g}."


@pytest.fixture
def server(katan_key) -> Iterator[StrictOpenAI]:
    with StrictOpenAI(key=TEST_KEY) as stand_in:
        stand_in.reply = Replies()
        yield stand_in


def juror(name: str, url: str, model: str, **options: str) -> str:
    """A flow mapping of one juror declared like a teacher."""
    extra = "".join(f", {k}: {v}" for k, v in options.items())
    return (f'{{name: {name}, provider: openai, model: {model}, base_url: "{url}", '
            f"api_key_env: KATAN_KEY{extra}}}")


def teachers(url: str) -> str:
    return teacher_line("alpha", url, model="gpt-4o") + teacher_line("beta", url, model="gpt-4.1")


def reviewed_by(server: StrictOpenAI) -> list[str]:
    return [b["model"] for b in server.bodies
            if b["messages"][-1]["content"].startswith(REVIEWER)]


def run_review(run, base: Path) -> tuple[dict, list[dict], list[dict]]:
    with CallStore(base / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=base, store=store)
        stats = run_stage(run, "review", base_dir=base, store=store)
    folder = Path(run.run_dir) / "review"
    return stats, list(read_jsonl(folder / "reviews.jsonl")), list(read_jsonl(folder / "accepted.jsonl"))


def test_a_jury_reviews_instead_of_the_teachers(tmp_path, server, katan_run):
    jury = [juror("judge", server.url, "gpt-4.1-mini"), juror("lenient", server.url, "gpt-4o-mini")]
    run = katan_run(teachers(server.url), base=tmp_path, mistakes=MISTAKES,
                    review=f"{{threshold: 4, early_exit: false, jury: [{', '.join(jury)}]}}").run
    stats, rows, accepted = run_review(run, tmp_path)
    # the teachers (who would score 1) are never asked to review; each juror scores every
    # rationale, its own author being no juror: 3 mistakes x 2 authors x 2 jurors
    assert sorted(set(reviewed_by(server))) == ["gpt-4.1-mini", "gpt-4o-mini"]
    assert len(reviewed_by(server)) == 3 * 2 * 2 == len(rows)
    assert {r["reviewer"] for r in rows} == {"judge", "lenient"}
    assert {(r["reviewer"], r["score"]) for r in rows} == {("judge", 5), ("lenient", 4)}
    # the jury's mean 4.5 >= 4 keeps every rationale; the teachers' 1s would have dropped all
    assert len(accepted) == 6 and {a["aggregate"] for a in accepted} == {4.5}
    assert sorted(stats["mean_score_matrix"]) == ["judge", "lenient"]  # the heatmap's rows
    assert set(stats["mean_score_matrix"]["judge"]) == {"alpha", "beta"}
    # the jurors' calls are the review stage's usage, beside nothing of the teachers'
    assert set(stats["teachers"]) == {"judge", "lenient"}


def test_a_teacher_named_in_the_jury_never_reviews_its_own(tmp_path, server, katan_run):
    jury = f"[alpha, {juror('judge', server.url, 'gpt-4.1-mini')}]"
    run = katan_run(teachers(server.url), base=tmp_path, mistakes=MISTAKES,
                    review=f"{{threshold: 3, early_exit: false, jury: {jury}}}").run
    _, rows, accepted = run_review(run, tmp_path)
    pairs = {(r["reviewer"], r["author"]) for r in rows}
    assert pairs == {("alpha", "beta"), ("judge", "alpha"), ("judge", "beta")}  # beta reviews none
    assert len(rows) == 3 * 3
    # alpha's rationales: judge alone (5) -> kept; beta's: alpha 1 and judge 5 -> mean 3 -> kept
    assert sorted((a["teacher"], a["aggregate"]) for a in accepted) == \
        [("alpha", 5.0)] * 3 + [("beta", 3.0)] * 3


def test_the_jury_is_in_the_review_fingerprint_and_not_in_the_teach_one(tmp_path, server,
                                                                        katan_run):
    plain = katan_run(teachers(server.url), base=tmp_path / "a", mistakes=MISTAKES,
                      review="{threshold: 4}").run
    jury = katan_run(teachers(server.url), base=tmp_path / "b", mistakes=MISTAKES,
                     review=f"{{threshold: 4, jury: [{juror('judge', server.url, 'gpt-4.1-mini')}]}}").run
    assert plain.stage("teach").fingerprint == jury.stage("teach").fingerprint
    assert plain.stage("review").fingerprint != jury.stage("review").fingerprint
    # a jury of all the teachers by name reviews as the teachers do: the same fingerprint
    named = katan_run(teachers(server.url), base=tmp_path / "c", mistakes=MISTAKES,
                      review="{threshold: 4, jury: [beta, alpha]}").run
    assert named.stage("review").fingerprint == plain.stage("review").fingerprint


def _problems(tmp_path: Path, review: str, url: str = "http://127.0.0.1:9/v1") -> list[str]:
    try:
        load_spec_text(spec_text(teachers(url), review=review), base_dir=tmp_path)
    except SpecError as error:
        return [f"{p.path}: {p.message}" for p in error.problems]
    return []


@pytest.mark.parametrize("review,where,says", [
    ("{jury: [gamma]}", "review.jury[0]", "'gamma' is not a teacher"),
    ("{jury: [alpha, alpha]}", "review.jury[1]", "in the jury twice"),
    ('{jury: [{name: alpha, provider: openai, model: gpt-4o, api_key_env: K}]}',
     "review.jury[0].name", "duplicate teacher name 'alpha' (also teachers[0])"),
    ("{jury: [alpha]}", "review.jury", "no juror may review"),
    ('{jury: [{name: j, provider: recorded, model: m}]}', "review.jury[0].provider",
     "a juror cannot be recorded"),
    ('{jury: [{name: j, provider: openai, model: o4-mini, api_key_env: K, '
     'generation: {temperature: 0.3}}]}', "review.jury[0].generation.temperature",
     "refuses temperature"),
    ('{jury: [{name: j, provider: openai, model: gpt-4o, api_key_env: K}], min_valid_scores: 2}',
     "review.min_valid_scores", "more than the 1 reviewer"),
])
def test_validate_locates_a_bad_jury(tmp_path, review, where, says):
    found = _problems(tmp_path, review)
    assert any(p.startswith(where + ":") and says in p for p in found), found


def test_a_good_jury_validates(tmp_path):
    review = ('{jury: [beta, {name: j, provider: openai, model: gpt-4o-mini, api_key_env: K, '
              'price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}]}')
    assert _problems(tmp_path, review) == []


def test_the_plan_counts_and_prices_the_jurys_calls(tmp_path):
    from fairspec.plan import Environment, compile_plan
    from fairspec.plan.estimate import estimate_run

    price = "{input_per_mtok: 1.0, output_per_mtok: 2.0}"
    jury = (f"[{{name: judge, provider: openai, model: gpt-4o-mini, api_key_env: K, price: {price}}}, "
            f"{{name: other, provider: openai, model: gpt-4.1-mini, api_key_env: K, price: {price}}}]")
    url = "http://127.0.0.1:9/v1"
    text = spec_text(teacher_line("alpha", url, price=price) + teacher_line("beta", url, price=price),
                     review=f"{{jury: {jury}, early_exit: false}}")
    loaded = load_spec_text(text, base_dir=tmp_path)
    plan = compile_plan(loaded, Environment())
    est = estimate_run(plan.runs[0], tmp_path, mistakes=10)
    by = {t.name: t for t in est.teachers}
    assert est.per_mistake == {"rationale": 2, "feedback": 2, "review": 4, "total": 8}
    assert (by["judge"].rationale_calls, by["judge"].review_calls) == (0, 20)  # 2 authors x 10
    assert (by["alpha"].rationale_calls, by["alpha"].review_calls) == (10, 0)
    assert by["judge"].usd > 0 and by["alpha"].usd > 0
    assert est.calls == 10 * 8


@pytest.mark.slow
def test_a_jury_of_two_local_models_reviews_a_run_and_the_heatmap_shows_it(
        tmp_path, server, katan_run, tiny_model, monkeypatch):
    from fairspec.report import plots, write_report

    jury = ", ".join(f"{{name: {name}, provider: hf, model: builtin:smollm2-135m-instruct, "
                     f"generation: {{max_tokens: 12, temperature: {t}}}}}"
                     for name, t in (("small-a", 0.7), ("small-b", 0.9)))
    run = katan_run(teachers(server.url), base=tmp_path, mistakes=MISTAKES[:2],
                    review=f"{{threshold: 1, early_exit: false, jury: [{jury}]}}").run
    stats, rows, _ = run_review(run, tmp_path)
    assert reviewed_by(server) == []  # no review went to the stand-in's teachers
    assert {r["reviewer"] for r in rows} == {"small-a", "small-b"} and len(rows) == 2 * 2 * 2
    assert all(r["status"] in ("ok", "truncated") and r["text"] for r in rows)
    run_dir = Path(run.run_dir)
    (run_dir / "run.json").write_text(json.dumps({"name": "jury", "spec": "jury", "variant": None,
                                                  "overrides": {}}))
    saved: dict[str, object] = {}
    real = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.setdefault(Path(path).name, fig)
                        and real(fig, path))
    write_report(run_dir)
    heatmap = saved["review_heatmap.png"]
    ax = heatmap.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["small-a", "small-b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["alpha", "beta"]
    assert sorted(stats["mean_score_matrix"]) == ["small-a", "small-b"]
