"""The report's section on the reviewers: Krippendorff's alpha, pairwise Spearman and each
reviewer against the gold answer, escaped like the rest of the page."""

from __future__ import annotations

import sys
from pathlib import Path

from run_folders import write

from fairspec.report import write_report
from fairspec.report.review_quality import HEADING, HEADING_NO_GOLD
from fairspec.review.agreement import krippendorff_alpha

JUROR = "<script>alert(1)</script>"  # a reviewer name the page must show as text

#: (index, author, reaches_gold) -> {reviewer: score}; None: a review with no valid score.
#: gpt and gemini review each other, the juror (no teacher) reviews everything.
SCORES = {
    (0, "gemini", True): {JUROR: 5, "gpt": 5},
    (1, "gemini", True): {JUROR: 4, "gpt": 3},
    (2, "gemini", False): {JUROR: 2, "gpt": 4},
    (0, "gpt", True): {JUROR: 5, "gemini": 4},
    (1, "gpt", False): {JUROR: 3, "gemini": None},
    (2, "gpt", False): {JUROR: 1, "gemini": 2},
}


def reviews(gold_check: bool = True) -> list[dict]:
    return [{"index": index, "author": author, "reviewer": reviewer, "text": "Score: [x]",
             "status": "ok", "score": score, "key": f"k{index}{author}{reviewer}",
             "reaches_gold": gold if gold_check else None}
            for (index, author, gold), by in SCORES.items() for reviewer, score in by.items()]


def reviewed_run(root: Path, *, gold_check: bool = True, settings: bool = True) -> Path:
    run = root / "demo"
    info = {"name": "demo", "spec": "demo", "variant": None, "overrides": {}}
    if settings:  # the resolved spec, as the executor writes it, in short
        info["settings"] = {"review": {"threshold": 4, "accept": ">=", "aggregate": "mean"}}
    write(run / "run.json", info)
    write(run / "exam" / "stats.json", {"total": 10, "wrong": 3, "invalid": 0, "truncated": 0})
    rows = reviews(gold_check)
    write(run / "review" / "reviews.jsonl", rows)
    write(run / "review" / "stats.json", {
        "enabled": True, "rationales": 6, "reviewable": 6, "accepted": 3,
        "accepted_per_teacher": {"gpt": 1, "gemini": 2},
        "rationales_per_teacher": {"gpt": 3, "gemini": 3}, "reviews_made": len(rows),
        "reviews_saved_by_early_exit": 0, "invalid_scores": 1, "score_range": [1, 5],
        "mean_score_matrix": {}})
    return run


def section(text: str, heading: str = HEADING) -> str:
    return text.split(f"{heading}</h2>" if "<html" in text else f"## {heading}\n", 1)[1]


def test_the_section_shows_alpha_spearman_and_each_reviewer_against_gold(tmp_path):
    run = reviewed_run(tmp_path)
    md, page = write_report(run)
    text = section(md.read_text())
    alpha = krippendorff_alpha(reviews())
    # 6 rationales, 5 with two valid scores (gemini gave gpt's #1 no score), 10 scores
    assert (alpha.units, alpha.pairable, alpha.scores) == (6, 5, 10)
    assert (f"Krippendorff's alpha (ordinal) over the 5 rationales with two or more valid "
            f"scores (10 scores; 6 rationales have at least one): {alpha.value:.3f}.") in text
    assert " 1 rationale with a single valid score (early exit stopped asking, or a review " \
        "had no score) is not in it" in text
    # juror vs gpt on gemini's three: ranks (3,2,1) vs (3,1,2): rho = 1 - 6*2/24 = 0.5
    assert f"| {JUROR} / gpt | 3 | 0.500 |" in text
    assert f"| {JUROR} / gemini | 2 | - | - | fewer than 3 rationales scored by both |" in text
    assert "| gemini / gpt | 0 | - | - | fewer than 3 rationales scored by both |" in text
    # per reviewer, threshold >= 4 from run.json
    assert "| gemini | 3 | 2 | 4.00 (1) | 2.00 (1) | 0 / 1 (0.00%) | 0 / 1 (0.00%) | 1.000 |" in text
    assert "| gpt | 3 | 3 | 4.00 (2) | 4.00 (1) | 1 / 1 (100.00%) | 1 / 2 (50.00%) | 0.500 |" in text
    assert (f"| {JUROR} | 6 | 6 | 4.67 (3) | 2.00 (3) | 0 / 3 (0.00%) | 0 / 3 (0.00%) "
            "| 1.000 |") in text
    assert "(score >= 4)" in text
    html = section(page.read_text())
    assert JUROR not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; / gpt" in html
    assert f"{alpha.value:.3f}" in html and "0 / 3 (0.00%)" in html


def test_without_the_gold_check_or_the_threshold_it_says_so(tmp_path):
    text = write_report(reviewed_run(tmp_path, gold_check=False))[0].read_text()
    assert HEADING not in text and "against the gold answer" not in text
    text = section(text, HEADING_NO_GOLD)
    assert "| gemini | 3 | 2 | 3.00 |" in text
    assert "The gold check was off (review.gold_check: off)" in text
    text = section(write_report(reviewed_run(tmp_path, settings=False))[0].read_text())
    assert "the review threshold is not recorded in this run's run.json" in text
    assert "| gpt | 3 | 3 | 4.00 (2) | 4.00 (1) | - | - | 0.500 |" in text


def test_without_scipy_and_krippendorff_one_sentence_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "krippendorff", None)  # import krippendorff: ImportError
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    text = section(write_report(reviewed_run(tmp_path))[0].read_text())
    assert "needs scipy and krippendorff: pip install 'fairspec[stats]'." in text
    assert "Krippendorff's alpha (ordinal) over" not in text
    assert "| gemini | 3 | 2 | 4.00 (1) |" in text  # the per-reviewer table needs neither


def test_no_section_when_review_was_off(tmp_path):
    run = reviewed_run(tmp_path)
    write(run / "review" / "stats.json", {
        "enabled": False, "rationales": 6, "reviewable": 6, "accepted": 6,
        "accepted_per_teacher": {"gpt": 3, "gemini": 3},
        "rationales_per_teacher": {"gpt": 3, "gemini": 3}})
    text = write_report(run)[0].read_text()
    assert HEADING not in text and HEADING_NO_GOLD not in text
