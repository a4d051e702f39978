"""fairspec's own metrics of a run, sent to the tracker runs that hold the Trainer's losses.

One tracker run per fairspec run (and per later round): TensorBoard reads one folder per
run (``<run>/tensorboard/``, the Trainer's event files beside fairspec's), MLflow one run
per fairspec run in the spec's experiment (found by its ``fairspec.run_name`` tag, so the train
stage and the report stage write to the same one, and the variants sit side by side).
Nothing but names, numbers and the spec's resolved settings is logged: no environment
variable, key or path of the machine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairspec.errors import TrackerFailed

log = logging.getLogger(__name__)

#: The trackers fairspec writes its own metrics to; the Trainer's other integrations get the
#: training losses only.
FAIRSPEC_TRACKERS = ("tensorboard", "mlflow")
EVENTS_PREFIX = "events.out.tfevents."
FAIRSPEC_SUFFIX = ".fairspec"
RUN_TAG = "fairspec.run_name"


@dataclass(frozen=True)
class TrackerTarget:
    """Where one fairspec run (one round of it) is tracked."""

    report_to: tuple[str, ...]
    run_name: str           # the fairspec run, e.g. quickstart.no-review (round k >= 2: .../round-k)
    experiment: str         # the spec's name: every run and variant of the spec in one place
    tensorboard_dir: Path   # the run's TensorBoard folder

    def experiment_name(self) -> str:
        """MLflow's experiment: ``MLFLOW_EXPERIMENT_NAME`` when the user set it, else the spec's."""
        return os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.experiment


@contextmanager
def mlflow_errors(doing: str) -> Iterator[None]:
    """MLflow's exceptions as one clear :class:`TrackerFailed` naming the tracking URI."""
    try:
        yield
    except Exception as exc:  # MlflowException, or the store's own (sqlalchemy, requests)
        if isinstance(exc, TrackerFailed):
            raise
        from mlflow import get_tracking_uri

        raise TrackerFailed(f"mlflow ({doing}) at tracking URI {get_tracking_uri()}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__} "
                            "(set MLFLOW_TRACKING_URI, or drop mlflow from training.report_to)"
                            ) from exc


def check_mlflow() -> None:
    """Open the tracking store the environment names, as a run will (preflight)."""
    from mlflow.tracking import MlflowClient

    with mlflow_errors("opening the tracking store"):
        MlflowClient().search_experiments(max_results=1)


def mlflow_run_id(target: TrackerTarget) -> str:
    """The MLflow run of ``target`` (created the first time), in its experiment, at the
    tracking URI the environment names (``MLFLOW_TRACKING_URI``; MLflow's default else)."""
    with mlflow_errors(f"finding the run {target.run_name}"):
        return _mlflow_run_id(target)


def _mlflow_run_id(target: TrackerTarget) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name = target.experiment_name()
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    quoted = target.run_name.replace("\\", "\\\\").replace("'", "\\'")
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{quoted}'",
                               max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(experiment_id, run_name=target.run_name,
                             tags={RUN_TAG: target.run_name}).info.run_id


def trainer_environment(target: TrackerTarget) -> dict[str, str]:
    """What the training process needs in its environment for the Trainer's integrations to
    write into the same tracker runs as fairspec (its TensorBoard folder, its MLflow run)."""
    env: dict[str, str] = {}
    if "tensorboard" in target.report_to:
        target.tensorboard_dir.mkdir(parents=True, exist_ok=True)
        env["TENSORBOARD_LOGGING_DIR"] = str(target.tensorboard_dir)
    if "mlflow" in target.report_to:
        env["MLFLOW_EXPERIMENT_NAME"] = target.experiment_name()
        env["MLFLOW_RUN_ID"] = mlflow_run_id(target)
    return env


def _event_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(EVENTS_PREFIX + "*")) if folder.is_dir() else []


def clear_trainer_events(folder: Path) -> None:
    """Drop an earlier training's event files (a training that starts afresh)."""
    for path in _event_files(folder):
        if not path.name.endswith(FAIRSPEC_SUFFIX):
            path.unlink()


def clear_fairspec_events(folder: Path) -> None:
    """Drop fairspec's earlier event files (its metrics are written whole each time)."""
    for path in _event_files(folder):
        if path.name.endswith(FAIRSPEC_SUFFIX):
            path.unlink()


def log_metrics(target: TrackerTarget, metrics: Mapping[str, float | None], *,
                step: int = 0, series: Mapping[str, Mapping[int, float]] | None = None,
                params: Mapping[str, Any] | None = None) -> list[str]:
    """Log ``metrics`` (at ``step``), ``series`` (name -> {step: value}) and ``params`` to each
    of ``target.report_to`` fairspec writes to; returns those it wrote to."""
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    written = []
    if "tensorboard" in target.report_to:
        _tensorboard(target.tensorboard_dir, scalars, step, series or {}, params or {})
        written.append("tensorboard")
    if "mlflow" in target.report_to:
        with mlflow_errors(f"logging the metrics of {target.run_name}"):
            _mlflow(target, scalars, step, series or {}, params or {})
        written.append("mlflow")
    others = [name for name in target.report_to if name not in FAIRSPEC_TRACKERS]
    if others:
        log.info("%s: the Trainer's losses only (fairspec's own metrics go to %s)",
                 ", ".join(others), " and ".join(FAIRSPEC_TRACKERS))
    return written


def _tensorboard(folder: Path, scalars: dict[str, float], step: int,
                 series: Mapping[str, Mapping[int, float]], params: Mapping[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    clear_fairspec_events(folder)
    writer = SummaryWriter(log_dir=str(folder), filename_suffix=FAIRSPEC_SUFFIX)
    try:
        for name, value in scalars.items():
            writer.add_scalar(name, value, step)
        for name, points in series.items():
            for at, value in sorted(points.items()):
                writer.add_scalar(name, float(value), at)
        if params:
            writer.add_text("fairspec/settings", "\n".join(
                f"    {k} = {v!r}" for k, v in sorted(params.items())), step)
    finally:
        writer.close()


def _mlflow(target: TrackerTarget, scalars: dict[str, float], step: int,
            series: Mapping[str, Mapping[int, float]], params: Mapping[str, Any]) -> None:
    import time

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_id = _mlflow_run_id(target)
    now = int(time.time() * 1000)
    points = [Metric(name, value, now, step) for name, value in scalars.items()]
    points += [Metric(name, float(value), now, at) for name, values in series.items()
               for at, value in sorted(values.items())]
    logged = client.get_run(run_id).data.params  # a param is written once: keep what is there
    new = [Param(k, str(v)[:6000]) for k, v in sorted(params.items()) if k not in logged]
    for start in range(0, max(len(points), len(new)), 100):  # MLflow's batch limits
        client.log_batch(run_id, metrics=points[start:start + 100], params=new[start:start + 100])
    client.set_terminated(run_id)
