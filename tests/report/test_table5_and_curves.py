"""Paper Table 5 (average tokens per sample, per teacher, without and with peer review) from a
run folder's teach and review stats, and the Figure 5 alpha curve joining only runs that differ
in alpha alone (compared by the resolved settings in their run.json, or by their overrides without them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_folders import write

import fairspec.report.write as report_write
from fairspec.report import write_report


def usage(input_tokens: int, output_tokens: int, usd: float | None, calls: int = 8) -> dict:
    return {"calls": calls, "made": calls, "cached": 0, "replayed": 0, "errors": 0, "retries": 0,
            "input_tokens": input_tokens, "output_tokens": output_tokens, "usd": usd}


def taught_run(root: Path, *, reviewed: bool = True, name: str = "t5") -> Path:
    """4 mistakes taught by gpt and by a teacher whose name is markup."""
    run = root / name
    write(run / "run.json", {"name": name, "spec": name, "variant": None, "overrides": {},
                             "alpha": 0.5})
    write(run / "exam" / "stats.json", {"total": 10, "wrong": 4, "invalid": 0, "truncated": 0})
    write(run / "teach" / "stats.json", {"mistakes": 4, "teachers": {
        "gpt": usage(1000, 200, 0.004), "<b>gem</b>": usage(600, 90, None)}})
    review = {"enabled": reviewed, "rationales": 8, "reviewable": 8, "accepted": 5,
              "accepted_per_teacher": {"gpt": 3, "<b>gem</b>": 2},
              "rationales_per_teacher": {"gpt": 4, "<b>gem</b>": 4}, "reviews_made": 8,
              "reviews_saved_by_early_exit": 0, "invalid_scores": 0, "score_range": [1, 5],
              "mean_score_matrix": {}, "teachers": {}}
    if reviewed:
        review["teachers"] = {"gpt": usage(500, 30, 0.002, 4), "<b>gem</b>": usage(250, 13, None, 4)}
    write(run / "review" / "stats.json", review)
    write(run / "review" / "reviews.jsonl", [])
    return run


def test_table_5_is_the_average_tokens_per_sample_without_and_with_peer_review(tmp_path):
    md, page = write_report(taught_run(tmp_path))
    text = md.read_text()
    assert "average tokens per sample, with and without peer review (paper Table 5)" in text
    assert "/ the 4 samples taught" in text
    # by hand: gpt teach (1000 + 200) / 4 = 300; its reviews (500 + 30) / 4 = 132.5;
    # together 1730 / 4 = 432.5; reviews' cost 0.002 / 4 = 0.0005 per sample
    assert "| gpt | 300.00 | 132.50 | 432.50 | $0.000500 |" in text
    # (600 + 90) / 4 = 172.5; (250 + 13) / 4 = 65.75; 953 / 4 = 238.25; no price: unknown
    assert "| <b>gem</b> | 172.50 | 65.75 | 238.25 | unknown |" in text
    # the totals are still there, no longer called Table 5
    assert "## Teachers: calls, tokens and cost (teach and review stages together)" in text
    assert "| gpt | 12 | 12 | 0 | 0 | 1,500 | 230 | $0.0060 |" in text
    assert text.count("Table 5") == 1
    html = page.read_text()
    assert "<b>gem</b>" not in html and "<td>&lt;b&gt;gem&lt;/b&gt;</td><td>172.50</td>" in html


def test_without_peer_review_only_the_standard_column_is_known(tmp_path):
    text = write_report(taught_run(tmp_path, reviewed=False))[0].read_text()
    assert "| gpt | 300.00 | - | - | - |" in text
    assert "Peer review was off in this run: only the standard column is known." in text


def alpha_run(root: Path, name: str, *, overrides: dict, alpha: float, epochs: int | None,
              tuned: float, template: str = "templates/explain.j2") -> Path:
    """A finished run; ``epochs`` None: a run.json without settings (compared by overrides)."""
    run = root / name
    info = {"name": name, "spec": "demo", "variant": None if not overrides else name,
            "overrides": overrides, "alpha": alpha}
    if epochs is not None:  # the resolved spec, as the executor writes it (run/record.py), in short
        info["settings"] = {
            "fairspec": 1, "name": "demo", "description": "", "seed": 42,
            "prompts": {"rationale": template},
            "training": {"alpha": alpha, "epochs": epochs, "learning_rate": 1e-05},
            "output_dir": "runs"}
    write(run / "run.json", info)
    write(run / "exam" / "stats.json", {"total": 100, "wrong": 40, "invalid": 0, "truncated": 0})
    write(run / "evaluate" / "metrics.json", {
        "split": "test", "base": {"correct": 30, "total": 100, "accuracy": 0.30, "invalid": 0},
        "tuned": {"correct": round(100 * tuned), "total": 100, "accuracy": tuned, "invalid": 0}})
    return run


@pytest.fixture
def drawn(monkeypatch) -> list[list[tuple[float, float]]]:
    """The points of each accuracy curve the report draws."""
    found: list[list[tuple[float, float]]] = []
    real = report_write.accuracy_curve

    def spy(points, *args, **kwargs):
        found.append(sorted(points))
        return real(points, *args, **kwargs)

    monkeypatch.setattr(report_write, "accuracy_curve", spy)
    return found


def sweep(root: Path, epochs: int, *, record: bool = True) -> None:
    for alpha, tuned in ((0.0, 0.33), (1.0, 0.31)):
        alpha_run(root, f"demo.alpha-{alpha:g}.epochs-{epochs}", tuned=tuned, alpha=alpha,
                  overrides={"training.alpha": alpha, "training.epochs": epochs},
                  epochs=epochs if record else None)


def test_a_main_run_with_other_epochs_is_left_out_of_the_alpha_curve(tmp_path, drawn):
    main = alpha_run(tmp_path, "demo", overrides={}, alpha=0.5, epochs=10, tuned=0.36)
    sweep(tmp_path, 5)
    text = write_report(main)[0].read_text()
    assert drawn == [[(0.0, 0.33), (1.0, 0.31)]]
    assert (main / "report" / "accuracy_vs_training_alpha.png").exists()
    assert ("This curve joins runs that differ in training.alpha alone: "
            "demo.alpha-0.epochs-5 (0), demo.alpha-1.epochs-5 (1). Held fixed: "
            "training.epochs = 5, training.learning_rate = 1e-05; every other setting as in "
            "the main run demo.") in text
    assert ("The main run demo (training.alpha = 0.5) is left out of the training.alpha "
            "curve: besides training.alpha it differs from its runs in training.epochs "
            "(10 in the main run, 5 on the curve).") in text
    assert "accuracy_vs_training_epochs" not in text  # epochs 5 vs 10 differ in alpha too


def test_a_main_run_that_differs_in_alpha_alone_is_on_the_curve(tmp_path, drawn):
    main = alpha_run(tmp_path, "demo", overrides={}, alpha=0.5, epochs=10, tuned=0.36)
    sweep(tmp_path, 10)  # the sweep sets epochs to the spec's own value: resolved, the same
    text = write_report(main)[0].read_text()
    assert drawn == [[(0.0, 0.33), (0.5, 0.36), (1.0, 0.31)]]
    assert ("This curve joins runs that differ in training.alpha alone: demo.alpha-0.epochs-10 "
            "(0), demo (0.5), demo.alpha-1.epochs-10 (1). Held fixed: training.epochs = 10, "
            "training.learning_rate = 1e-05; every other setting as in the main run demo.") in text
    assert "left out" not in text


def test_a_run_that_rendered_another_template_is_not_on_the_curve(tmp_path, drawn):
    main = alpha_run(tmp_path, "demo", overrides={}, alpha=0.5, epochs=10, tuned=0.36)
    sweep(tmp_path, 10)
    alpha_run(tmp_path, "demo.alpha-0.25", overrides={"training.alpha": 0.25}, alpha=0.25,
              epochs=10, tuned=0.5, template="templates/another.j2")
    text = write_report(main)[0].read_text()
    assert drawn == [[(0.0, 0.33), (0.5, 0.36), (1.0, 0.31)]]
    assert "demo.alpha-0.25 (0.25)" not in text


def test_without_records_runs_are_compared_by_their_overrides(tmp_path, drawn):
    main = alpha_run(tmp_path, "demo", overrides={}, alpha=0.5, epochs=None, tuned=0.36)
    sweep(tmp_path, 5, record=False)
    alpha_run(tmp_path, "demo.alpha-0.25", overrides={"training.alpha": 0.25}, alpha=0.25,
              epochs=None, tuned=0.34)
    text = write_report(main)[0].read_text()
    # the main run and the alpha-only variant: one curve; the sweep at 5 epochs: another
    assert drawn == [[(0.25, 0.34), (0.5, 0.36)], [(0.0, 0.33), (1.0, 0.31)]]
    assert ("demo.alpha-0 and demo.alpha-1" not in text
            and "Held fixed: training.epochs = 5; every other setting as in the spec (runs "
                "compared by their overrides of the spec: some run's run.json holds no "
                "settings).") in text
    assert "curve 2 of 2" in text and "left out" not in text


def test_a_main_run_left_out_without_records_says_it_differs_from_the_spec(tmp_path, drawn):
    main = alpha_run(tmp_path, "demo", overrides={}, alpha=0.5, epochs=None, tuned=0.36)
    sweep(tmp_path, 5, record=False)
    text = write_report(main)[0].read_text()
    assert drawn == [[(0.0, 0.33), (1.0, 0.31)]]
    assert ("it differs from its runs in training.epochs (the spec's value in the main run, "
            "5 on the curve).") in text


def test_no_curve_when_no_two_runs_differ_in_alpha_alone(tmp_path, drawn):
    main = alpha_run(tmp_path, "demo", overrides={}, alpha=0.5, epochs=10, tuned=0.36)
    alpha_run(tmp_path, "demo.a", overrides={"training.alpha": 0, "training.epochs": 5}, alpha=0,
              epochs=5, tuned=0.33)
    alpha_run(tmp_path, "demo.b", overrides={"training.alpha": 1, "training.epochs": 3}, alpha=1,
              epochs=3, tuned=0.31)
    text = write_report(main)[0].read_text()
    assert drawn == [] and "paper Figure 5" not in text
    assert ("No curve against training.alpha: no two finished runs differ in training.alpha "
            "alone") in text


def test_no_mistake_no_tokens_per_sample(tmp_path):
    run = taught_run(tmp_path, reviewed=False)
    write(run / "teach" / "stats.json", {"mistakes": 0, "teachers": {"gpt": usage(0, 0, 0.0, 0)}})
    text = write_report(run)[0].read_text()
    assert "(paper Table 5)" in text and "No sample was taught" in text
    assert "| gpt | 0 | 0 | 0 | 0 | 0 | 0 | $0.0000 |" in text
