"""The report's PNG plots (matplotlib, no display needed): each returns the file or None when
there is nothing to draw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def score_heatmap(matrix: Mapping[str, Mapping[str, float | None]], path: Path) -> Path | None:
    """Mean score each reviewer (rows) gave each author (columns)."""
    reviewers = sorted(matrix)
    authors = sorted({a for row in matrix.values() for a in row})
    if not reviewers or not authors:
        return None
    values = [[matrix[r].get(a) for a in authors] for r in reviewers]
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    fig = Figure(figsize=(1.6 + 1.3 * len(authors), 1.2 + 0.7 * len(reviewers)))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")  # no score: light grey
    image = ax.imshow(grid, cmap=cmap, vmin=1, vmax=5, aspect="auto")
    ax.set_xticks(range(len(authors)), authors, rotation=30, ha="right")
    ax.set_yticks(range(len(reviewers)), reviewers)
    ax.set_xlabel("author of the rationale")
    ax.set_ylabel("reviewer")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, "-" if value is None else f"{value:.2f}", ha="center", va="center",
                    color="white" if value is not None and value < 3.5 else "black")
    fig.colorbar(image, ax=ax, label="mean score")
    ax.set_title("Peer review: mean score given")
    return _save(fig, path)


def score_histogram(reviews: Sequence[Mapping[str, Any]], score_range: Sequence[int],
                    path: Path) -> Path | None:
    """How often each reviewer gave each score of the scale (unreadable scores as 'none')."""
    if not reviews:
        return None
    reviewers = sorted({r["reviewer"] for r in reviews})
    scores = list(range(score_range[0], score_range[1] + 1))
    labels = [str(s) for s in scores] + ["none"]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    width = 0.8 / len(reviewers)
    for k, reviewer in enumerate(reviewers):
        counts = [sum(1 for r in reviews if r["reviewer"] == reviewer and r["score"] == s) for s in scores]
        counts.append(sum(1 for r in reviews if r["reviewer"] == reviewer and r["score"] is None))
        ax.bar([i + k * width for i in range(len(labels))], counts, width=width, label=reviewer)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    ax.set_xlabel("score")
    ax.set_ylabel("reviews")
    ax.legend(title="reviewer")
    ax.set_title("Peer review: score histogram")
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
                   path: Path) -> Path | None:
    """Tuned accuracy against a swept value (paper Figure 5 for alpha)."""
    points = sorted(points)
    if len(points) < 2:
        return None
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    ax.plot([x for x, _ in points], [100 * y for _, y in points], marker="o", label="tuned")
    if baseline is not None:
        ax.axhline(100 * baseline, color="grey", linestyle=":", label="base student")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    ax.set_title(f"Accuracy against {xlabel}")
    return _save(fig, path)
