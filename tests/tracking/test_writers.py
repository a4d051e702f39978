"""fairspec's metrics in real trackers: TensorBoard event files read back with the
``tensorboard`` package, an MLflow file store read back with the MLflow client."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairspec.tracking import (
    TrackerTarget,
    clear_trainer_events,
    log_metrics,
    mlflow_run_id,
    trainer_environment,
)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture
def store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.18 keeps it behind a flag
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return tmp_path / "mlruns"


def target(tmp_path: Path, run: str, *trackers: str) -> TrackerTarget:
    return TrackerTarget(report_to=trackers, run_name=run, experiment="svamp",
                         tensorboard_dir=tmp_path / run / "tensorboard")


def test_tensorboard_gets_the_metrics_and_series_once_however_often_they_are_logged(tmp_path):
    pytest.importorskip("tensorboard")
    where = target(tmp_path, "svamp", "tensorboard")
    for usd in (0.5, 0.25):  # a rerun of the report replaces fairspec's events
        assert log_metrics(where, {"teachers/usd": usd, "exam/wrong": 12, "accuracy/gain": None},
                           step=40, series={"accuracy/student": {0: 0.1, 40: 0.3}}) == ["tensorboard"]
    found = scalars(where.tensorboard_dir)
    assert found["teachers/usd"] == [(40, 0.25)] and found["exam/wrong"] == [(40, 12.0)]
    assert "accuracy/gain" not in found  # unknown values are left out, not logged as 0
    assert [(s, round(v, 6)) for s, v in found["accuracy/student"]] == [(0, 0.1), (40, 0.3)]
    trainer_file = where.tensorboard_dir / "events.out.tfevents.1.host.1.0"
    trainer_file.write_bytes(b"")
    clear_trainer_events(where.tensorboard_dir)  # a fresh training drops the Trainer's, not fairspec's
    assert not trainer_file.exists() and scalars(where.tensorboard_dir)["exam/wrong"]


def test_mlflow_runs_of_a_spec_share_one_experiment_and_the_trainer_attaches_to_the_same_run(
        tmp_path, store):
    from mlflow.tracking import MlflowClient

    main, variant = target(tmp_path, "svamp", "mlflow"), target(tmp_path, "svamp.no-review", "mlflow")
    env = trainer_environment(main)
    assert env["MLFLOW_EXPERIMENT_NAME"] == "svamp"
    assert env["MLFLOW_RUN_ID"] == mlflow_run_id(main) != mlflow_run_id(variant)
    log_metrics(main, {"accuracy/tuned": 0.4}, step=7, params={"training.alpha": 0.5})
    log_metrics(variant, {"accuracy/tuned": 0.3}, step=7, params={"training.alpha": 0.5})
    log_metrics(main, {"accuracy/tuned": 0.4}, step=7, params={"training.alpha": 0.5})  # again: no error
    client = MlflowClient()
    experiment = client.get_experiment_by_name("svamp")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"svamp", "svamp.no-review"}
    assert runs["svamp"].info.run_id == env["MLFLOW_RUN_ID"]
    assert runs["svamp"].data.metrics["accuracy/tuned"] == 0.4
    assert runs["svamp.no-review"].data.metrics["accuracy/tuned"] == 0.3
    assert runs["svamp"].data.params == {"training.alpha": "0.5"}
    assert runs["svamp"].info.status == "FINISHED"
    assert store.is_dir()


def test_a_users_experiment_name_wins(tmp_path, store, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-sweeps")
    where = target(tmp_path, "svamp", "mlflow")
    log_metrics(where, {"exam/wrong": 3})
    assert trainer_environment(where)["MLFLOW_EXPERIMENT_NAME"] == "team-sweeps"
    assert MlflowClient().get_experiment_by_name("svamp") is None


def test_an_unusable_tracking_store_is_one_clear_error(tmp_path, store, monkeypatch):
    from fairspec.errors import TrackerFailed
    from fairspec.tracking import check_mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    with pytest.raises(TrackerFailed, match="mlflow .* at tracking URI nosuchscheme://nowhere"):
        check_mlflow()
    with pytest.raises(TrackerFailed, match="MLFLOW_TRACKING_URI"):
        log_metrics(target(tmp_path, "svamp", "mlflow"), {"exam/wrong": 1})
