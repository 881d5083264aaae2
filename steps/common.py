"""What every step builder shares: the build context, pipeline parameters, paths, retries, images.

A step builder is a function ``(ctx: BuildContext, upstream...) -> Step`` with no I/O: it reads the
typed config and the already-built upstream steps, and returns an SDK step object. Only
``pipeline/definition/build.py`` wires them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagemaker.core import image_uris
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.mlops.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.mlops.workflow.steps import CacheConfig

from pipeline.config import JobResources, PipelineConfig
from pipeline.config.tracking import experiment_name
from pipeline.definition.code import CodeArchive

if TYPE_CHECKING:
    from sagemaker.core.workflow.entities import PipelineVariable

#: Where a processing job finds the unpacked ``training_code/`` (see ``pipeline/definition/code.py``).
PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"
#: Used when no role is configured, so a definition can still be built and reviewed; ``dogpipe upsert``
#: always passes the real role, and ``dogpipe validate`` accepts this ARN's shape.
PLACEHOLDER_ROLE_ARN = "arn:aws:iam::000000000000:role/dogpipe-set-role-arn"


@dataclass(frozen=True)
class PipelineParameters:
    """The parameters an execution may override (``dogpipe start --param Name=Value``)."""

    input_data_url: ParameterString
    accuracy_threshold: ParameterFloat
    model_approval_status: ParameterString

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> PipelineParameters:
        return cls(
            input_data_url=ParameterString("InputDataUrl", default_value=cfg.data.s3_uri),
            accuracy_threshold=ParameterFloat(
                "AccuracyThreshold", default_value=cfg.evaluation.accuracy_threshold
            ),
            model_approval_status=ParameterString(
                "ModelApprovalStatus",
                default_value=cfg.registry.approval_status,
                enum_values=["PendingManualApproval", "Approved", "Rejected"],
            ),
        )

    def as_list(self) -> list[Any]:
        return [self.input_data_url, self.accuracy_threshold, self.model_approval_status]


@dataclass(frozen=True)
class BuildContext:
    """Everything a step builder may read while the definition is built: config, session, packaged
    code, parameters, role. (The local engine's ``pipeline.local.context.StepContext`` is what a
    step's runner gets at run time.)"""

    cfg: PipelineConfig
    session: PipelineSession
    code: CodeArchive
    params: PipelineParameters
    role_arn: str

    def execution_uri(self, *parts: str) -> Join:
        """``{s3_root}/executions/<PipelineExecutionId>/<parts>``.

        Outputs are keyed by the execution id so two executions never overwrite each other. Step
        caching is unaffected: SageMaker's cache key for processing/training omits output locations,
        and a cache hit hands downstream steps the earlier execution's output URIs.
        """
        return Join(
            on="/",
            values=[
                f"{self.cfg.project.s3_root}/executions",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                *parts,
            ],
        )

    def base_job_name(self, step: str) -> str:
        return f"{self.cfg.project.name}-{step}"[:38]


def framework_image(cfg: PipelineConfig, resources: JobResources, scope: str) -> str:
    """The AWS PyTorch container for ``resources`` (CPU or GPU picked from the instance type).

    ``image_uris.retrieve`` reads JSON bundled with the SDK, so this is offline.
    """
    return image_uris.retrieve(
        "pytorch",
        cfg.project.region,
        version=resources.framework_version,
        py_version=resources.py_version,
        instance_type=resources.instance_type,
        image_scope=scope,
    )


def job_retry_policies(cfg: PipelineConfig) -> list[StepRetryPolicy | SageMakerJobStepRetryPolicy]:
    """Retries for job steps: service faults/throttling of the step, capacity/internal errors of the job."""
    retry = cfg.steps.retry
    common = {
        "backoff_rate": retry.backoff_rate,
        "interval_seconds": retry.interval_seconds,
        "max_attempts": retry.max_attempts,
    }
    return [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
            **common,
        ),
        SageMakerJobStepRetryPolicy(
            exception_types=[
                SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
            ],
            **common,
        ),
    ]


def api_retry_policies(cfg: PipelineConfig) -> list[StepRetryPolicy]:
    """Retries for steps that only call an API (ModelStep rejects the job-level policy)."""
    return [policy for policy in job_retry_policies(cfg) if isinstance(policy, StepRetryPolicy)]


def cache_config(cfg: PipelineConfig) -> CacheConfig:
    return CacheConfig(enable_caching=cfg.steps.cache, expire_after=cfg.steps.cache_expire_after)


def as_hyperparameter(
    value: bool | int | float | str | list[str] | PipelineVariable,
) -> str | PipelineVariable:
    """The string form ``train.py`` parses (booleans ``true``/``false``, lists ``a,b``); pipeline variables
    pass through."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, (int, float, str)):
        return str(value)
    return value


def tracking_environment(cfg: PipelineConfig, kind: str) -> dict[str, str]:
    """What a training job needs to record its MLflow run (``training_code/tracking.py``): the
    experiment, what kind of job it is and, where the config names one, the tracking URI (without one,
    the local engine supplies its SQLite store and a SageMaker job records nothing). Empty when
    tracking is off. Only values fixed at build time: an execution id here would defeat step caching."""
    tracking = cfg.tracking
    if not tracking.enabled:
        return {}
    env = {
        "DOGPIPE_TRACKING_EXPERIMENT": experiment_name(cfg),
        "DOGPIPE_TRACKING_KIND": kind,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(tracking.request_timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    if tracking.uri:
        env["MLFLOW_TRACKING_URI"] = tracking.uri
    return env
