"""The report's rounds: read from round-k/ folders, as many as the plan has."""

from __future__ import annotations

import json
from pathlib import Path

from fairspec.report.collect import collect


def write_round(run_dir: Path, prefix: str, wrong: int, accuracy: float) -> None:
    (run_dir / prefix / "exam").mkdir(parents=True)
    (run_dir / prefix / "exam" / "stats.json").write_text(json.dumps({"wrong": wrong, "total": 6}))
    (run_dir / prefix / "evaluate").mkdir(parents=True)
    (run_dir / prefix / "evaluate" / "metrics.json").write_text(
        json.dumps({"tuned": {"accuracy": accuracy}}))


def test_rounds_come_from_their_folders_and_a_stale_one_is_left_out(tmp_path):
    run_dir = tmp_path / "run"
    write_round(run_dir, "", 5, 0.1)
    write_round(run_dir, "round-2", 3, 0.3)
    both = collect(run_dir)
    assert [r.round for r in both.rounds] == [1, 2] and both.rounds[1].exam["wrong"] == 3
    assert both.accuracy("tuned") == 0.3  # the run's student is its last round's
    # the spec went back to one round: the report stage says so, round-2/ is not read
    one = collect(run_dir, rounds=1)
    assert len(one.rounds) == 1 and one.accuracy("tuned") == 0.1
