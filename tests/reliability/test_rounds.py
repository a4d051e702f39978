"""Two FAIR rounds through `fairspec run`, killed with SIGKILL inside round 2's teach stage.

Round 2's exam must run the weights round 1 saved (checked by answering the same rows
with those weights here, and seeing the base student answer otherwise); its rationale
calls for questions round 1 already asked come from the call store (the server never
sees them), its feedback on a new wrong answer is paid; the rerun after the kill asks the
server only for calls the kill lost and ends byte-identical (weights included) to an
uninterrupted run with the same teacher answers: the replay of its record, with no key, in
``record/rerun/``; the report has the per-round table and plot.

Round 1 is test_crash.py's pipeline, on the same server (``crash_runs`` and ``slow_katan`` in
tests/conftest.py, once per test run): its stages have the same fingerprints here, so the
killed run starts from a copy of the crash test's finished run (round 1 already done) and
computes round 2 and the report itself.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from katan_runs import Katan, requests_served
from kill_runs import (
    CONCURRENCY,
    TRAIN_ROWS,
    CrashRuns,
    kill_when,
    output_keys,
    run_to_end,
    stored_keys,
    write_crash_spec,
)

pytestmark = pytest.mark.slow

IN_FLIGHT_MAX = CONCURRENCY * 3
WAIT_S = 300.0  # round 2 comes after round 1's training
ROUND_2 = "round-2"
SAME_FILES = [f"{prefix}{name}" for prefix in ("", f"{ROUND_2}/") for name in (
    "exam/exam.jsonl", "exam/mistakes.jsonl", "teach/rationales.jsonl", "teach/feedback.jsonl",
    "review/reviews.jsonl", "review/accepted.jsonl", "build/preview.jsonl",
    "evaluate/predictions-tuned.jsonl", "evaluate/metrics.json")]


def write_rounds_spec(folder: Path, url: str, model: str) -> Path:
    """test_crash.py's pipeline (6 svamp-mini rows, student ``model``, teachers alpha, beta,
    gamma on ``url``) in two rounds: round 2 retakes the whole exam, trains on both rounds'
    examples from round 1's weights."""
    return write_crash_spec(folder, url, model,
                            rounds="{count: 2, exam: all, data: accumulate, start_from: previous}")


def round_1_from(finished: Path, folder: Path) -> None:
    """``folder`` holds a copy of ``finished``'s run folders and call store (round 1 done)."""
    shutil.copytree(finished / "runs", folder / "runs")


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def in_round_2_teach(run_dir: Path, folder: Path) -> bool:
    stage = run_dir / ROUND_2 / "teach"
    if not stage.is_dir() or (stage / "manifest.json").exists():
        return False
    return len(stored_keys(folder)) > len(set(output_keys(run_dir)))  # a round-2 call is stored


