"""The report of a run whose reviews were scored from log-probabilities (review.scoring: logprobs):
the heatmap over the run's score range, a histogram of the expected scores, each reviewer's
mean distribution over the scores, and how each review was scored (the fallback made visible).
Text-scoring runs, and older runs whose stats say nothing of scoring, keep the text report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_folders import PNG, write

from fairspec.report import plots, write_report
from fairspec.report.plots import mean_distributions, score_distributions

COUNTS_SENTENCE = "How each review was scored: "


def dist(score_range, **p: float) -> dict[str, float]:
    """A distribution over every score of the range, as the review stage writes it."""
    return {str(s): p.get(f"p{s}", 0.0) for s in range(score_range[0], score_range[1] + 1)}


def logprob_reviews(score_range=(1, 5)) -> list[dict]:
    """3 read at the stated score, 2 forced, 1 from the text, 4 without a score."""
    r = score_range
    rows = [
        ("gpt", "gemini", 3.7, "logprobs", dist(r, p2=0.1, p3=0.2, p4=0.6, p5=0.1)),
        ("gpt", "local", 4.5, "logprobs", dist(r, p4=0.5, p5=0.5)),
        ("gpt", "gemini", 5.0, "logprobs", dist(r, p5=1.0)),
        ("local", "gpt", 3.0, "logprobs-forced", dist(r, p3=1.0)),
        ("local", "gemini", 2.5, "logprobs-forced", dist(r, p2=0.5, p3=0.5)),
        ("gemini", "gpt", 4, "text", None),
        ("gemini", "local", None, None, None),
        ("gemini", "gpt", None, None, None),
        ("local", "gpt", None, None, None),
        ("local", "gemini", None, None, None),
    ]
    return [{"index": i, "reviewer": rev, "author": author, "text": "...", "status": "ok",
             "score": score, "key": f"k{i}", "scored_by": how, "distribution": d}
            for i, (rev, author, score, how, d) in enumerate(rows)]


def matrix_of(reviews: list[dict]) -> dict:
    out: dict = {}
    for reviewer in sorted({r["reviewer"] for r in reviews}):
        out[reviewer] = {}
        for author in ("gemini", "gpt", "local"):
            got = [r["score"] for r in reviews
                   if r["reviewer"] == reviewer and r["author"] == author and r["score"] is not None]
            out[reviewer][author] = sum(got) / len(got) if got else None
    return out


def fake_run(root: Path, *, scoring: str | None, score_range=(1, 5), fallback: str = "text") -> Path:
    """A tiny run folder that reached the review stage. ``scoring``: "logprobs", "text" or None
    (an older run: its stats have no ``scoring`` key)."""
    run = root / f"run-{scoring}"
    write(run / "run.json", {"name": run.name, "spec": f"demo-{scoring}", "variant": None,
                             "overrides": {}})
    write(run / "exam" / "stats.json", {"total": 20, "wrong": 8, "invalid": 0, "truncated": 0})
    if scoring == "logprobs":
        reviews = logprob_reviews(score_range)
    else:  # text scores: integers, no scored_by / distribution
        reviews = [{k: v for k, v in r.items() if k not in ("scored_by", "distribution")}
                   | {"score": None if r["score"] is None else round(r["score"])}
                   for r in logprob_reviews(score_range)]
    stats = {
        "enabled": True, "rationales": 8, "reviewable": 8, "accepted": 3,
        "accepted_per_teacher": {"gemini": 1, "gpt": 1, "local": 1},
        "rationales_per_teacher": {"gemini": 3, "gpt": 3, "local": 2},
        "reviews_made": len(reviews), "reviews_saved_by_early_exit": 2,
        "invalid_scores": sum(1 for r in reviews if r["score"] is None),
        "score_range": list(score_range), "mean_score_matrix": matrix_of(reviews),
        "score_histogram": {}, "teachers": {},
    }
    if scoring is not None:
        stats["scoring"] = {"method": scoring, "fallback": fallback}
    if scoring == "logprobs":
        stats["scored_by"] = {"logprobs": 3, "logprobs-forced": 2, "text": 1, "none": 4}
    write(run / "review" / "reviews.jsonl", reviews)
    write(run / "review" / "stats.json", stats)
    return run


@pytest.fixture
def figures(monkeypatch) -> dict[str, object]:
    """Every figure the report saves, by file name (the PNGs are still written)."""
    saved: dict[str, object] = {}
    real = plots._save

    def keep(fig, path):
        saved[Path(path).name] = fig
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def test_a_logprobs_run_reports_distributions_and_how_each_review_was_scored(tmp_path, figures):
    run = fake_run(tmp_path, scoring="logprobs")
    md, page = write_report(run)
    text = md.read_text()
    assert "Scores were read from log-probabilities" in text
    assert ("How each review was scored: read from log-probabilities at the stated score: 3; "
            "forced after a score cue: 2; from the text (no log-probabilities returned): 1; "
            "no score: 4.") in text
    assert "took the score stated in its text (scoring_fallback: text)" in text
    for png in ("review_heatmap.png", "review_scores.png", "review_distributions.png"):
        assert (run / "report" / png).read_bytes()[:8] == PNG
        assert f"]({png})" in text
    assert page.read_text().count("src='data:image/png;base64,") == 3

    # one panel per reviewer with a distribution (gemini has none), a line at its mean expected score
    fig = figures["review_distributions.png"]
    panels = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title(loc="left") for ax in panels] == ["gpt (3 reviews)", "local (2 reviews)"]
    gpt_line = [line.get_xdata()[0] for line in panels[0].lines]
    assert gpt_line == [pytest.approx((3.7 + 4.5 + 5.0) / 3)]
    assert [p.get_height() for p in panels[1].patches] == pytest.approx([0, 0.25, 0.75, 0, 0])

    # the histogram bins the real-valued scores: every scored review counted once, 3.7 near 3.75
    hist = figures["review_scores.png"].axes[0]
    assert "expected score" in hist.get_xlabel()
    assert sum(p.get_height() for p in hist.patches) == 6
    assert any(p.get_height() == 1 and 3.625 < p.get_x() + p.get_width() / 2 < 3.875
               for p in hist.patches)  # the bin [3.625, 3.875) around 3.75
    assert any("gemini (2 without a score)" == t.get_text() for t in hist.get_legend().get_texts())


def test_the_counts_come_from_the_rows_when_the_stats_lack_them(tmp_path):
    run = fake_run(tmp_path, scoring="logprobs", fallback="none")
    stats = json.loads((run / "review" / "stats.json").read_text())
    del stats["scored_by"]
    write(run / "review" / "stats.json", stats)
    text = write_report(run)[0].read_text()
    assert ("at the stated score: 3; forced after a score cue: 2; from the text (no "
            "log-probabilities returned): 1; no score: 4.") in text
    assert "got no score (scoring_fallback: none)" in text


@pytest.mark.parametrize("scoring", ["text", None])
def test_a_text_scored_run_has_no_distributions_or_counts(tmp_path, figures, scoring):
    run = fake_run(tmp_path, scoring=scoring)
    text = write_report(run)[0].read_text()
    assert COUNTS_SENTENCE not in text and "log-probabilities" not in text
    assert not (run / "report" / "review_distributions.png").exists()
    assert "review_distributions.png" not in text
    # the integer histogram as before: one bar group per score and "none"
    hist = figures["review_scores.png"].axes[0]
    assert [t.get_text() for t in hist.get_xticklabels()] == ["1", "2", "3", "4", "5", "none"]
    assert sum(p.get_height() for p in hist.patches) == 10
    assert figures["review_heatmap.png"].axes[1].get_ylabel() == "mean score"


@pytest.mark.parametrize(("scoring", "score_range", "label"),
                         [("logprobs", (0, 9), "mean expected score"),
                          ("text", (1, 10), "mean score"),
                          (None, (2, 4), "mean score")])
def test_the_heatmap_spans_the_runs_score_range(tmp_path, figures, scoring, score_range, label):
    run = fake_run(tmp_path, scoring=scoring, score_range=score_range)
    write_report(run)
    fig = figures["review_heatmap.png"]
    assert fig.axes[0].images[0].get_clim() == (float(score_range[0]), float(score_range[1]))
    assert fig.axes[1].get_ylabel() == label  # the colour bar
    assert (run / "report" / "review_heatmap.png").read_bytes()[:8] == PNG


def test_no_distribution_no_plot(tmp_path):
    rows = [{"reviewer": "gpt", "score": 4, "scored_by": "text", "distribution": None},
            {"reviewer": "gpt", "score": None, "scored_by": None, "distribution": None},
            {"reviewer": "gemini", "score": 3}]  # a text-scoring row
    assert score_distributions(rows, (1, 5), tmp_path / "d.png") is None
    assert score_distributions([], (1, 5), tmp_path / "d.png") is None
    assert not (tmp_path / "d.png").exists()


def test_mean_distributions_average_each_reviewers_reviews():
    means = mean_distributions(logprob_reviews(), (1, 5))
    assert list(means) == ["gpt", "local"]
    probabilities, expected, n = means["gpt"]
    assert n == 3
    assert probabilities == pytest.approx([0, 0.1 / 3, 0.2 / 3, 1.1 / 3, 1.6 / 3])
    assert expected == pytest.approx((3.7 + 4.5 + 5.0) / 3)
