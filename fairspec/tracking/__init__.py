"""Experiment trackers: which of the Trainer's integrations exist (``training.report_to``),
and fairspec's own metrics of a run logged to the same tracker run as the Trainer's losses
(TensorBoard event files, an MLflow run)."""

from fairspec.tracking.integrations import installed_integrations, known_integrations
from fairspec.tracking.writers import (
    FAIRSPEC_TRACKERS,
    TrackerTarget,
    check_mlflow,
    clear_fairspec_events,
    clear_trainer_events,
    log_metrics,
    mlflow_run_id,
    trainer_environment,
)

__all__ = ["FAIRSPEC_TRACKERS", "TrackerTarget", "check_mlflow", "clear_fairspec_events",
           "clear_trainer_events", "installed_integrations", "known_integrations", "log_metrics",
           "mlflow_run_id", "trainer_environment"]
