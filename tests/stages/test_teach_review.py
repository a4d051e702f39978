"""Teach and review stages over real HTTP (llm-katan, echo backend), with the call store."""

from __future__ import annotations

from pathlib import Path

import pytest
from katan_runs import ECHOED_REVIEW, KEY_ENV, committee, requests_served, teacher_line

from fairspec.artifacts import is_done, read_jsonl
from fairspec.run.executor import run_stage
from fairspec.store import CallStore


def make_run(katan_run, url: str, threshold: int = 4, base: Path | None = None, review: str = "",
             template: Path | None = ECHOED_REVIEW):
    """alpha (priced), beta and gamma on ``url``; 4 svamp-mini mistakes answered 7; reviews
    asked with ``template`` (None: the builtin P_pr)."""
    teachers = (teacher_line("alpha", url, price="{input_per_mtok: 1.0, output_per_mtok: 2.0}")
                + committee(url, ("beta", "gamma")))
    prompts = {"prompts": f"{{review: {template}}}"} if template is not None else {}
    return katan_run(teachers, base=base, mistakes=4,
                     review=f"{{threshold: {threshold}{review}}}", **prompts).run


def test_teach_then_review_store_every_call_and_repeat_none(tmp_path, katan, katan_key, katan_run):
    run = make_run(katan_run, katan.openai_url)
    before = requests_served(katan)
    with CallStore(tmp_path / "calls.sqlite") as store:
        teach = run_stage(run, "teach", base_dir=tmp_path, store=store)
        assert teach["calls_made"] == 4 * 3 * 2
        rationales = list(read_jsonl(tmp_path / "run" / "teach" / "rationales.jsonl"))
        feedback = list(read_jsonl(tmp_path / "run" / "teach" / "feedback.jsonl"))
        assert {(r["index"], r["teacher"]) for r in rationales} == {
            (i, t) for i in range(4) for t in ("alpha", "beta", "gamma")}
        assert all("Student's answer: The answer is 7." in f["text"] for f in feedback)  # echo
        assert teach["teachers"]["alpha"]["usd"] > 0 and teach["teachers"]["beta"]["usd"] is None
        review = run_stage(run, "review", base_dir=tmp_path, store=store)
        # the echoed review prompt ends with "My score: [4]": every score is 4
        assert review["reviews_made"] == 4 * 3 * 2 and review["invalid_scores"] == 0
        assert review["accepted"] == 12
        assert review["mean_score_matrix"]["alpha"] == {"alpha": None, "beta": 4.0, "gamma": 4.0}
        # echoed rationales of one question can be identical text: their reviews are the
        # same request, answered once
        served = requests_served(katan) - before
        assert served == store.count() <= 48
    assert is_done(tmp_path / "run" / "teach", run.stage("teach").fingerprint)
    build = run_stage(run, "build", base_dir=tmp_path)
    assert build["samples"] == 4 and build["examples"] == 8  # random_one: one of each
    from datasets import load_from_disk

    dataset = load_from_disk(str(tmp_path / "run" / "build" / "dataset"))
    assert sorted(set(dataset["kind"])) == ["feedback", "rationale"] and len(dataset) == 8
    # a rerun after the stage folders are lost pays for nothing: the store answers
    for stage in ("teach", "review"):
        (tmp_path / "run" / stage / "manifest.json").unlink()
    with CallStore(tmp_path / "calls.sqlite") as store:
        again = run_stage(run, "teach", base_dir=tmp_path, store=store)
        assert again["calls_made"] == 0 and again["calls"] == 24
        run_stage(run, "review", base_dir=tmp_path, store=store)
    assert requests_served(katan) - before == served


def test_an_echo_of_the_builtin_review_prompt_has_no_score(tmp_path, katan, katan_key, katan_run):
    # the builtin P_pr gives no example score: a reviewer that only repeats it scores nothing
    run = make_run(katan_run, katan.openai_url, template=None)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        review = run_stage(run, "review", base_dir=tmp_path, store=store)
    rows = list(read_jsonl(tmp_path / "run" / "review" / "reviews.jsonl"))
    assert rows and all("Imagine you are a reviewer" in r["text"] for r in rows)
    assert review["invalid_scores"] == len(rows) == 4 * 3 * 2 and review["accepted"] == 0


class Recorder:
    def __init__(self):
        self.totals, self.done, self.finished = {}, {}, []

    def start(self, stage, totals):
        self.totals[stage] = dict(totals)

    def update(self, stage, caller):
        self.done[(stage, caller.name)] = caller.usage.calls

    def finish(self, stage):
        self.finished.append(stage)


def test_progress_sees_every_teacher_reach_its_total(tmp_path, katan, katan_key, katan_run):
    run = make_run(katan_run, katan.openai_url)
    recorder = Recorder()
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store, progress=recorder)
        run_stage(run, "review", base_dir=tmp_path, store=store, progress=recorder)
    assert recorder.totals["teach"] == {"alpha": 8, "beta": 8, "gamma": 8}
    assert recorder.totals["review"] == {"alpha": 8, "beta": 8, "gamma": 8}
    assert all(recorder.done[("teach", t)] == 8 for t in ("alpha", "beta", "gamma"))
    assert recorder.finished == ["teach", "review"]


