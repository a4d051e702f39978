"""The report's PNG plots (matplotlib, no display needed): each returns the file or None when
there is nothing to draw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _plain(name: Any) -> str:
    """A name as plain text on a plot (a ``$`` would start matplotlib's math mode)."""
    return str(name).replace("$", r"\$")


def score_heatmap(matrix: Mapping[str, Mapping[str, float | None]], score_range: Sequence[int],
                  path: Path, *, label: str = "mean score") -> Path | None:
    """Mean score each reviewer (rows) gave each author (columns), coloured over the run's
    ``score_range``; ``label`` names the colour bar ("mean expected score" for logprobs)."""
    reviewers = sorted(matrix)
    authors = sorted({a for row in matrix.values() for a in row})
    if not reviewers or not authors:
        return None
    low, high = float(score_range[0]), float(score_range[1])
    values = [[matrix[r].get(a) for a in authors] for r in reviewers]
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    fig = Figure(figsize=(1.6 + 1.3 * len(authors), 1.2 + 0.7 * len(reviewers)))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")  # no score: light grey
    image = ax.imshow(grid, cmap=cmap, vmin=low, vmax=high, aspect="auto")
    ax.set_xticks(range(len(authors)), [_plain(a) for a in authors], rotation=30, ha="right")
    ax.set_yticks(range(len(reviewers)), [_plain(r) for r in reviewers])
    ax.set_xlabel("author of the rationale")
    ax.set_ylabel("reviewer")
    dark = low + 0.625 * (high - low)  # viridis is dark below about here: white text
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, "-" if value is None else f"{value:.2f}", ha="center", va="center",
                    color="white" if value is not None and value < dark else "black")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(f"Peer review: {label} given")
    return _save(fig, path)


#: Bin width of the expected-score histogram (four bins per score, each score at a bin centre).
EXPECTED_BIN = 0.25


def score_histogram(reviews: Sequence[Mapping[str, Any]], score_range: Sequence[int],
                    path: Path, *, expected: bool = False) -> Path | None:
    """How often each reviewer gave each score of the scale (unreadable scores as 'none');
    ``expected`` (scoring: logprobs): the real-valued scores in bins of ``EXPECTED_BIN``,
    stacked per reviewer, reviews without a score counted in the legend."""
    if not reviews:
        return None
    if expected:
        return _expected_histogram(reviews, score_range, path)
    reviewers = sorted({r["reviewer"] for r in reviews})
    scores = list(range(score_range[0], score_range[1] + 1))
    labels = [str(s) for s in scores] + ["none"]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    width = 0.8 / len(reviewers)
    for k, reviewer in enumerate(reviewers):
        counts = [sum(1 for r in reviews if r["reviewer"] == reviewer and r["score"] == s) for s in scores]
        counts.append(sum(1 for r in reviews if r["reviewer"] == reviewer and r["score"] is None))
        ax.bar([i + k * width for i in range(len(labels))], counts, width=width, label=_plain(reviewer))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    ax.set_xlabel("score")
    ax.set_ylabel("reviews")
    ax.legend(title="reviewer")
    ax.set_title("Peer review: score histogram")
    return _save(fig, path)