def test_two_rounds_killed_in_round_2_teach(tmp_path: Path, crash_runs: CrashRuns,
                                            slow_katan: Katan) -> None:
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    server = slow_katan
    round_1_from(crash_runs.crashed, crashed)
    # what the server answered before this test that the copied store lacks (the crash
    # test's kills): the counts below are this test's own
    before = requests_served(server) - len(stored_keys(crashed))
    spec = write_rounds_spec(crashed, server.openai_url, crash_runs.model)
    run_dir = crashed / "runs" / "crash"
    landed = kill_when(crashed, spec, lambda: in_round_2_teach(run_dir, crashed),
                       run_dir / ROUND_2 / "teach", (0.0, 0.5), "round 2's teach", WAIT_S)
    assert landed, "round 2's teach ended before the kill landed"
    time.sleep(1.0)  # past the server's latency: no answer to the killed run is on its way
    unstored = requests_served(server) - before - len(stored_keys(crashed))
    assert 0 <= unstored <= IN_FLIGHT_MAX
    run_to_end(crashed, spec)
    keys = stored_keys(crashed)
    answered = requests_served(server) - before
    assert answered - len(keys) == unstored  # no stored call was asked again
    assert set(keys) == set(output_keys(run_dir)) | set(output_keys(run_dir / ROUND_2))

    # round 2's exam ran the weights round 1 saved: the same rows answered here with them
    # give the same answers, and the base student (round 1's exam) answered otherwise
    from fairspec.answering import Scoring, answer_split, engine_factory, load_split, sampling_from
    from fairspec.dsl import load_spec
    from fairspec.plan import Environment, compile_plan
    from fairspec.plan.stage_settings import ExamSettings
    from fairspec.resources import resolve_path

    plan = compile_plan(load_spec(spec), Environment())
    exam2 = plan.runs[0].stage(f"{ROUND_2}/exam")
    assert [str(i) for i in exam2.inputs] == ["train/model/", "train/train_args.json"]
    settings = ExamSettings.from_mapping(exam2.settings)
    tuned = run_dir / "train" / "model"
    again = answer_split(
        load_split(settings, crashed).rows,
        resolve_path(settings.template.ref, crashed).read_text(encoding="utf-8"),
        engine_factory(settings, str(tuned), crashed, chat_template=settings.chat_template),
        sampling_from(settings, settings.seed), Scoring.from_settings(settings.answer),
        tmp_path / "again.jsonl")
    round_2 = rows(run_dir / ROUND_2 / "exam" / "exam.jsonl")
    assert [r["output"] for r in again] == [r["output"] for r in round_2]
    round_1 = rows(run_dir / "exam" / "exam.jsonl")
    assert [r["output"] for r in round_1] != [r["output"] for r in round_2]
    exam_stats = json.loads((run_dir / ROUND_2 / "exam" / "stats.json").read_text())
    assert exam_stats["student"] == str(tuned) and exam_stats["covers"] == "all"
    train2 = json.loads((run_dir / ROUND_2 / "train" / "train_args.json").read_text())
    assert train2["model_path"] == str(tuned)  # start_from: previous

    # rationales of questions round 1 asked: the store's answers (their keys are round 1's);
    # feedback is on round 2's own wrong answer: a new call whenever that answer is new
    first = {(r["index"], r["teacher"]): r for r in rows(run_dir / "teach" / "rationales.jsonl")}
    first_fb = {(r["index"], r["teacher"]): r for r in rows(run_dir / "teach" / "feedback.jsonl")}
    round_1_keys = set(output_keys(run_dir))
    answer_1 = {r["index"]: r["output"] for r in rows(run_dir / "exam" / "mistakes.jsonl")}
    answer_2 = {r["index"]: r["output"] for r in rows(run_dir / ROUND_2 / "exam" / "mistakes.jsonl")}
    repeated = [r for r in rows(run_dir / ROUND_2 / "teach" / "rationales.jsonl")
                if (r["index"], r["teacher"]) in first]
    assert repeated, "no question was wrong in both rounds: nothing to check"
    assert all(r["key"] == first[(r["index"], r["teacher"])]["key"] for r in repeated)
    for fb in rows(run_dir / ROUND_2 / "teach" / "feedback.jsonl"):
        if fb["index"] in answer_1:
            assert (fb["key"] in round_1_keys) == (answer_1[fb["index"]] == answer_2[fb["index"]])
            if answer_1[fb["index"]] != answer_2[fb["index"]]:
                assert fb["key"] != first_fb[(fb["index"], fb["teacher"])]["key"]
    build2 = json.loads((run_dir / ROUND_2 / "build" / "stats.json").read_text())
    built1 = json.loads((run_dir / "build" / "stats.json").read_text())
    assert build2["carried_examples"] == built1["examples"]
    assert build2["examples"] == built1["examples"] + build2["round_examples"] \
        - build2["repeated_examples"]

    # the report: a row per round, and the plot
    report = (run_dir / "report" / "report.md").read_text()
    assert "## Rounds" in report and (run_dir / "report" / "rounds.png").is_file()
    section = report.split("## Rounds", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert [line.split("|")[1].strip() for line in table[1:]] == ["1", "2"]
    assert f"| 2 | {len(answer_2)} / {TRAIN_ROWS} |" in report

    # the record replays every round with no key: the server is asked nothing, same files
    import os
    import subprocess
    import sys

    record = run_dir / "record"
    bare = {k: v for k, v in os.environ.items() if "KEY" not in k and "TOKEN" not in k}
    replayed = subprocess.run(
        [sys.executable, "-m", "fairspec.cli", "run", str(record / "spec.yaml"), "--replay",
         str(record / "calls.jsonl")], cwd=crashed, env=bare, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=WAIT_S * 2)
    assert replayed.returncode == 0, replayed.stdout[-2000:] + replayed.stderr[-2000:]
    assert requests_served(server) - before == answered
    # the replay is an uninterrupted run with the same teacher answers: the killed and
    # resumed run ends byte-identical to it, weights included
    rerun = record / "rerun" / "crash"
    for name in SAME_FILES:
        assert (rerun / name).read_bytes() == (run_dir / name).read_bytes(), name
    import torch
    from safetensors.torch import load_file

    for prefix in ("", f"{ROUND_2}/"):
        ours = load_file(str(run_dir / prefix / "train/model/model.safetensors"))
        other = load_file(str(rerun / prefix / "train/model/model.safetensors"))
        assert ours.keys() == other.keys() and all(torch.equal(ours[k], other[k]) for k in ours)

    # round 1 came from the crash test's run: the killed run did not compute it again
    assert "crash exam: already done" in (crashed / "child.log").read_text()
