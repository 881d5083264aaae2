"""The ``monitor:`` block and the endpoint's ``deploy.data_capture``: what is recorded of the traffic an
endpoint serves, and how a window of it is judged against the served version's baseline.

Both engines read these: SageMaker's ``DataCaptureConfig`` and monitoring schedule, and the local
endpoint servers' capture writer and ``dogpipe monitor run``. Each check is a two-sample test between
the baseline (the test split, made by Evaluate) and the window's captured requests; a p-value below the
check's ``p_value`` is a violation. Units are in the names; unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.config.deploy import check_schedule


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def s3_uri(value: str) -> str:
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", value):
        raise ValueError(f"not an S3 URI (s3://bucket/key): {value!r}")
    return value


class DataCaptureConfig(_Strict):
    """Endpoint data capture: requests and replies as SageMaker's JSON Lines records under
    ``<s3_uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/``, the input of monitoring. On SageMaker the
    endpoint config's ``DataCaptureConfig``; locally the endpoint server writes the same records into the
    local store, off the request's path (a full queue drops the record and counts it, never the request).
    """

    enabled: bool = False
    sampling_percentage: int = Field(100, ge=0, le=100, description="Share of requests recorded.")
    s3_uri: str | None = Field(
        None, description="Capture prefix; defaults to {project.s3_root}/data-capture (the endpoint follows)."
    )
    capture_input: bool = True
    capture_output: bool = True
    # The local engine's writer (SageMaker manages its own files):
    max_file_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Local: a capture file is closed at this size (rotation)."
    )
    max_total_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="Local: oldest capture files are deleted beyond this."
    )
    queue_size: int = Field(
        1024, ge=1, description="Local: records waiting for the writer; more are dropped (and counted)."
    )

    @field_validator("s3_uri")
    @classmethod
    def _is_s3(cls, value: str | None) -> str | None:
        return None if value is None else s3_uri(value)

    def modes(self) -> list[str]:
        """SageMaker's CaptureMode values this config records."""
        return [mode for mode, on in (("Input", self.capture_input), ("Output", self.capture_output)) if on]


class CheckThreshold(_Strict):
    """One drift check: on or off, and the p-value below which it is a violation."""

    enabled: bool = True
    p_value: float = Field(0.01, gt=0, lt=1)


class EmbeddingThreshold(CheckThreshold):
    """MMD between the penultimate-layer embeddings, its p-value from a permutation test."""

    permutations: int = Field(200, ge=20, le=10_000)


class MonitorChecks(_Strict):
    """The four checks of a window (Bonferroni inside ``input_statistics`` over its features)."""

    class_distribution: CheckThreshold = CheckThreshold()  # chi-square, predicted classes (PSI reported)
    confidence: CheckThreshold = CheckThreshold()  # Kolmogorov-Smirnov, max probability
    input_statistics: CheckThreshold = CheckThreshold()  # KS per pixel statistic and image size
    embedding: EmbeddingThreshold = EmbeddingThreshold()


OnDrift = Literal["alert", "retrain"]


class MonitorConfig(_Strict):
    """Watching a served model: which endpoint, which window, which checks, what a violation starts."""

    enabled: bool = True
    stage: Literal["prod", "staging"] = Field("staging", description="The stage whose endpoint is watched.")
    window_hours: float = Field(1.0, gt=0, description="`monitor run` reads the last this many hours.")
    min_records: int = Field(
        30,
        ge=5,
        description="Fewer captured images: not judged (the summary says how many more).",
    )
    checks: MonitorChecks = MonitorChecks()
    on_drift: OnDrift = Field(
        "alert", description="retrain: a violation starts the build pipeline (locally `dogpipe run`)."
    )
    retrain_data: str | None = Field(
        None, description="Local: the data folder `dogpipe run --data` retrains on (default: the config's)."
    )
    schedule: str = Field(
        "cron(0 * ? * * *)", description="SageMaker: the monitoring schedule (hourly, as Model Monitor)."
    )
    instance_type: str = Field("ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        check_schedule(value)
        return value

    def constraints(self) -> dict[str, Any]:
        """``constraints.json``, Model Monitor's ``baseline_constraints`` of the monitoring job (both
        engines): the checks' thresholds and the smallest window judged."""
        return {"version": 1, "min_records": self.min_records, "checks": self.checks.model_dump(mode="json")}
