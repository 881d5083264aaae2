"""MLflow tracking from inside a job: a run per training job (a tuning trial or Train) with its
hyperparameters and one point per epoch, so a training can be watched while it runs.

Optional in every way, because the job's own work matters more than its record:

- nothing is tracked unless the step asked for it (``DOGPIPE_TRACKING_EXPERIMENT`` in the job's
  environment, which the definition sets when ``tracking:`` is on) and a store is named
  (``MLFLOW_TRACKING_URI``: a SageMaker managed MLflow ARN, http(s)://, or the local engine's SQLite);
- ``mlflow`` not installed (the SageMaker PyTorch images lack it): one warning line, no tracking;
- a store that fails or does not answer: one warning line at the first failure, then nothing more is
  sent; the job goes on. Requests time out after ``MLFLOW_HTTP_REQUEST_TIMEOUT`` seconds (the
  definition passes ``tracking.request_timeout_s``) and are not retried.

The job does not know its pipeline execution (an execution id in the job's request would defeat step
caching), so its run is tagged with the job's name; whoever records the execution's run (the engine
after a local run, ``dogpipe report`` for SageMaker) finds the runs by those names and nests them
under it (``pipeline/tracking.py``). Standard library only until a run is started; MLflow is imported
then, never at import time of this module.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("dogpipe.tracking")

EXPERIMENT_ENV = "DOGPIPE_TRACKING_EXPERIMENT"
KIND_ENV = "DOGPIPE_TRACKING_KIND"  # "trial" (a tuning trial) or "train" (the Train step)
URI_ENV = "MLFLOW_TRACKING_URI"
#: Tags every job run carries; ``pipeline/tracking.py`` searches by the first.
JOB_TAG = "dogpipe.job_name"
KIND_TAG = "dogpipe.kind"


def job_name(env: Mapping[str, str] | None = None) -> str | None:
    """This training job's name: ``TRAINING_JOB_NAME`` (SageMaker sets it in every training container),
    else the toolkit's ``SM_TRAINING_ENV`` ``job_name``."""
    env = os.environ if env is None else env
    if env.get("TRAINING_JOB_NAME"):
        return env["TRAINING_JOB_NAME"]
    try:
        name = json.loads(env.get("SM_TRAINING_ENV") or "{}").get("job_name")
    except (ValueError, AttributeError):
        return None
    return str(name) if name else None


class JobRun:
    """One job's MLflow run, or nothing: every method is a no-op once tracking is off or has failed."""

    def __init__(self, client: Any = None, run_id: str | None = None, where: str = "") -> None:
        self._client = client
        self.run_id = run_id
        self._where = where

    @property
    def active(self) -> bool:
        return self._client is not None and self.run_id is not None

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> None:
        if not self.active:
            return
        try:
            getattr(self._client, method)(self.run_id, *args, **kwargs)
        except Exception as error:  # a tracking store never fails the job
            _warn_unavailable(self._where, what, error)
            self._client = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        items = [Param(str(key), _text(value)[:6000]) for key, value in sorted(params.items())]
        self._call("log parameters", "log_batch", params=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in sorted(metrics.items())]
        self._call("log metrics", "log_batch", metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        self._call("set tags", "log_batch", tags=[RunTag(str(k), _text(v)) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        self._call("end the run", "set_terminated", status=status)
        self._client = None


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _warn_unavailable(where: str, what: str, error: BaseException) -> None:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    log.warning("tracking: could not %s at %s (%s: %s); the job goes on untracked", what, where,
                type(error).__name__, first)  # fmt: skip


def start_job_run(env: Mapping[str, str] | None = None) -> JobRun:
    """This job's run (named and tagged after the job), or an inactive one when tracking is off, MLflow
    is missing or the store does not answer (each said in one warning line, never raised)."""
    env = os.environ if env is None else env
    experiment, uri = env.get(EXPERIMENT_ENV), env.get(URI_ENV)
    if not experiment:
        return JobRun()
    if not uri:  # SageMaker without tracking.uri: nothing to record to, and nothing wrong
        log.info("tracking: no %s here; this job is not tracked", URI_ENV)
        return JobRun()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a down server costs one timeout
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    for logger in ("alembic", "mlflow.store"):  # a fresh store's migrations say a lot at INFO
        logging.getLogger(logger).setLevel(logging.WARNING)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        log.warning("tracking: mlflow is not installed here (%s); the job goes on untracked", error)
        return JobRun()
    name = job_name(env) or "job"
    kind = env.get(KIND_ENV, "train")
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found
            else client.create_experiment(experiment, artifact_location=_artifact_location(uri))
        )
        run = client.create_run(experiment_id, run_name=name, tags={JOB_TAG: name, KIND_TAG: kind})
    except Exception as error:  # a tracking store never fails the job
        _warn_unavailable(_where(uri), "start a run", error)
        return JobRun()
    log.info("tracking: run %s (%s) in experiment %s", run.info.run_id, name, experiment)
    return JobRun(client, run.info.run_id, _where(uri))


def _artifact_location(uri: str) -> str | None:
    """A SQLite store's artifacts beside its file, not in the job's working directory (MLflow's
    default ``./mlruns``); the same rule as ``pipeline/tracking.py``."""
    if not uri.startswith("sqlite:///"):
        return None
    from pathlib import Path

    return (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()


def _where(uri: str) -> str:
    """The store as a log line may show it: no credentials from a URI's user part."""
    scheme, sep, rest = uri.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else uri
