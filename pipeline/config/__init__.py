"""Typed configuration of a dogpipe pipeline, loaded from YAML and validated before anything runs.

Every model forbids unknown keys, so a typo such as ``traning:`` fails at load time with the key path
(``training -> hyperparameters -> lr``) instead of being silently ignored by a job hours later.
One file describes one pipeline; ``config/pipeline.yaml`` targets SageMaker, ``config/local.yaml``
the local engine. Fields are documented where a reader would otherwise have to guess the unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config.deploy import (
    AsyncInferenceConfig,
    GuardrailsConfig,
    OnApproval,
    ServerlessConfig,
    check_schedule,
)
from pipeline.config.monitor import DataCaptureConfig, MonitorConfig, s3_uri
from pipeline.config.tracking import TrackingConfig
from pipeline.config.training import (
    DebuggerConfig,
    Hyperparameters,
    ModelConfig,
    TuningConfig,
    declared,
)
from pipeline.iso_duration import parse_iso_duration

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """A configuration file is missing, is not YAML, or does not match the schema."""


def _s3_uri(value: str) -> str:
    return s3_uri(value)


class SageMakerProjectConfig(_Strict):
    """The SageMaker Project of the pipelines: ``dogpipe upsert`` tags them ``sagemaker:project-name``
    and ``sagemaker:project-id``, which is how Studio groups a project's pipelines."""

    name: str = Field(..., pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
    id: str = Field(..., pattern=r"^p-[a-z0-9]+$", description="e.g. p-abcdefghijkl")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise ValueError(f"tag {key!r}: keys are 1-128 characters, values at most 256")
        if key.lower().startswith(("aws:", "sagemaker:")):
            raise ValueError(f"tag {key!r}: aws: and sagemaker: keys are reserved (see sagemaker_project)")
    return tags


class ProjectConfig(_Strict):
    """Where the pipeline lives: its name, AWS region, and the bucket/prefix for everything it writes."""

    name: str = Field("dogpipe", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
    region: str = "us-east-1"
    bucket: str = Field(..., description="S3 bucket for code, data outputs and models (no AWS lookup).")
    prefix: str = "dogpipe"
    role_arn: str | None = Field(
        None, description="Execution role; may also come from --role-arn or DOGPIPE_ROLE_ARN."
    )
    # What `dogpipe upsert` sends with the pipelines (none of it changes the definition):
    description: str | None = Field(None, max_length=3072, description="PipelineDescription.")
    tags: dict[str, str] = Field(default_factory=dict, max_length=48, description="Tags of the pipelines.")
    sagemaker_project: SageMakerProjectConfig | None = None
    max_parallel_steps: int | None = Field(
        None, ge=1, description="ParallelismConfiguration.MaxParallelExecutionSteps (SageMaker: 50 if unset)."
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_tags(value)

    @field_validator("prefix")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @property
    def s3_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class DataConfig(_Strict):
    """The ImageFolder data set (train/valid/test, one folder per breed) as an S3 prefix or a .zip URI."""

    s3_uri: str
    image_size: declared("image_size")

    @field_validator("s3_uri")
    @classmethod
    def _is_s3(cls, value: str) -> str:
        return _s3_uri(value)


class JobResources(_Strict):
    """Instances of a SageMaker job. ``framework_version`` picks the PyTorch container image."""

    instance_type: str = Field("ml.m5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(1, ge=1)
    volume_size_gb: int = Field(30, ge=1)
    max_runtime_seconds: int = Field(86_400, ge=60)
    framework_version: str = "2.5"
    py_version: str = "py311"


class TrainingConfig(_Strict):
    resources: JobResources = JobResources()
    hyperparameters: Hyperparameters = Hyperparameters()


class EvaluationConfig(_Strict):
    """The test-set gates. ``accuracy_threshold`` is absolute; the production gate compares the candidate
    with the model production serves on the same test images (the ``Compare`` step) and stops a clearly
    worse one: accuracy lower by more than ``production_tolerance`` *and* McNemar's exact test
    significant at ``significance_alpha``. No production model, or other classes, never blocks."""

    accuracy_threshold: float = Field(0.7, ge=0, le=1)
    resources: JobResources = JobResources(instance_type="ml.m5.xlarge")
    must_not_be_worse_than_production: bool = Field(
        False, description="Add the CheckProduction gate after CheckAccuracy (Compare runs either way)."
    )
    production_tolerance: float = Field(
        0.01, ge=0, le=1, description="Accuracy the candidate may lose against production and still pass."
    )
    significance_alpha: float = Field(
        0.05, gt=0, lt=1, description="McNemar's exact test: a drop counts only when p < alpha."
    )


class RegistryConfig(_Strict):
    model_package_group: str = Field("dogpipe-dog-breeds", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    approval_status: ApprovalStatus = "PendingManualApproval"
    inference_instance_types: list[str] = ["ml.m5.large", "ml.c5.xlarge"]


class AutoscalingConfig(_Strict):
    """Target-tracking autoscaling of an endpoint's instance count on invocations per instance."""

    min: int = Field(1, ge=1)
    max: int = Field(2, ge=1)
    target_invocations: float = Field(
        100.0, gt=0, description="Invocations per instance per minute that the policy holds."
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) exceeds max ({self.max})")
        return self


class DeployConfig(_Strict):
    enabled: bool = True
    staging_endpoint: str = Field("dogpipe-staging", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    production_endpoint: str = Field("dogpipe-prod", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    instance_type: str = Field("ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    initial_instance_count: int = Field(1, ge=1)
    max_payload_bytes: int = Field(6 * 1024 * 1024, ge=1024)
    top_k: int = Field(3, ge=1)
    max_batch: int = Field(16, ge=1, description='Most images in one JSON request ({"instances": [...]}).')
    data_capture: DataCaptureConfig = DataCaptureConfig()
    autoscaling: AutoscalingConfig | None = Field(None, description="Off unless set (dogpipe deploy).")
    on_approval: OnApproval = Field(
        "off", description="Stage an approval deploys to via the deploy pipeline; off: `dogpipe deploy`."
    )
    events_role_arn: str | None = Field(
        None, description="Role EventBridge assumes to start pipelines (default: project.role_arn)."
    )
    serverless: ServerlessConfig | None = None
    async_inference: AsyncInferenceConfig | None = None
    guardrails: GuardrailsConfig = GuardrailsConfig()

    @model_validator(mode="after")
    def _partial_shift_needs_instances(self) -> DeployConfig:
        traffic = self.guardrails.traffic
        if traffic != "ALL_AT_ONCE" and self.serverless is None and self.initial_instance_count < 2:
            raise ValueError(
                f"guardrails.traffic {traffic} shifts part of the fleet (at most 50% of the instances): "
                "it needs initial_instance_count >= 2; use ALL_AT_ONCE with one instance"
            )
        return self


class RetryConfig(_Strict):
    max_attempts: int = Field(2, ge=1, le=20)
    backoff_rate: float = Field(2.0, ge=1)
    interval_seconds: int = Field(30, ge=1)


class StepsConfig(_Strict):
    """Behaviour shared by the job steps: step caching and retries on throttling/capacity errors."""

    cache: bool = True
    cache_expire_after: str = Field("P30D", description="ISO-8601 duration, e.g. P30D or PT12H.")
    retry: RetryConfig = RetryConfig()

    @field_validator("cache_expire_after")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        parse_iso_duration(value)
        return value


class LocalEngineConfig(_Strict):
    """The local engine: the folder that stands in for S3, and where executions are recorded."""

    root: Path = Path(".dogpipe")
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = Field(0, ge=0, le=65535, description="0 picks a free port.")
    max_parallel_trials: int | None = Field(None, ge=1, description="Defaults to the CPU count.")

    @field_validator("root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Resolved against the working directory once, at load time: jobs run in their own folders,
        where a relative store path would point somewhere else."""
        return value.expanduser().resolve()


class PipelineConfig(_Strict):
    """A whole dogpipe pipeline: one YAML file."""

    engine: Literal["sagemaker", "local"] = "sagemaker"
    project: ProjectConfig
    data: DataConfig
    model: ModelConfig = ModelConfig()
    processing: JobResources = JobResources()
    tuning: TuningConfig = TuningConfig()
    training: TrainingConfig = TrainingConfig()
    debugger: DebuggerConfig = DebuggerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    registry: RegistryConfig = RegistryConfig()
    deploy: DeployConfig = DeployConfig()
    monitor: MonitorConfig = MonitorConfig()
    steps: StepsConfig = StepsConfig()
    local: LocalEngineConfig = LocalEngineConfig()
    tracking: TrackingConfig = TrackingConfig()
    schedule: str | None = Field(None, description="rate(...) or cron(...): upsert schedules the build.")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    def value_at(self, key_path: str) -> Any:
        """The value at a dotted key path (``training.hyperparameters.lr``), as the YAML spells it."""
        value: Any = self
        for part in key_path.split("."):
            if not isinstance(value, BaseModel) or part not in type(value).model_fields:
                raise KeyError(f"the config has no key {key_path!r} (at {part!r})")
            value = getattr(value, part)
        return value


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the configuration:"]
    for item in error.errors():
        where = " -> ".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: Path | str = "<config>") -> PipelineConfig:
    """Validate an already-parsed mapping; errors name every bad key path."""
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(Path(source), error)) from None


def load_config(path: Path | str) -> PipelineConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8: {error.reason})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_config(raw, path)


DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "pipeline.yaml"
LOCAL_CONFIG = Path(__file__).resolve().parents[2] / "config" / "local.yaml"
