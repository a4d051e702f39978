"""Rounds in the plan: round k >= 2's stages, what they read from round k-1, their
fingerprints, the later rounds' call estimate, and the spec rules about rounds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fairspec.artifacts import write_jsonl, write_manifest
from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError
from fairspec.plan import Environment, compile_plan
from fairspec.plan.estimate import estimate_run
from fairspec.plan.round_estimate import estimate_rounds
from fairspec.run.executor import unfinished_inputs
from fairspec.stages.build import accumulate

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
CPU = Environment(cuda_devices=0, vllm=False)
QUICKSTART = (SPECS / "quickstart.yaml").read_text()
#: the quickstart without its variants and output_dir (the last keys of the file)
ONE_RUN = QUICKSTART.split("\nvariants:")[0]


def plan_of(text: str, base_dir: Path = SPECS):
    loaded = load_spec_text(text, base_dir=base_dir)
    return loaded, compile_plan(loaded, CPU)


def with_rounds(rounds: str, text: str = QUICKSTART) -> str:
    return text + f"\nrounds: {rounds}\n"


def fingerprints(plan) -> dict[str, str]:
    return {s.name: s.fingerprint for s in plan.runs[0].stages}


def test_one_round_is_todays_plan_with_the_same_fingerprints():
    _, today = plan_of(QUICKSTART)
    _, one = plan_of(with_rounds("{count: 1}"))
    assert fingerprints(one) == fingerprints(today)
    assert [s.name for s in today.runs[0].stages] == [
        "exam", "teach", "review", "build", "train", "evaluate", "report"]


def test_round_two_reads_round_ones_student_and_examples():
    _, plan = plan_of(with_rounds("{count: 2}"))
    run = plan.runs[0]
    names = [s.name for s in run.stages]
    assert names == ["exam", "teach", "review", "build", "train", "evaluate",
                     "round-2/exam", "round-2/teach", "round-2/review", "round-2/build",
                     "round-2/train", "round-2/evaluate", "report"]
    exam2 = run.stage("round-2/exam")
    assert [str(i) for i in exam2.inputs] == ["train/model/", "train/train_args.json"]
    assert exam2.after == ("train",) and exam2.implementation is None
    assert [str(i) for i in run.stage("round-2/teach").inputs] == ["round-2/exam/mistakes.jsonl"]
    build2 = run.stage("round-2/build")  # data: accumulate (the default)
    assert "build/dataset/" in [str(i) for i in build2.inputs] and "build" in build2.after
    train2 = run.stage("round-2/train")  # start_from: base (the default)
    assert [str(i) for i in train2.inputs] == ["round-2/build/dataset/", "round-2/build/stats.json"]
    report = run.stage("report")
    assert "round-2/evaluate/metrics.json" in [str(i) for i in report.inputs]
    assert len(set(fingerprints(plan).values())) == len(names)


def test_round_options_change_what_round_two_reads_and_its_fingerprints():
    _, default = plan_of(with_rounds("{count: 2}"))
    _, options = plan_of(with_rounds("{count: 2, exam: mistakes, data: own, start_from: previous}"))
    run = options.runs[0]
    assert [str(i) for i in run.stage("round-2/exam").inputs] == [
        "train/model/", "train/train_args.json", "exam/mistakes.jsonl"]
    assert "build/dataset/" not in [str(i) for i in run.stage("round-2/build").inputs]
    assert [str(i) for i in run.stage("round-2/train").inputs][-2:] == [
        "train/model/", "train/train_args.json"]
    a, b = fingerprints(default), fingerprints(options)
    assert all(a[n] == b[n] for n in ("exam", "teach", "review", "build", "train", "evaluate"))
    assert all(a[n] != b[n] for n in a if n.startswith("round-2/"))
    _, fresh = plan_of(with_rounds("{count: 2, fresh_rationales: true}"))
    c = fingerprints(fresh)
    assert c["round-2/exam"] == a["round-2/exam"] and c["round-2/teach"] != a["round-2/teach"]
    assert fresh.runs[0].stage("round-2/teach").settings["rationale_sample"] == 1


def test_an_alpha_sweep_in_rounds_shares_round_ones_exam_teach_and_review():
    text = with_rounds("{count: 2}", ONE_RUN) + \
        "sweep: {training.alpha: [0.2, 0.8]}\n"
    _, plan = plan_of(text)
    first, second = plan.runs[1], plan.runs[2]
    for name in ("exam", "teach", "review", "build"):
        assert first.stage(name).fingerprint == second.stage(name).fingerprint
    for name in ("train", "round-2/exam", "round-2/teach"):
        assert first.stage(name).fingerprint != second.stage(name).fingerprint


@pytest.mark.slow
def test_plan_json_lists_both_rounds_with_their_inputs_and_estimates(tmp_path):
    spec = tmp_path / "two.yaml"
    spec.write_text("extends: builtin:specs/quickstart.yaml\nrounds: {count: 2, exam: mistakes}\n")
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "plan", str(spec), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    run = data["runs"][0]
    stages = {s["name"]: s for s in run["stages"]}
    assert stages["round-2/exam"]["inputs"] == ["train/model/", "train/train_args.json",
                                                "exam/mistakes.jsonl"]
    assert stages["round-2/exam"]["after"] == ["train", "exam"]
    (later,) = run["rounds"]
    first = run["calls"]
    # exam: mistakes covers round 1's (estimated) mistakes; every rationale is asked again
    assert later["questions"] == first["mistakes"]
    assert later["calls_max"] == later["calls_min"] == later["mistakes"] * 2  # feedback only
    assert later["store_answers_max"] == later["mistakes"] * (2 + 2)
    human = subprocess.run([sys.executable, "-m", "fairspec.cli", "plan", str(spec)],
                           capture_output=True, text=True, timeout=300)
    assert "Later rounds" in human.stdout and "round-2/exam" in human.stdout


def test_later_rounds_use_the_measured_exam_and_price_only_new_calls(tmp_path):
    spec_text = with_rounds("{count: 3}", ONE_RUN) + f"output_dir: {tmp_path}/runs\n"
    loaded, plan = plan_of(spec_text)
    run = plan.runs[0]
    first = estimate_run(run, SPECS, mistakes=8)
    two, three = estimate_rounds(run, first)
    assert two.questions == 16 and two.mistakes == 8 and "estimated" in two.mistakes_source
    assert two.calls_min == 8 * 2 and two.calls_max == 8 * (2 + 2 + 2)  # exam: all: unknown repeats
    exam2 = Path(run.run_dir) / "round-2" / "exam"  # round 2's exam has run: 4 of 16 wrong
    exam2.mkdir(parents=True)
    (exam2 / "stats.json").write_text(json.dumps({"mistakes": 4, "total": 16}))
    write_manifest(exam2, stage="round-2/exam", fingerprint=run.stage("round-2/exam").fingerprint,
                   inputs={}, outputs=["stats.json"], counts={}, started=0.0)
    two, three = estimate_rounds(run, first)
    assert two.mistakes == 4 and two.mistakes_source.startswith("measured")
    assert three.mistakes == 4  # round 2's measured rate, 0.25, on 16 questions


@pytest.mark.parametrize(("rounds", "message"), [
    ("{count: 1, exam: mistakes}", "rounds.exam has no effect with one round"),
    ("{count: 2, data: own, start_from: base}", "lose what earlier rounds taught"),
])
def test_rules_refuse_rounds_options_that_do_nothing_or_forget(rounds, message):
    with pytest.raises(SpecError, match=message):
        load_spec_text(with_rounds(rounds), base_dir=SPECS)


def test_a_record_writing_every_round_default_is_valid():
    load_spec_text(with_rounds("{count: 1, exam: all, data: accumulate, start_from: base, "
                               "fresh_rationales: false}"), base_dir=SPECS)


def test_recorded_teachers_cannot_teach_a_second_round():
    text = (SPECS / "svamp-authors.yaml").read_text()
    with pytest.raises(SpecError, match="teachers\\[0\\].provider.*recorded student's answers"):
        load_spec_text(with_rounds("{count: 2}", text.split("\nvariants:")[0]),
                       base_dir=SPECS)


def test_round_two_waits_for_round_ones_training_but_a_placed_input_is_read(tmp_path):
    _, plan = plan_of(with_rounds("{count: 2}", ONE_RUN) + f"output_dir: {tmp_path}/runs\n")
    run = plan.runs[0]
    assert unfinished_inputs(run, run.stage("round-2/exam")) == ["train"]
    train = Path(run.run_dir) / "train"  # train_args.json of an unfinished training: still waits
    train.mkdir(parents=True)
    (train / "train_args.json").write_text("{}")
    assert unfinished_inputs(run, run.stage("round-2/exam")) == ["train"]
    assert unfinished_inputs(run, run.stage("teach")) == ["exam"]
    write_jsonl(Path(run.run_dir) / "exam" / "mistakes.jsonl", [])  # placed by hand: read as is
    assert unfinished_inputs(run, run.stage("teach")) == []


def test_accumulated_examples_keep_earlier_rounds_and_each_distinct_example_once():
    earlier = [{"sample": 1, "kind": "rationale", "teacher": "a", "prompt": "p1", "completion": "r"},
               {"sample": 1, "kind": "feedback", "teacher": "a", "prompt": "f1", "completion": "x"}]
    new = [{"sample": 1, "kind": "rationale", "teacher": "a", "prompt": "p1", "completion": "r"},
           {"sample": 1, "kind": "feedback", "teacher": "a", "prompt": "f1'", "completion": "y"}]
    assert accumulate(earlier, new) == [*earlier, new[1]]
