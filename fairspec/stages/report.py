"""The report stage: one readable page per run (see :mod:`fairspec.report`), and the run's
metrics in its trackers (``training.report_to``), each round in its own tracker run."""

from __future__ import annotations

from typing import Any

from fairspec.plan.stage_settings import ReportSettings
from fairspec.report import write_report
from fairspec.report.collect import collect
from fairspec.report.metrics import tracked_rounds
from fairspec.stages.context import StageContext
from fairspec.stages.tracker import tracker_target
from fairspec.tracking import log_metrics


def run(ctx: StageContext) -> dict[str, Any]:
    ctx.prepare()
    settings = ctx.settings_as(ReportSettings)
    pages = write_report(ctx.folder.parent, folder=ctx.folder, locate=ctx.input,
                         rounds=settings.rounds)
    tracked = track(ctx, settings)
    ctx.finish({})
    return {"report": str(pages[1]), **({"tracked": tracked} if tracked else {})}


def track(ctx: StageContext, settings: ReportSettings) -> list[str]:
    """fairspec's metrics of each round to the trackers fairspec writes to; their names."""
    if tracker_target(ctx, settings.tracking) is None:
        return []
    run = collect(ctx.folder.parent, ctx.input, settings.rounds)
    written: list[str] = []
    for tracked in tracked_rounds(run):
        target = tracker_target(ctx, settings.tracking, tracked.round)
        assert target is not None
        written = log_metrics(target, tracked.metrics, step=tracked.step, series=tracked.series,
                              params=run.settings or {})
    return written