def test_review_exits_early_when_the_decision_is_made(tmp_path, katan, katan_key, katan_run):
    # threshold 5 with mean: the first score of 4 makes a mean of 5 impossible
    run = make_run(katan_run, katan.openai_url, threshold=5)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        review = run_stage(run, "review", base_dir=tmp_path, store=store)
    assert review["reviews_made"] == 12 and review["reviews_saved_by_early_exit"] == 12
    assert review["accepted"] == 0


@pytest.mark.parametrize("fallback", ["text", "none"])
def test_logprob_scoring_falls_back_to_the_text_score_where_the_server_sends_none(
        tmp_path, katan, katan_key, katan_run, fallback):
    """llm-katan answers ``logprobs: null``: each review is scored from its text ("[4]" in the
    echo) and says so, or, with scoring_fallback: none, has no score."""
    run = make_run(katan_run, katan.openai_url,
                   review=f", scoring: logprobs, scoring_fallback: {fallback}")
    reviewer = run.stage("review").settings["teachers"][0]
    assert reviewer["generation"]["score_logprobs"] == [1, 5]  # asked of every review call
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        review = run_stage(run, "review", base_dir=tmp_path, store=store)
        stored = [store.get(r["key"]) for r in read_jsonl(tmp_path / "run" / "review" / "reviews.jsonl")]
    rows = list(read_jsonl(tmp_path / "run" / "review" / "reviews.jsonl"))
    assert rows and all(r["distribution"] is None for r in rows)
    assert all(record.score_logprobs is None and record.settings["score_logprobs"] == [1, 5]
               for record in stored)
    assert review["scoring"] == {"method": "logprobs", "fallback": fallback}
    if fallback == "text":
        assert {r["scored_by"] for r in rows} == {"text"} and {r["score"] for r in rows} == {4}
        assert review["scored_by"] == {"logprobs": 0, "logprobs-forced": 0, "text": len(rows),
                                       "none": 0}
        assert review["accepted"] == 12
    else:
        assert {r["scored_by"] for r in rows} == {None} and {r["score"] for r in rows} == {None}
        assert review["scored_by"]["none"] == len(rows) and review["accepted"] == 0


def test_a_fatal_provider_error_stops_the_stage_and_keeps_nothing_half_done(tmp_path, start_katan,
                                                                             katan_run, monkeypatch):
    server = start_katan("--validate-keys")
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-0000000000000000")
    run = make_run(katan_run, server.openai_url)
    from fairspec.errors import TeacherStopped

    with CallStore(tmp_path / "calls.sqlite") as store, pytest.raises(TeacherStopped) as caught:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
    assert "sk-wrong-key" not in str(caught.value)
    assert not is_done(tmp_path / "run" / "teach", run.stage("teach").fingerprint)


def test_replay_reproduces_the_teacher_outputs_without_a_key_or_a_server(tmp_path, katan, katan_key,
                                                                         katan_run, monkeypatch):
    from fairspec.store import load_replay

    run = make_run(katan_run, katan.openai_url)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        run_stage(run, "review", base_dir=tmp_path, store=store)
        store.export_jsonl(tmp_path / "calls.jsonl")
    recorded = {name: (tmp_path / "run" / stage / name).read_text()
                for stage, name in (("teach", "rationales.jsonl"), ("teach", "feedback.jsonl"),
                                    ("review", "accepted.jsonl"))}
    # another machine: a fresh store, no key, and the server's address unreachable
    monkeypatch.delenv(KEY_ENV)
    other = make_run(katan_run, katan.openai_url, base=tmp_path / "other")
    replay = load_replay(tmp_path / "calls.jsonl")
    with CallStore(tmp_path / "other" / "calls.sqlite") as store:
        teach = run_stage(other, "teach", base_dir=tmp_path, store=store, replay=replay)
        run_stage(other, "review", base_dir=tmp_path, store=store, replay=replay)
    assert teach["calls_made"] == 0 and teach["teachers"]["alpha"]["replayed"] == 8
    for (stage, name), text in zip(
            (("teach", "rationales.jsonl"), ("teach", "feedback.jsonl"), ("review", "accepted.jsonl")),
            recorded.values(), strict=True):
        assert (tmp_path / "other" / "run" / stage / name).read_text() == text


def test_replay_of_a_changed_prompt_is_a_clear_error(tmp_path, katan, katan_key, katan_run):
    from fairspec.store import ReplayMissError, load_replay

    run = make_run(katan_run, katan.openai_url)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        store.export_jsonl(tmp_path / "calls.jsonl")
    other = make_run(katan_run, katan.openai_url, base=tmp_path / "other")
    mistakes = tmp_path / "other" / "run" / "exam" / "mistakes.jsonl"
    mistakes.write_text(mistakes.read_text().replace("The answer is 7.", "The answer is 8."))
    with CallStore(tmp_path / "other.sqlite") as store, pytest.raises(ReplayMissError) as caught:
        run_stage(other, "teach", base_dir=tmp_path, store=store,
                  replay=load_replay(tmp_path / "calls.jsonl"))
    assert "gpt-" in str(caught.value) and "no recorded call" in str(caught.value)
