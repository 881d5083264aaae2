"""``tracking:``: where the jobs and the engine record MLflow runs (every execution a run, each tuning
trial and the Train job a nested run under it).

Off is one switch (``enabled: false``). Locally the default store is SQLite under ``local.root``
(:func:`local_tracking_uri`), which the local engine hands to the jobs the way it stands in for S3; on
SageMaker ``uri`` names a managed MLflow tracking server by its ARN (the ``sagemaker-mlflow`` plugin's
URI scheme), and without one nothing is tracked there (the engine, not this module, knows its own
store: ``Engine.tracking_uri``). A server that does not answer never fails a
job: the job says so in one warning line and goes on untracked (``training_code/tracking.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from pipeline.config.training import StrictModel

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig

#: ``arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME`` (also ``mlflow-app/``), as
#: CreateMlflowTrackingServer returns it and the sagemaker-mlflow plugin accepts it as a tracking URI.
TRACKING_SERVER_ARN = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:mlflow-(tracking-server|app)/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}"
)
_OTHER_URIS = ("http://", "https://", "sqlite:///", "file:///", "databricks")
#: The SQLite file of the local tracking store, under ``local.root``.
LOCAL_STORE = "mlflow/mlflow.db"


def local_tracking_uri(root: Path) -> str:
    """The local engine's tracking store: one SQLite file under its root (``mlflow ui`` reads it)."""
    return f"sqlite:///{Path(root) / LOCAL_STORE}"


class TrackingConfig(StrictModel):
    """MLflow experiment tracking of every execution."""

    enabled: bool = Field(True, description="The one switch: false tracks nothing anywhere.")
    uri: str | None = Field(
        None,
        description="Tracking URI: a SageMaker managed MLflow tracking server ARN, or http(s)://, sqlite:///"
        "; default: SQLite under local.root (local engine), nothing (SageMaker).",
    )
    experiment: str | None = Field(
        None, max_length=256, pattern=r"^[a-zA-Z0-9\-_./]+$", description="Default: project.name."
    )
    request_timeout_s: int = Field(
        10, ge=1, le=120, description="Longest wait for one tracking request before a job gives up on it."
    )

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or TRACKING_SERVER_ARN.fullmatch(value) or value.startswith(_OTHER_URIS):
            return value
        raise ValueError(
            "not a tracking URI: expected arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME, "
            f"http(s)://HOST:PORT or sqlite:///PATH, got {value!r}"
        )

    @property
    def is_tracking_server(self) -> bool:
        """Whether ``uri`` is a SageMaker managed MLflow server (IAM: ``sagemaker-mlflow:*`` on it)."""
        return bool(self.uri and TRACKING_SERVER_ARN.fullmatch(self.uri))


def store_uri(cfg: PipelineConfig, engine_store: str | None) -> str | None:
    """Where ``cfg``'s runs go: ``tracking.uri``, else the engine's own store (``engine_store``: the
    local engine's SQLite, none on SageMaker); None when tracking is off or there is no store."""
    return (cfg.tracking.uri or engine_store) if cfg.tracking.enabled else None


def experiment_name(cfg: PipelineConfig) -> str:
    return cfg.tracking.experiment or cfg.project.name


def config_digest(cfg: PipelineConfig) -> str:
    """sha256 of the pipeline's config as validated (defaults filled in), without ``local:`` (where
    this machine keeps its files, not what the pipeline does): the same YAML meaning, the same digest."""
    document: dict[str, Any] = cfg.model_dump(mode="json", exclude={"local"})
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
