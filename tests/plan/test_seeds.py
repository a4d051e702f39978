"""``seeds: [..]``: each run trained and evaluated once per seed, in sibling run folders
``<run>.seed-<s>``; the stages before training are the same stages (shared, never paid or
computed twice); the report gives each setting's mean and standard deviation over the seeds."""

from __future__ import annotations

import pytest
from katan_runs import spec_text, teacher_line
from run_folders import write

from fairspec.dsl import load_spec_text
from fairspec.errors import SpecError
from fairspec.plan import Environment, compile_plan
from fairspec.report import write_report

URL = "http://127.0.0.1:9/v1"


def plan_of(tmp_path, seeds: str, **sections):
    text = spec_text(teacher_line("alpha", URL, model="gpt-4o") + teacher_line("beta", URL, model="gpt-4.1"),
                     seeds=seeds, **sections)
    return compile_plan(load_spec_text(text, base_dir=tmp_path), Environment())


def test_each_run_is_repeated_per_seed_sharing_every_stage_before_training(tmp_path):
    plan = plan_of(tmp_path, "[1, 2, 3]", variants="[{name: alpha-0, set: {training.alpha: 0}}]")
    names = [r.name for r in plan.runs]
    assert names == ["katan-test", "katan-test.alpha-0", "katan-test.seed-2", "katan-test.seed-3",
                     "katan-test.alpha-0.seed-2", "katan-test.alpha-0.seed-3"]
    by = {r.name: r for r in plan.runs}
    main, again = by["katan-test"], by["katan-test.seed-3"]
    assert (main.seed, main.repeats) == (1, None) and (again.seed, again.repeats) == (3, "katan-test")
    assert by["katan-test.alpha-0.seed-2"].variant == "alpha-0"
    for stage in ("exam", "teach", "review", "build"):
        assert main.stage(stage).fingerprint == again.stage(stage).fingerprint
    for stage in ("train", "evaluate"):
        assert main.stage(stage).fingerprint != again.stage(stage).fingerprint
    assert main.stage("train").identity["seed"] == 1 and again.stage("train").identity["seed"] == 3
    # the base student's sampled answers are seeded per seed too
    assert main.stage("evaluate").settings["base_fingerprint"] != \
        again.stage("evaluate").settings["base_fingerprint"]
    # greedy ones are the same whatever the seed: every seed's run reads one cached base
    greedy = plan_of(tmp_path, "[1, 2, 3]", evaluation="{decoding: greedy}")
    assert len({r.stage("evaluate").settings["base_fingerprint"] for r in greedy.runs}) == 1
    assert len({r.stage("evaluate").fingerprint for r in greedy.runs}) == 3


def test_without_seeds_nothing_changes(tmp_path):
    plain = compile_plan(load_spec_text(spec_text(
        teacher_line("alpha", URL, model="gpt-4o") + teacher_line("beta", URL, model="gpt-4.1")),
        base_dir=tmp_path), Environment())
    seeded = plan_of(tmp_path, "[42]")  # one seed, the spec's own: the same run
    assert [r.name for r in seeded.runs] == [r.name for r in plain.runs]
    assert [s.fingerprint for s in seeded.runs[0].stages] == [s.fingerprint for s in plain.runs[0].stages]


def test_a_seed_twice_is_refused_at_its_line(tmp_path):
    with pytest.raises(SpecError) as found:
        plan_of(tmp_path, "[1, 2, 1]")
    assert any(p.path == "seeds[2]" and "twice" in p.message for p in found.value.problems)


def _run(root, name, *, tuned: int, base: int = 10, seed: int, repeats: str | None = None,
         alpha: float = 0.5, overrides: dict | None = None):
    run = root / name
    write(run / "run.json", {"name": name, "spec": "s", "variant": None if "alpha" not in name
                             else "alpha-0", "overrides": overrides or {}, "alpha": alpha,
                             "train_seed": seed, "repeats": repeats})
    write(run / "exam" / "stats.json", {"total": 10, "wrong": 5, "invalid": 0, "truncated": 0})
    write(run / "evaluate" / "metrics.json", {
        "split": "test", "base": {"total": 100, "correct": base, "invalid": 0, "accuracy": base / 100},
        "tuned": {"total": 100, "correct": tuned, "invalid": 0, "accuracy": tuned / 100}})
    return run


def test_the_report_gives_mean_and_sd_over_seeds_and_compares_first_seeds(tmp_path, monkeypatch):
    from fairspec.report import write as report_write

    drawn = []
    real = report_write.accuracy_curve

    def capture(points, baseline, key, path, **options):
        drawn.append((sorted(points), options))
        return real(points, baseline, key, path, **options)

    monkeypatch.setattr(report_write, "accuracy_curve", capture)
    main = _run(tmp_path, "s", tuned=20, seed=1)
    _run(tmp_path, "s.seed-2", tuned=30, seed=2, repeats="s")
    _run(tmp_path, "s.seed-3", tuned=40, seed=3, repeats="s")
    _run(tmp_path, "s.alpha-0", tuned=12, seed=1, alpha=0.0, overrides={"training.alpha": 0})
    _run(tmp_path, "s.alpha-0.seed-2", tuned=14, seed=2, alpha=0.0, repeats="s.alpha-0",
         overrides={"training.alpha": 0})
    write_report(main)
    text = (main / "report" / "report.md").read_text()
    assert "## Seeds: training and evaluation repeated" in text
    # 20, 30, 40: mean 30, sd 10; gains 10, 20, 30: mean +20, sd 10
    assert "| s | 3 | 1: 20.00%, 2: 30.00%, 3: 40.00% | 30.00% ± 10.00 | +20.00 ± 10.00 |" in text
    assert "| s.alpha-0 | 2 | 1: 12.00%, 2: 14.00% | 13.00% ± 1.41 | +3.00 ± 1.41 |" in text
    comparison = text.split("## Variants and sweep")[1]
    rows = [line for line in comparison.splitlines() if line.startswith("| s")]
    assert [row.split(" | ")[0] for row in rows] == ["| s", "| s.alpha-0"]  # first seeds only
    # the alpha curve: each point the mean over its seeds, its bar one sd each side
    ((points, options),) = drawn
    assert points == [(0.0, pytest.approx(0.13)), (0.5, pytest.approx(0.30))]
    assert options["interval_label"] == "mean ± sd over seeds"
    low, high = options["intervals"][0.5]
    assert (low, high) == (pytest.approx(0.20), pytest.approx(0.40))