def _expected_histogram(reviews: Sequence[Mapping[str, Any]], score_range: Sequence[int],
                        path: Path) -> Path | None:
    low, high = int(score_range[0]), int(score_range[1])
    reviewers = sorted({r["reviewer"] for r in reviews})
    half = EXPECTED_BIN / 2
    count = round((high - low) / EXPECTED_BIN) + 1
    edges = [low - half + k * EXPECTED_BIN for k in range(count + 1)]
    series, names = [], []
    for reviewer in reviewers:
        own = [r for r in reviews if r["reviewer"] == reviewer]
        scores = [float(r["score"]) for r in own if r["score"] is not None]
        missing = len(own) - len(scores)
        series.append(scores)
        names.append(_plain(reviewer) + (f" ({missing} without a score)" if missing else ""))
    fig = Figure(figsize=(8.0, 3.6))
    ax = fig.add_subplot()
    # stacked: each bin's bar is its total, split by reviewer (side by side they would be slivers)
    ax.hist(series, bins=edges, label=names, stacked=True, edgecolor="white", linewidth=0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(range(low, high + 1))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"expected score (bins of {EXPECTED_BIN:g})")
    ax.set_ylabel("reviews")
    ax.legend(title="reviewer", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars
    ax.set_title("Peer review: expected scores given")
    return _save(fig, path)


def _distribution(row: Mapping[str, Any], scores: Sequence[int]) -> list[float] | None:
    """A review's probabilities over ``scores`` (None: the review has no distribution)."""
    found = row.get("distribution")
    if not isinstance(found, Mapping) or not found:
        return None
    try:
        return [float(found.get(str(s), 0.0) or 0.0) for s in scores]
    except (TypeError, ValueError):
        return None


def mean_distributions(reviews: Sequence[Mapping[str, Any]], score_range: Sequence[int]
                       ) -> dict[str, tuple[list[float], float, int]]:
    """Per reviewer with a distribution: (mean probability of each score of the range over its
    reviews with one, its mean expected score, how many reviews that is)."""
    scores = list(range(score_range[0], score_range[1] + 1))
    found: dict[str, list[list[float]]] = {}
    for row in reviews:
        probabilities = _distribution(row, scores)
        if probabilities is not None:
            found.setdefault(row["reviewer"], []).append(probabilities)
    out = {}
    for reviewer in sorted(found):
        rows = found[reviewer]
        mean = [sum(column) / len(rows) for column in zip(*rows, strict=True)]
        total = sum(mean) or 1.0
        # the mean of the expected scores is the expected score of the mean distribution
        out[reviewer] = (mean, sum(s * p for s, p in zip(scores, mean, strict=True)) / total, len(rows))
    return out


def score_distributions(reviews: Sequence[Mapping[str, Any]], score_range: Sequence[int],
                        path: Path) -> Path | None:
    """Scoring: logprobs. One panel per reviewer: its mean probability of each score over its
    reviews that returned a distribution, and a line at its mean expected score; None when
    no review has a distribution."""
    means = mean_distributions(reviews, score_range)
    if not means:
        return None
    scores = list(range(score_range[0], score_range[1] + 1))
    colours = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(6.4, 0.9 + 1.7 * len(means)))
    axes = fig.subplots(len(means), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for k, (ax, (reviewer, (mean, expected, n))) in enumerate(zip(axes, means.items(), strict=True)):
        colour = colours(k % 10)
        ax.bar(scores, mean, width=0.6, color=colour, alpha=0.8)
        ax.axvline(expected, color="black", linestyle="--", linewidth=1.5)
        ax.text(expected, 1.0, f" mean {expected:.2f}", transform=ax.get_xaxis_transform(),
                ha="left", va="top", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"{_plain(reviewer)} ({n} review{'s' if n != 1 else ''})", fontsize=10, loc="left")
    axes[-1].set_xticks(scores)
    axes[-1].set_xlim(scores[0] - 0.6, scores[-1] + 0.6)
    axes[-1].set_xlabel("score")
    fig.suptitle("Peer review: mean score distribution per reviewer (dashed: mean expected score)",
                 fontsize=10)
    return _save(fig, path)


def loss_curve(log: Sequence[Mapping[str, Any]], alpha: float | None, path: Path) -> Path | None:
    """The joint loss and its two parts per logged optimizer step."""
    points = [e for e in log if "loss" in e and "step" in e]
    if len(points) < 2:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    steps = [e["step"] for e in points]
    ax.plot(steps, [e["loss"] for e in points], label="L (joint)", linewidth=2)
    for key, label in (("feedback_loss", "L_feedback"), ("rationale_loss", "L_rationale")):
        if any(key in e for e in points):
            ax.plot([e["step"] for e in points if key in e], [e[key] for e in points if key in e],
                    label=label, linestyle="--")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title("Training loss" + (f" (alpha = {alpha:g})" if alpha is not None else ""))
    return _save(fig, path)


def accuracy_curve(points: Sequence[tuple[float, float]], baseline: float | None, xlabel: str,
                   path: Path, *,
                   intervals: Mapping[float, tuple[float, float]] | None = None,
                   interval_label: str = "95% interval (Wilson)") -> Path | None:
    """Tuned accuracy against a swept value (paper Figure 5 for alpha); ``intervals``: each
    point's bar by its x (a 95% interval, or the spread over seeds: ``interval_label``)."""
    points = sorted(points)
    if len(points) < 2:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    ax.plot([x for x, _ in points], [100 * y for _, y in points], marker="o", label="tuned")
    bars = [(x, y, intervals[x]) for x, y in points if intervals and x in intervals]
    if bars:
        ax.errorbar([x for x, _, _ in bars], [100 * y for _, y, _ in bars],
                    yerr=[[100 * (y - lo) for _, y, (lo, _) in bars],
                          [100 * (hi - y) for _, y, (_, hi) in bars]],
                    fmt="none", ecolor="tab:blue", alpha=0.5, capsize=3,
                    label=interval_label)
    if baseline is not None:
        ax.axhline(100 * baseline, color="grey", linestyle=":", label="base student")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    ax.set_title(f"Accuracy against {xlabel}")
    return _save(fig, path)


def rounds_curve(rounds: Sequence[Mapping[str, Any]], baseline: float | None,
                 path: Path) -> Path | None:
    """Test accuracy of each round's tuned student, and each round's exam mistakes, against
    the round (``rounds``: {"round", "accuracy", "mistakes"}; None where not measured)."""
    points = [r for r in rounds if r.get("accuracy") is not None or r.get("mistakes") is not None]
    if len(points) < 2:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    acc = [(r["round"], 100 * r["accuracy"]) for r in points if r.get("accuracy") is not None]
    ax.plot([x for x, _ in acc], [y for _, y in acc], marker="o", label="tuned accuracy (test)")
    if baseline is not None:
        ax.axhline(100 * baseline, color="grey", linestyle=":", label="base student")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    wrong = [(r["round"], r["mistakes"]) for r in points if r.get("mistakes") is not None]
    if wrong:
        twin = ax.twinx()
        twin.plot([x for x, _ in wrong], [y for _, y in wrong], marker="s", color="tab:red",
                  linestyle="--", label="exam mistakes (train)")
        twin.set_ylabel("exam mistakes")
        twin.yaxis.set_major_locator(MaxNLocator(integer=True))
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="best")
    else:
        ax.legend()
    ax.set_title("FAIR in rounds: accuracy and mistakes per round")
    return _save(fig, path)
