"""The report from run folders: the paper's tables with the runs' numbers, PNG plots, a
self-contained HTML page, and the comparison of a spec's variants and sweep (Figure 5)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from run_folders import PNG, write

from fairspec.report import write_report


def usage(calls: int, usd: float | None) -> dict:
    return {"calls": calls, "made": calls - 1, "cached": 1, "replayed": 0, "errors": 0, "retries": 2,
            "input_tokens": 1000 * calls, "output_tokens": 100 * calls, "usd": usd}


def fake_run(root: Path, name: str, *, variant: str | None, overrides: dict, tuned: float,
             alpha: float = 0.5) -> Path:
    run = root / name
    write(run / "run.json", {"name": name, "spec": "demo", "variant": variant, "overrides": overrides,
                             "description": "a demo", "alpha": alpha})
    write(run / "exam" / "stats.json", {"total": 200, "wrong": 80, "invalid": 3, "truncated": 5})
    write(run / "teach" / "stats.json", {"teachers": {"gpt": usage(160, 0.25), "gemini": usage(160, None)}})
    reviews = [{"index": i, "author": a, "reviewer": r, "score": s}
               for i, (a, r, s) in enumerate([("gpt", "gemini", 5), ("gpt", "gemini", 4),
                                              ("gemini", "gpt", 2), ("gemini", "gpt", None)])]
    write(run / "review" / "reviews.jsonl", reviews)
    write(run / "review" / "stats.json", {
        "enabled": True, "rationales": 160, "reviewable": 158, "accepted": 90,
        "accepted_per_teacher": {"gpt": 70, "gemini": 20},
        "rationales_per_teacher": {"gpt": 80, "gemini": 80}, "reviews_made": 300,
        "reviews_saved_by_early_exit": 16, "invalid_scores": 1, "score_range": [1, 5],
        "mean_score_matrix": {"gemini": {"gpt": 4.5, "gemini": None}, "gpt": {"gpt": None, "gemini": 2.0}},
        "teachers": {"gpt": usage(150, 0.5), "gemini": usage(150, None)}})
    write(run / "build" / "stats.json", {"samples": 70, "examples": 140, "rationale_examples": 70,
                                         "feedback_examples": 70, "selection": "random_one",
                                         "per_teacher": {"gpt": {"rationale": 55, "feedback": 40}}})
    write(run / "train" / "stats.json", {
        "examples": 140, "steps": 3, "truncated": 2, "first_loss": 2.0, "last_loss": 1.2, "seconds": 9.5,
        "log": [{"step": s, "loss": 2.0 - 0.4 * s, "feedback_loss": 2.2 - 0.4 * s,
                 "rationale_loss": 1.8 - 0.4 * s} for s in (1, 2, 3)]})
    write(run / "evaluate" / "metrics.json", {
        "split": "test", "base": {"correct": 30, "total": 100, "accuracy": 0.30, "invalid": 4},
        "tuned": {"correct": round(tuned * 100), "total": 100, "accuracy": tuned, "invalid": 1},
        "gain": tuned - 0.30})
    return run


def test_report_has_the_runs_numbers_plots_and_a_self_contained_page(tmp_path):
    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    md, page = write_report(main)
    text = md.read_text()
    # with the Wilson 95% interval of each accuracy
    assert "| base | 30 / 100 | 30.00% | 21.89-39.58% | 4 |" in text
    assert "| tuned | 36 / 100 | 36.00% | 27.27-45.76% | 1 |" in text
    # a metrics.json without per-question results: the change is shown, never called a gain
    assert ("Change after FAIR tuning: 30.00% -> 36.00% (+6.00 points); not tested: not paired "
            "question by question (no per-question results).") in text
    assert "Gain" not in text
    assert "| 80 / 200 | 40.00% | 3 | 5 |" in text                      # Table 2
    assert "| gpt | 310 | 308 | 2 | 4 | 310,000 | 31,000 | $0.7500 |" in text  # Table 5, both stages
    assert "| gemini | 310 | 308 | 2 | 4 | 310,000 | 31,000 | unknown |" in text
    assert "| gpt | 80 | 70 | 87.50% |" in text and "| total | 160 | 90 | 56.25% |" in text  # Table 4
    for png in ("review_heatmap.png", "review_scores.png", "training_loss.png"):
        assert (main / "report" / png).read_bytes()[:8] == PNG
        assert f"]({png})" in text
    html = page.read_text()
    assert html.count("src='data:image/png;base64,") == 3 and not re.search(r"src=['\"]http", html)
    assert "<td>36.00%</td>" in html and "Variants and sweep" not in html


def test_the_main_report_compares_variants_and_draws_the_alpha_curve(tmp_path):
    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    for alpha, tuned in ((0.0, 0.33), (1.0, 0.31)):
        fake_run(tmp_path, f"demo.alpha-{alpha:g}", variant=f"alpha-{alpha:g}",
                 overrides={"training.alpha": alpha}, tuned=tuned, alpha=alpha)
    fake_run(tmp_path, "demo.no-review", variant="no-review", overrides={"review.enabled": False}, tuned=0.34)
    other = fake_run(tmp_path / "elsewhere", "other", variant=None, overrides={}, tuned=0.9)
    write(other / "run.json", {"name": "other", "spec": "another-spec", "variant": None, "overrides": {}})
    text = write_report(main)[0].read_text()
    assert ("| demo.alpha-0 | training.alpha = 0.0 | 30.00% (21.89-39.58%) | 33.00% (24.56-42.69%) "
            "| not paired |") in text
    assert "| demo.no-review | review.enabled = False | 30.00% (21.89-39.58%) | 34.00% (" in text
    assert "| other |" not in text and "90.00%" not in text  # another spec's run is not a sibling
    curve = main / "report" / "accuracy_vs_training_alpha.png"
    assert curve.read_bytes()[:8] == PNG and "paper Figure 5" in text
    # a variant's own report has no comparison
    assert "Variants and sweep" not in write_report(tmp_path / "demo.no-review")[0].read_text()


@pytest.mark.slow
def test_fairspec_report_command(tmp_path):
    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    done = subprocess.run([sys.executable, "-m", "fairspec.cli", "report", str(main)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {main / 'report' / 'report.html'}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "fairspec.cli", "report", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is not a run folder" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("missing", ["review", "train", "evaluate"])
def test_a_run_that_stopped_early_still_reports_what_it_has(tmp_path, missing):
    import shutil

    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    shutil.rmtree(main / missing)
    text = write_report(main)[0].read_text()
    assert "paper Table 2" in text


def test_the_report_says_which_questions_tuning_lost_and_why(tmp_path):
    from fairspec.stages.evaluate import changes

    def row(i, correct, valid=True, finish="stop"):
        return {"index": i, "correct": correct, "valid": valid, "finish_reason": finish}

    base = [row(0, True), row(1, True), row(2, True), row(3, False), row(4, True)]
    tuned = [row(0, False, valid=False), row(1, False, valid=False, finish="length"),
             row(2, False), row(3, True), row(4, True)]
    found = changes(base, tuned)
    assert found == {"gained": [3], "lost": [0, 1, 2], "lost_no_answer": [0],
                     "lost_truncated": [1], "lost_other_answer": [2]}
    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    metrics = json.loads((main / "evaluate" / "metrics.json").read_text())
    write(main / "evaluate" / "metrics.json", {**metrics, "changes": found})
    text = write_report(main)[0].read_text()
    assert ("the tuned student got 1 right that the base student got wrong (#3), and lost 3 "
            "(#0, 1, 2). Of the lost: 1 because it stated no answer the extractor reads; 1 "
            "because it ran out of tokens before stating one; 1 because it stated another "
            "answer.") in text
    write(main / "evaluate" / "metrics.json", {**metrics, "changes": changes(base, base)})
    assert "right exactly where the base one is" in write_report(main)[0].read_text()


def test_the_teachers_table_shows_cached_input_and_reasoning_as_billed(tmp_path):
    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    # a thinking teacher with a prompt cache: 4 calls of 1000 in (800 cached), 300 out
    # (200 reasoning) at input 2, cached 0.5, output 8 per Mtok: 4 * $0.0032 in each stage
    billed = {**usage(4, 4 * (200 * 2.0 + 800 * 0.5 + 300 * 8.0) / 1e6),
              "input_tokens": 4000, "output_tokens": 1200, "cached_input_tokens": 3200,
              "reasoning_tokens": 800}
    for stage in ("teach", "review"):
        stats = json.loads((main / stage / "stats.json").read_text())
        stats["teachers"]["claude"] = billed
        write(main / stage / "stats.json", stats)
    md, _ = write_report(main)
    text = md.read_text()
    assert "| in tokens | of which cached | out tokens | of which reasoning | USD |" in text
    assert "| claude | 8 | 6 | 2 | 4 | 8,000 | 6,400 | 2,400 | 1,600 | $0.0256 |" in text
    # the teachers of earlier stats files (no such counts) read as none
    assert "| gpt | 310 | 308 | 2 | 4 | 310,000 | 0 | 31,000 | 0 | $0.7500 |" in text
    assert "cached input at the cached input price" in text


def test_the_report_counts_replies_the_output_budget_cut_per_teacher(tmp_path):
    main = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    assert "cut short by the output budget" not in write_report(main)[0].read_text()
    stats = json.loads((main / "teach" / "stats.json").read_text())
    stats["cut"] = {"gemini": {"truncated": 3, "empty": 1,
                               "finish_reasons": {"MAX_TOKENS": 3, "SAFETY": 1}}}
    write(main / "teach" / "stats.json", stats)
    text = write_report(main)[0].read_text()
    assert "gemini 3 truncated, 1 empty (finish reasons: MAX_TOKENS 3, SAFETY 1)" in text


def test_the_report_shows_review_against_the_gold_answer_per_teacher(tmp_path):
    run = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    stats_path = run / "review" / "stats.json"
    stats = json.loads(stats_path.read_text())
    stats["gold_check"] = {
        "per_teacher": {
            "gemini": {"gold_accepted": 10, "gold_rejected": 30, "not_gold_accepted": 10,
                       "not_gold_rejected": 30},
            "gpt": {"gold_accepted": 60, "gold_rejected": 0, "not_gold_accepted": 10,
                    "not_gold_rejected": 10}},
        "total": {"gold_accepted": 70, "gold_rejected": 30, "not_gold_accepted": 20,
                  "not_gold_rejected": 40},
        "dropped_before_review": 0}
    stats_path.write_text(json.dumps(stats))
    text = write_report(run)[0].read_text()
    table = text.split("Peer review against the gold answer", 1)[1]
    # gemini: 10 of its 40 wrong answers kept, 30 of its 40 right ones dropped
    assert "| gemini | 10 | 30 | 10 | 30 | 25.00% | 75.00% |" in table
    assert "| gpt | 60 | 0 | 10 | 10 | 50.00% | 0.00% |" in table
    assert "| total | 70 | 30 | 20 | 40 | 33.33% | 30.00% |" in table


def test_no_gold_table_without_the_check(tmp_path):
    run = fake_run(tmp_path, "demo", variant=None, overrides={}, tuned=0.36)
    assert "against the gold answer" not in write_report(run)[0].read_text()
