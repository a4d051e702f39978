"""The tracker run of a stage's run (and round): what the train and report stages share."""

from __future__ import annotations

from pathlib import Path

from fairspec.plan.kinds import round_of
from fairspec.plan.stage_settings import Tracking
from fairspec.stages.context import StageContext
from fairspec.tracking import TrackerTarget

TENSORBOARD_FOLDER = "tensorboard"


def tracker_target(ctx: StageContext, tracking: Tracking | None, round_no: int | None = None
                   ) -> TrackerTarget | None:
    """Where this run's round (the stage's own, by default) is tracked by ``tracking`` (the
    stage's settings); None: no tracker.

    Round 1 is the run itself (``<run>/tensorboard/``, MLflow run ``<run>``); round k >= 2 is
    its own tracker run (``<run>/tensorboard/round-k/``, ``<run>/round-k``)."""
    if tracking is None or not tracking.report_to:
        return None
    k = round_of(ctx.stage.name) if round_no is None else round_no
    folder = Path(ctx.run.run_dir) / TENSORBOARD_FOLDER
    return TrackerTarget(
        report_to=tuple(tracking.report_to),
        run_name=tracking.run if k == 1 else f"{tracking.run}/round-{k}",
        experiment=tracking.experiment,
        tensorboard_dir=folder if k == 1 else folder / f"round-{k}",
    )
