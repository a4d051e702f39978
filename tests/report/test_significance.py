"""Intervals and paired tests of the report (fairspec.report.significance), checked against
published and hand-computed numbers, and the words the report and metrics.json use for them."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from run_folders import write

from fairspec.report import significance, write_report
from fairspec.report.significance import (
    PairedTable,
    compare,
    headline,
    mcnemar_exact_p,
    pair,
    paired_difference_interval,
    table_between,
    table_from_metrics,
    wilson_interval,
)
from fairspec.stages.evaluate import add_statistics, changes


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n", "published"), [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score)
    (81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)),
    (1, 29, (0.0061, 0.1718)),
    (8, 24, (0.1797, 0.5329)),  # by hand (the formula above)
])
def test_the_wilson_interval_is_the_published_one(k, n, published):
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx(published, abs=5e-5)
    assert (low, high) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)


def test_the_wilson_interval_of_no_question_is_none_and_of_all_right_ends_at_1():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(24, 24)
    assert high == 1.0 and low == pytest.approx(wilson_by_hand(24, 24)[0])
    assert low == pytest.approx(0.8620, abs=5e-5)


@pytest.mark.parametrize(("gained", "lost", "p"), [
    (2, 0, 0.5),                       # 2 * (1/2)^2
    (10, 2, 158 / 4096),               # 2 * (1 + 12 + 66) / 2^12 = 0.0386
    (2, 10, 158 / 4096),
    (6, 16, 0.0525),                   # Cavo et al. 2012 (Fagerland et al. 2013: exact p 0.0525)
    (0, 0, 1.0),                       # no discordant pair: no evidence at all
    (5, 5, 1.0),
])
def test_mcnemar_exact_p_is_the_two_sided_binomial_test_of_the_discordant_pairs(gained, lost, p):
    assert mcnemar_exact_p(gained, lost) == pytest.approx(p, abs=5e-5)


def test_newcombes_paired_interval_is_the_published_one():
    # Complete response before and after consolidation therapy (Cavo et al. 2012): 59 both,
    # 16 after only, 6 before only, 80 neither. Fagerland, Lydersen & Laake, Statistical
    # Analysis of Contingency Tables (2017), ch. 8, Newcombe square-and-add: -0.0621
    # (-0.1186 to -0.0046) for before - after; here after - before, so the mirror image.
    cavo = PairedTable(both=59, gained=16, lost=6, neither=80)
    assert cavo.difference == pytest.approx(0.0621, abs=5e-5)
    assert paired_difference_interval(cavo) == pytest.approx((0.0046, 0.1186), abs=5e-5)
    mirrored = PairedTable(both=59, gained=6, lost=16, neither=80)
    assert paired_difference_interval(mirrored) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    # the interval excludes 0 but the exact test does not reject at 5%: not called a gain
    assert compare(cavo).verdict == "no evidence"


def test_paired_edge_cases_no_question_all_right_and_no_discordant_pair():
    empty = PairedTable(0, 0, 0, 0)
    assert empty.difference is None and paired_difference_interval(empty) is None
    assert significance.paired_fields(empty)["diff_ci95"] is None
    all_right = PairedTable(both=24, gained=0, lost=0, neither=0)
    low, high = paired_difference_interval(all_right)
    assert low < 0 < high and low == pytest.approx(-high)  # the Wilson widths, phi = 0
    same = compare(PairedTable(both=10, gained=0, lost=0, neither=14))
    assert same.p_value == 1.0 and same.verdict == "no evidence"
    assert same.interval[0] < 0 < same.interval[1]


def test_a_change_is_called_a_gain_or_a_loss_only_when_the_test_says_so():
    assert compare(PairedTable(both=2, gained=10, lost=0, neither=12)).verdict == "gain"
    assert compare(PairedTable(both=2, gained=0, lost=10, neither=12)).verdict == "loss"
    assert compare(PairedTable(both=20, gained=8, lost=2, neither=70)).verdict == "no evidence"


def test_the_headline_of_a_change_whose_interval_holds_0_says_no_evidence():
    table = PairedTable(both=0, gained=0, lost=2, neither=22)
    text = headline({"accuracy": 2 / 24}, {"accuracy": 0.0}, table)
    assert text.startswith("No evidence of a change from FAIR tuning: 8.33% -> 0.00% on 24 "
                           "questions (gained 0, lost 2; McNemar exact p = 0.50; difference "
                           "-8.33 points, 95% CI ")
    low, high = compare(table).interval
    assert low < 0 < high and "Gain" not in text and "Loss" not in text


def test_the_headline_of_a_significant_change_says_gain_with_its_interval_and_p():
    table = PairedTable(both=2, gained=10, lost=0, neither=12)
    low, high = compare(table).interval
    text = headline({"accuracy": 2 / 24}, {"accuracy": 12 / 24}, table)
    assert text == (f"Gain from FAIR tuning: +41.67 points, 8.33% -> 50.00% on 24 questions "
                    f"(95% CI {100 * low:+.2f} to {100 * high:+.2f} points; gained 10, lost 0; "
                    "McNemar exact p = 0.002).")
    loss = headline({"accuracy": 12 / 24}, {"accuracy": 2 / 24},
                    PairedTable(both=2, gained=0, lost=10, neither=12))
    assert loss.startswith("Loss from FAIR tuning: -41.67 points, 50.00% -> 8.33%")


def row(index: int, correct: bool, gold: str = "1") -> dict:
    return {"index": index, "correct": correct, "valid": True, "finish_reason": "stop",
            "fields": {"question": f"q{index}"}, "gold": gold}


def test_answers_are_paired_by_question_index_not_by_order():
    base = [row(0, True), row(1, False), row(2, True), row(3, False)]
    tuned = [row(3, True), row(2, True), row(1, False), row(0, False)]
    assert pair(base, tuned) == PairedTable(both=1, gained=1, lost=1, neither=1)
    assert pair(base, tuned[:3]) is None  # not the same questions: not paired


def evaluated(base_right: set[int], tuned_right: set[int], n: int = 24, gold: str = "1") -> dict:
    """metrics.json as the evaluate stage writes it, from answers to ``n`` questions."""
    base = [row(i, i in base_right, gold) for i in range(n)]
    tuned = [row(i, i in tuned_right, gold) for i in range(n)]
    metrics = {"split": "test"}
    for label, records in (("base", base), ("tuned", tuned)):
        right = sum(r["correct"] for r in records)
        metrics[label] = {"total": n, "correct": right, "wrong": n - right, "invalid": 0,
                          "accuracy": right / n}
    metrics["gain"] = metrics["tuned"]["accuracy"] - metrics["base"]["accuracy"]
    metrics["changes"] = changes(base, tuned)
    add_statistics(metrics, {"base": base, "tuned": tuned})
    return metrics


def test_metrics_json_gains_intervals_and_the_paired_block_and_keeps_its_fields():
    metrics = evaluated({0, 1}, set())
    assert metrics["base"]["correct"] == 2 and metrics["gain"] == pytest.approx(-2 / 24)
    assert metrics["base"]["ci95"] == pytest.approx(wilson_by_hand(2, 24), abs=1e-6)
    assert metrics["base"]["correct_indices"] == [0, 1] and metrics["tuned"]["correct_indices"] == []
    assert metrics["tuned"]["ci95"] == pytest.approx([0.0, wilson_by_hand(0, 24)[1]], abs=1e-6)
    paired = metrics["paired"]
    assert {k: paired[k] for k in ("n", "both", "gained", "lost", "neither", "p_value")} == {
        "n": 24, "both": 0, "gained": 0, "lost": 2, "neither": 22, "p_value": 0.5}
    assert paired["diff_ci95"][0] < 0 < paired["diff_ci95"][1]
    assert metrics["questions"]["n"] == 24 and "Newcombe" in metrics["statistics"]["paired_interval"]
    json.dumps(metrics, allow_nan=False)  # plain JSON


def test_an_earlier_metrics_json_pairs_from_its_changes():
    metrics = evaluated({0, 1, 2}, {2, 3})
    earlier = {k: v for k, v in metrics.items() if k != "paired"}
    assert table_from_metrics(earlier) == table_from_metrics(metrics) \
        == PairedTable(both=1, gained=1, lost=2, neither=20)
    assert table_from_metrics({k: v for k, v in earlier.items() if k != "changes"}) \
        == "no per-question results"


def test_two_runs_pair_only_on_the_same_questions():
    main, variant = evaluated(set(), {0, 1, 2}), evaluated(set(), {1, 2, 3, 4})
    assert table_between(main, variant) == PairedTable(both=2, gained=2, lost=1, neither=19)
    other = evaluated(set(), {1, 2, 3, 4}, gold="2")  # same indices, other gold answers
    assert table_between(main, other) == "other questions"
    assert table_between(main, evaluated(set(), set(), n=23)) == "other questions"
    del variant["tuned"]["correct_indices"]
    assert table_between(main, variant) == "no per-question results"


def run_folder(root: Path, name: str, metrics: dict, overrides: dict | None = None) -> Path:
    run = root / name
    write(run / "run.json", {"name": name, "spec": "demo", "variant": name if overrides else None,
                             "overrides": overrides or {}})
    write(run / "exam" / "stats.json", {"total": 40, "wrong": 20, "invalid": 0, "truncated": 0})
    write(run / "evaluate" / "metrics.json", metrics)
    return run


def test_the_report_headline_and_variants_table_show_the_paired_test(tmp_path):
    main = run_folder(tmp_path, "demo", evaluated({0, 1}, set()))
    run_folder(tmp_path, "demo.alpha-0", evaluated({0, 1}, set(range(12))),
               {"training.alpha": 0.0})
    run_folder(tmp_path, "demo.other", evaluated({0, 1}, {0}, n=30), {"task.limit": 30})
    text = write_report(main)[0].read_text()
    assert "| base | 2 / 24 | 8.33% | 2.32-25.85% | 0 |" in text
    assert ("No evidence of a change from FAIR tuning: 8.33% -> 0.00% on 24 questions (gained 0, "
            "lost 2; McNemar exact p = 0.50; difference -8.33 points, 95% CI ") in text
    assert "Gain from" not in text and "McNemar's exact test" in text
    low, high = compare(PairedTable(both=0, gained=12, lost=0, neither=12)).interval
    assert (f"| demo.alpha-0 | training.alpha = 0.0 | 8.33% (2.32-25.85%) | 50.00% (31.43-68.57%) "
            f"| 12 / 0 | +50.00 ({100 * low:+.2f} to {100 * high:+.2f}) | < 0.001 |") in text
    assert "| demo.other | task.limit = 30 | 6.67% (1.85-21.32%) | 3.33% (0.59-16.67%) | not paired |" in text
    assert "Not paired with the main run (no test, no interval of the difference): demo.other " \
           "(other questions)." in text


def test_without_scipy_the_report_shows_accuracies_and_how_to_get_the_statistics(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import scipy.stats fails
    assert not significance.available() and wilson_interval(8, 24) is None
    assert mcnemar_exact_p(2, 0) is None
    metrics = evaluated({0, 1}, set())
    assert metrics["base"]["ci95"] is None and metrics["paired"]["p_value"] is None
    assert metrics["paired"]["lost"] == 2  # the counts need no scipy
    text = write_report(run_folder(tmp_path, "demo", metrics))[0].read_text()
    assert "| base | 2 / 24 | 8.33% | - | 0 |" in text
    assert ("Change after FAIR tuning: 8.33% -> 0.00% on 24 questions (gained 0, lost 2); not "
            "tested (scipy is not installed).") in text
    assert text.count("pip install 'fairspec[stats]'") == 1


def test_each_rounds_accuracy_comes_with_its_interval(tmp_path):
    run = run_folder(tmp_path, "r", evaluated({0, 1}, {0, 1, 2}))
    write(run / "round-2" / "exam" / "stats.json", {"total": 40, "wrong": 15, "invalid": 0,
                                                    "truncated": 0})
    write(run / "round-2" / "evaluate" / "metrics.json", evaluated({0, 1}, set(range(12))))
    text = write_report(run)[0].read_text()
    assert "| 1 | 20 / 40 | - | - | - | - | 12.50% (4.34-31.00%) |" in text
    assert "| 2 | 15 / 40 | - | - | - | - | 50.00% (31.43-68.57%) |" in text
    assert "Gain from FAIR tuning: +41.67 points, 8.33% -> 50.00% on 24 questions" in text


def sampled(counts: list[tuple[int, int]], k: int = 2, n: int = 4, fingerprint: str = "q") -> dict:
    """metrics.json of a run decoded k times a question: its tuned ``samples`` summary."""
    right = sorted(i for i, c in counts if c)
    return {"questions": {"n": n, "fingerprint": fingerprint},
            "base": {"total": n, "correct": 0, "invalid": 0, "accuracy": 0.0},
            "tuned": {"total": n, "correct": len(right), "invalid": 0, "accuracy": len(right) / n,
                      "correct_indices": right,
                      "samples": {"k": k, "correct_counts": [list(c) for c in counts],
                                  "mean_accuracy": sum(c for _, c in counts) / (n * k),
                                  "per_sample_accuracy": [], "majority_correct": len(right),
                                  "majority_accuracy": len(right) / n, "pass_correct": len(right),
                                  "pass_at_k": len(right) / n}}}


def test_runs_decoded_k_times_are_compared_on_per_question_rates():
    # rates A: 1, .5, 0, 0; B: 1, 1, .5, 0 -> differences 0, .5, .5, 0: mean .25, sd .2887,
    # t = .25 / (.2887 / 2) = 1.732 with 3 degrees of freedom: p = 0.1817, CI .25 -+ 3.182 * .1443
    a, b = sampled([(0, 2), (1, 1)]), sampled([(0, 2), (1, 2), (2, 1)])
    found = significance.rates_between(a, b)
    assert found["n"] == 4 and found["mean_difference"] == 0.25
    assert found["p_value"] == pytest.approx(0.1817, abs=1e-4)
    assert found["diff_ci95"] == pytest.approx([0.25 - 3.1824 * 0.14434, 0.25 + 3.1824 * 0.14434], abs=1e-3)
    assert significance.rates_between(a, sampled([(0, 2)], fingerprint="other")) == "other questions"
    once = evaluated(set(), {0, 1})
    assert significance.rates_between(a, once) == "no samples"


def test_the_variants_table_compares_sampled_runs_on_their_rates(tmp_path):
    main = run_folder(tmp_path, "demo", sampled([(0, 2), (1, 1)]))
    run_folder(tmp_path, "demo.alpha-0", sampled([(0, 2), (1, 2), (2, 1)]), {"training.alpha": 0.0})
    text = write_report(main)[0].read_text()
    row = next(line for line in text.splitlines() if line.startswith("| demo.alpha-0 |"))
    assert "| (rates over samples) | +25.00 (-20.93 to +70.93) | 0.18 |" in row
    assert "compared on each question's correctness rate over its samples" in text
