"""A run's numbers as a tracker shows them: fairspec's metrics of each round, flat names
(``accuracy/tuned``, ``review/accepted_share``), logged beside the Trainer's losses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fairspec.report.collect import RoundSummary, RunSummary


@dataclass
class TrackedRound:
    """One round's metrics at its last training step, and the accuracy as a two-point
    series (the base student at step 0, the tuned one at the last step)."""

    round: int
    step: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    series: dict[str, dict[int, float]] = field(default_factory=dict)


def _share(part: Any, whole: Any) -> float | None:
    return part / whole if isinstance(part, int | float) and whole else None


def _round_metrics(summary: RoundSummary) -> TrackedRound:
    exam, teach, review = summary.exam or {}, summary.teach or {}, summary.review or {}
    build, train, metrics = summary.build or {}, summary.train or {}, summary.metrics or {}
    step = int(train.get("steps") or 0)
    out: dict[str, float | None] = {
        "exam/accuracy": exam.get("accuracy"), "exam/wrong": exam.get("wrong"),
        "exam/total": exam.get("total"),
        "review/rationales": review.get("rationales"), "review/accepted": review.get("accepted"),
        "review/accepted_share": _share(review.get("accepted"), review.get("rationales")),
        "review/reviews": review.get("reviews_made"),
        "build/samples": build.get("samples"), "build/examples": build.get("examples"),
        "train/steps": train.get("steps"), "train/loss": train.get("train_loss"),
        "accuracy/gain": metrics.get("gain"),
    }
    series: dict[str, dict[int, float]] = {}
    for label, at in (("base", 0), ("tuned", step)):
        accuracy = (metrics.get(label) or {}).get("accuracy")
        out[f"accuracy/{label}"] = accuracy
        if accuracy is not None:
            series.setdefault("accuracy/student", {})[at] = accuracy
    calls = made = 0
    usd: float | None = 0.0
    for stage in (teach, review):
        for name, usage in (stage.get("teachers") or {}).items():
            calls, made = calls + usage.get("calls", 0), made + usage.get("made", 0)
            usd = None if usd is None or usage.get("usd") is None else usd + usage["usd"]
            out[f"teachers/{name}/calls"] = (out.get(f"teachers/{name}/calls") or 0) + usage.get("calls", 0)
    out.update({"teachers/calls": calls, "teachers/paid_calls": made, "teachers/usd": usd})
    return TrackedRound(summary.round, step, out, series)


def tracked_rounds(run: RunSummary) -> list[TrackedRound]:
    """Each round's metrics (one entry for a run of one round)."""
    return [_round_metrics(summary) for summary in run.rounds]
