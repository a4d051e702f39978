"""Teach and review stages over real HTTP (llm-katan, echo backend), with the call store."""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from fairspec.artifacts import is_done, read_jsonl, write_jsonl
from fairspec.dsl import load_spec_text
from fairspec.plan import Environment, compile_plan
from fairspec.run.executor import run_stage
from fairspec.store import CallStore

REPO = Path(__file__).resolve().parents[2]


def spec_text(url: str, threshold: int = 4) -> str:
    return f"""
fairspec: 1
name: katan-test
task:
  kind: math
  dataset: {{path: builtin:data/svamp-mini}}
  fields: {{question: question_concat, answer: Answer}}
student: {{model: builtin:smollm2-135m-instruct, hardware: {{device: cpu}}}}
teachers:
  - {{name: alpha, provider: openai, model: gpt-a, base_url: "{url}", api_key_env: KATAN_KEY,
     price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
  - {{name: beta, provider: openai, model: gpt-b, base_url: "{url}", api_key_env: KATAN_KEY}}
  - {{name: gamma, provider: openai, model: gpt-c, base_url: "{url}", api_key_env: KATAN_KEY}}
review: {{threshold: {threshold}}}
"""


def requests_served(server) -> int:
    with urllib.request.urlopen(f"{server.root}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return int(sum(float(v) for v in re.findall(r'^llm_katan_requests_total\{[^}]*\} (\S+)', text, re.M)))


def make_run(tmp_path: Path, url: str, threshold: int = 4):
    loaded = load_spec_text(spec_text(url, threshold), base_dir=tmp_path)
    plan = compile_plan(loaded, Environment())
    run = replace(plan.runs[0], run_dir=str(tmp_path / "run"))
    rows = [json.loads(line) for line in
            (REPO / "fairspec/resources/data/svamp-mini/train.jsonl").read_text().splitlines()[:4]]
    mistakes = [{"index": i, "fields": {"question": r["question_concat"]}, "gold": r["Answer"],
                 "gold_text": f"{r['Answer']:g}", "output": "The answer is 7.", "prediction": 7.0,
                 "correct": False} for i, r in enumerate(rows)]
    write_jsonl(tmp_path / "run" / "exam" / "mistakes.jsonl", mistakes)
    return run


def test_teach_then_review_store_every_call_and_repeat_none(tmp_path, katan, monkeypatch):
    monkeypatch.setenv("KATAN_KEY", "sk-test-not-a-real-key-000000")
    run = make_run(tmp_path, katan.openai_url)
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
        # the echoed review prompt ends its instructions with "e.g. [4]": every score is 4
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


class Recorder:
    def __init__(self):
        self.totals, self.done, self.finished = {}, {}, []

    def start(self, stage, totals):
        self.totals[stage] = dict(totals)

    def update(self, stage, caller):
        self.done[(stage, caller.name)] = caller.usage.calls

    def finish(self, stage):
        self.finished.append(stage)


def test_progress_sees_every_teacher_reach_its_total(tmp_path, katan, monkeypatch):
    monkeypatch.setenv("KATAN_KEY", "sk-test-not-a-real-key-000000")
    run = make_run(tmp_path, katan.openai_url)
    recorder = Recorder()
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store, progress=recorder)
        run_stage(run, "review", base_dir=tmp_path, store=store, progress=recorder)
    assert recorder.totals["teach"] == {"alpha": 8, "beta": 8, "gamma": 8}
    assert recorder.totals["review"] == {"alpha": 8, "beta": 8, "gamma": 8}
    assert all(recorder.done[("teach", t)] == 8 for t in ("alpha", "beta", "gamma"))
    assert recorder.finished == ["teach", "review"]


def test_review_exits_early_when_the_decision_is_made(tmp_path, katan, monkeypatch):
    monkeypatch.setenv("KATAN_KEY", "sk-test-not-a-real-key-000000")
    # threshold 5 with mean: the first score of 4 makes a mean of 5 impossible
    run = make_run(tmp_path, katan.openai_url, threshold=5)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        review = run_stage(run, "review", base_dir=tmp_path, store=store)
    assert review["reviews_made"] == 12 and review["reviews_saved_by_early_exit"] == 12
    assert review["accepted"] == 0


def test_a_fatal_provider_error_stops_the_stage_and_keeps_nothing_half_done(tmp_path, start_katan,
                                                                             monkeypatch):
    server = start_katan("--validate-keys")
    monkeypatch.setenv("KATAN_KEY", "sk-wrong-key-0000000000000000")
    run = make_run(tmp_path, server.openai_url)
    from fairspec.errors import TeacherStopped

    with CallStore(tmp_path / "calls.sqlite") as store, pytest.raises(TeacherStopped) as caught:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
    assert "sk-wrong-key" not in str(caught.value)
    assert not is_done(tmp_path / "run" / "teach", run.stage("teach").fingerprint)


def test_replay_reproduces_the_teacher_outputs_without_a_key_or_a_server(tmp_path, katan,
                                                                         monkeypatch):
    from fairspec.store import load_replay

    monkeypatch.setenv("KATAN_KEY", "sk-test-not-a-real-key-000000")
    run = make_run(tmp_path, katan.openai_url)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        run_stage(run, "review", base_dir=tmp_path, store=store)
        store.export_jsonl(tmp_path / "calls.jsonl")
    recorded = {name: (tmp_path / "run" / stage / name).read_text()
                for stage, name in (("teach", "rationales.jsonl"), ("teach", "feedback.jsonl"),
                                    ("review", "accepted.jsonl"))}
    # another machine: a fresh store, no key, and the server's address unreachable
    monkeypatch.delenv("KATAN_KEY")
    other = make_run(tmp_path / "other", katan.openai_url)
    replay = load_replay(tmp_path / "calls.jsonl")
    with CallStore(tmp_path / "other" / "calls.sqlite") as store:
        teach = run_stage(other, "teach", base_dir=tmp_path, store=store, replay=replay)
        run_stage(other, "review", base_dir=tmp_path, store=store, replay=replay)
    assert teach["calls_made"] == 0 and teach["teachers"]["alpha"]["replayed"] == 8
    for (stage, name), text in zip(
            (("teach", "rationales.jsonl"), ("teach", "feedback.jsonl"), ("review", "accepted.jsonl")),
            recorded.values(), strict=True):
        assert (tmp_path / "other" / "run" / stage / name).read_text() == text


def test_replay_of_a_changed_prompt_is_a_clear_error(tmp_path, katan, monkeypatch):
    from fairspec.store import ReplayMissError, load_replay

    monkeypatch.setenv("KATAN_KEY", "sk-test-not-a-real-key-000000")
    run = make_run(tmp_path, katan.openai_url)
    with CallStore(tmp_path / "calls.sqlite") as store:
        run_stage(run, "teach", base_dir=tmp_path, store=store)
        store.export_jsonl(tmp_path / "calls.jsonl")
    other = make_run(tmp_path / "other", katan.openai_url)
    mistakes = tmp_path / "other" / "run" / "exam" / "mistakes.jsonl"
    mistakes.write_text(mistakes.read_text().replace("The answer is 7.", "The answer is 8."))
    with CallStore(tmp_path / "other.sqlite") as store, pytest.raises(ReplayMissError) as caught:
        run_stage(other, "teach", base_dir=tmp_path, store=store,
                  replay=load_replay(tmp_path / "calls.jsonl"))
    assert "gpt-" in str(caught.value) and "no recorded call" in str(caught.value)
