"""``training_code/tracking.py``: a job's MLflow run is optional in every way (off, no mlflow, a store
that fails), and each way costs the job at most one warning line."""

from __future__ import annotations

import logging
import sys

import pytest

from training_code import tracking


def _env(uri: str) -> dict[str, str]:
    return {"DOGPIPE_TRACKING_EXPERIMENT": "exp", "MLFLOW_TRACKING_URI": uri, "TRAINING_JOB_NAME": "train-1"}


def test_without_the_steps_request_nothing_is_tracked_or_said(caplog: pytest.LogCaptureFixture) -> None:
    run = tracking.start_job_run({"TRAINING_JOB_NAME": "train-1"})
    run.log_metrics({"valid_loss": 1.0}, step=1)
    assert not run.active and not caplog.records


def test_mlflow_missing_is_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as on the SageMaker PyTorch images
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with caplog.at_level(logging.WARNING, "dogpipe.tracking"):
        run = tracking.start_job_run(_env("sqlite:///unused.db"))
        run.log_params({"lr": 0.1})
        run.finish()
    assert not run.active
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and "mlflow is not installed" in messages[0]


def test_a_run_records_params_and_one_point_per_epoch(tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = tracking.start_job_run(_env(uri))
    run.log_params({"lr": 0.1, "collections": ["losses", "weights"], "pretrained": True})
    for epoch in (1, 2):
        run.log_metrics({"valid_loss": 1.0 / epoch}, step=epoch)
    run.finish()
    stored = MlflowClient(uri).get_run(run.run_id)
    assert stored.info.run_name == "train-1" and stored.info.status == "FINISHED"
    assert stored.data.tags[tracking.JOB_TAG] == "train-1"
    assert stored.data.params == {"lr": "0.1", "collections": "losses,weights", "pretrained": "true"}
    experiment = MlflowClient(uri).get_experiment(stored.info.experiment_id)
    assert experiment.artifact_location == (tmp_path / "artifacts").as_uri()  # not ./mlruns
    history = MlflowClient(uri).get_metric_history(run.run_id, "valid_loss")
    assert [(point.step, point.value) for point in history] == [(1, 1.0), (2, 0.5)]


def test_job_name_from_the_toolkits_training_env() -> None:
    assert tracking.job_name({"SM_TRAINING_ENV": '{"job_name": "tune-003"}'}) == "tune-003"
    assert tracking.job_name({}) is None
