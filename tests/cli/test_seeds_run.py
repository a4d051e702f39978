"""``seeds: [..]`` through ``fairspec run`` on the tiny quickstart: the run is trained and
evaluated once per seed while the exam and the teacher stages run once, and the report gives
the seeds' table with mean and sd."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tiny_runs import TinyRun, fairspec, stored_calls, tracking_env

pytestmark = pytest.mark.slow

SEEDS = (42, 7, 9)  # 42 is the spec's own seed: the quickstart's main run is the first seed's


def manifest(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / stage / "manifest.json").read_text())


def test_three_seeds_train_and_evaluate_three_times_and_ask_the_teachers_once(
        quickstart_run: TinyRun, tmp_path):
    # a copy of the finished main run and its call store, the spec pointed at the copy
    runs = tmp_path / "runs"
    shutil.copytree(quickstart_run.folder / "runs" / "quickstart", runs / "quickstart")
    shutil.copy2(quickstart_run.folder / "runs" / "calls.sqlite", runs / "calls.sqlite")
    text = quickstart_run.spec.read_text()
    text = text.replace(f"output_dir: {quickstart_run.folder / 'runs'}", f"output_dir: {runs}")
    text = text.replace("seed: 42\n", f"seed: 42\nseeds: [{', '.join(map(str, SEEDS))}]\n", 1)
    assert f"output_dir: {runs}" in text and "seeds: [42, 7, 9]" in text
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    main = runs / "quickstart"
    before = {stage: manifest(main, stage) for stage in ("exam", "teach", "review", "build", "train",
                                                         "evaluate")}
    calls = stored_calls(runs)

    env = {**tracking_env(tmp_path), "FAIRSPEC_CACHE": str(quickstart_run.folder / "cache")}
    done = fairspec("run", str(spec), "--variant", "main", cwd=tmp_path, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out

    # the first seed is the finished main run: nothing of it runs again
    for stage, was in before.items():
        assert manifest(main, stage) == was, stage
        assert f"quickstart {stage}: already done" in out
    # each further seed shares the four stages before training (copied, not computed) ...
    for seed in SEEDS[1:]:
        run = runs / f"quickstart.seed-{seed}"
        for stage in ("exam", "teach", "review", "build"):
            assert f"quickstart.seed-{seed} {stage}: shared, copied" in out
            assert manifest(run, stage)["fingerprint"] == before[stage]["fingerprint"]
        # ... and trains and evaluates with its own seed
        for stage in ("train", "evaluate"):
            assert f"quickstart.seed-{seed} {stage}: done" in out
            assert manifest(run, stage)["fingerprint"] != before[stage]["fingerprint"]
        assert json.loads((run / "train" / "train_args.json").read_text())["seed"] == seed
        assert json.loads((run / "run.json").read_text())["repeats"] == "quickstart"
    # counted over the whole run: 2 trainings, 2 evaluations and their reports, nothing else
    computed = sorted(line for line in out.splitlines()
                      if line.startswith("quickstart") and line.endswith(": done"))
    assert computed == sorted(f"quickstart.seed-{seed} {stage}: done" for seed in SEEDS[1:]
                              for stage in ("train", "evaluate", "report")), out
    assert "6 stage(s) run, 7 already done, 8 shared." in out
    assert stored_calls(runs) == calls  # no teacher was asked anything

    # the main report, refreshed once the seeds are done: a row with the three tuned
    # accuracies, their mean and sd
    report = (main / "report" / "report.md").read_text()
    assert "## Seeds: training and evaluation repeated" in report
    tuned = {seed: json.loads(((runs / (f"quickstart.seed-{seed}" if seed != 42 else "quickstart"))
                               / "evaluate" / "metrics.json").read_text())["tuned"]["accuracy"]
             for seed in SEEDS}
    row = next(line for line in report.splitlines() if line.startswith("| quickstart | 3 |"))
    assert ", ".join(f"{seed}: {100 * tuned[seed]:.2f}%" for seed in SEEDS) in row
    assert os.path.isfile(main / "report" / "report.html")
