"""The pipeline on SageMaker: stage the code and upsert (``dogpipe upsert``), start, and report status.

Upsert checks everything it can before writing anything (credentials, bucket, role, and that the
definition refers to the code about to be staged), then copies only the code objects S3 lacks
(content-addressed keys: an object that exists is already right), then creates or updates the pipeline.
Start checks parameter overrides against the *deployed* definition, since that is what will run, with
the rule the local engine uses (``pipeline.definition.parameters``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.definition.code import CodeArchive
from pipeline.definition.parameters import pipeline_parameters_request
from pipeline.errors import DogpipeError
from pipeline.sagemaker.aws import AwsClients, aws_errors, error_code, is_not_found, require_role

RUNNING_STATUSES = frozenset({"Executing", "Stopping"})
_CODE_KEY = re.compile(r"/code/([0-9a-f]{64})/")


class PipelineError(DogpipeError):
    """A pipeline request that cannot be served as asked: missing pipeline, stale code, timeout."""


def _split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def check_definition_code(definition: str, archive: CodeArchive) -> None:
    """A definition built from other sources would run code that is not being staged: refuse it."""
    referenced = set(_CODE_KEY.findall(definition))
    stale = referenced - {archive.sha256}
    if stale:
        raise PipelineError(
            f"the definition refers to code {', '.join(sorted(h[:12] for h in stale))}… but training_code/ "
            f"is now {archive.sha256[:12]}…: rebuild it (`dogpipe definition`) or upsert without --definition"
        )


def _s3_has(s3: Any, uri: str) -> bool:
    bucket, key = _split_uri(uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not is_not_found(error):
            raise
        return False
    return True


def upload_code(s3: Any, archive: CodeArchive, cfg: PipelineConfig) -> list[str]:
    """Upload each code object that S3 lacks; returns the URIs written (empty when all were there)."""

    def put(uri: str, data: bytes) -> None:
        bucket, key = _split_uri(uri)
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    return archive.stage_missing(cfg, lambda uri: _s3_has(s3, uri), put)


@dataclass(frozen=True)
class UpsertResult:
    pipeline_arn: str
    action: str
    staged: list[str]
    already_staged: int
    deploy_pipeline_arn: str = ""
    deploy_action: str = ""
    triggers: list[str] = field(default_factory=list)  # one line per rule, schedule, alarm


#: Above this size a definition goes to S3 (PipelineDefinitionS3Location), as the SageMaker SDK does.
INLINE_DEFINITION_LIMIT = 100 * 1024


def pipeline_tags(cfg: PipelineConfig) -> list[dict[str, str]]:
    """The config's tags, plus the SageMaker Project's ``sagemaker:project-name``/``-id`` when set."""
    tags = dict(cfg.project.tags)
    if cfg.project.sagemaker_project:
        tags["sagemaker:project-name"] = cfg.project.sagemaker_project.name
        tags["sagemaker:project-id"] = cfg.project.sagemaker_project.id
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def definition_location(s3: Any, cfg: PipelineConfig, name: str, definition: str) -> dict[str, Any]:
    """``PipelineDefinition`` inline, or, over the inline limit, the definition uploaded to the
    configured bucket under its sha256 (an upload that exists is already right)."""
    data = definition.encode("utf-8")
    if len(data) <= INLINE_DEFINITION_LIMIT:
        return {"PipelineDefinition": definition}
    digest = hashlib.sha256(data).hexdigest()
    key = f"{cfg.project.prefix}/definitions/{name}/{digest}.json".lstrip("/")
    s3.put_object(Bucket=cfg.project.bucket, Key=key, Body=data, ContentType="application/json")
    return {"PipelineDefinitionS3Location": {"Bucket": cfg.project.bucket, "ObjectKey": key}}


def pipeline_settings(cfg: PipelineConfig) -> dict[str, Any]:
    """Description and parallelism from the config (sent on create and on update)."""
    settings: dict[str, Any] = {}
    if cfg.project.description:
        settings["PipelineDescription"] = cfg.project.description
    if cfg.project.max_parallel_steps:
        settings["ParallelismConfiguration"] = {"MaxParallelExecutionSteps": cfg.project.max_parallel_steps}
    return settings


def put_pipeline(
    clients: AwsClients, cfg: PipelineConfig, name: str, definition: str, role: str
) -> tuple[str, str]:
    """Create or update pipeline ``name`` with the config's settings and tags; returns (ARN, action),
    the action ``unchanged`` (and nothing written) when SageMaker already holds exactly this."""
    sagemaker = clients.sagemaker
    settings = pipeline_settings(cfg)
    tags = pipeline_tags(cfg)
    deployed = describe_pipeline(sagemaker, name)
    if deployed is not None and _same_pipeline(deployed, definition, role, settings):
        return deployed["PipelineArn"], "unchanged"
    request = {
        "PipelineName": name,
        "RoleArn": role,
        **definition_location(clients.s3, cfg, name, definition),
        **settings,
    }
    if deployed is None:
        created = sagemaker.create_pipeline(
            **request, PipelineDisplayName=name, **({"Tags": tags} if tags else {})
        )
        return created["PipelineArn"], "created"
    arn = sagemaker.update_pipeline(**request)["PipelineArn"]
    if tags:  # UpdatePipeline takes no tags
        sagemaker.add_tags(ResourceArn=arn, Tags=tags)
    return arn, "updated"


def _same_pipeline(deployed: dict[str, Any], definition: str, role: str, settings: dict[str, Any]) -> bool:
    """SageMaker's copy has this definition (as JSON: key order and spacing aside), role and settings."""
    try:
        same_definition = json.loads(deployed.get("PipelineDefinition") or "null") == json.loads(definition)
    except ValueError:
        return False
    held = {key: deployed.get(key) for key in ("PipelineDescription", "ParallelismConfiguration")}
    wanted = {key: settings.get(key) for key in held}
    return same_definition and deployed.get("RoleArn") == role and held == wanted


def upsert_triggers(clients: AwsClients, cfg: PipelineConfig, build_arn: str, deploy_arn: str) -> list[str]:
    """The approval rule, the schedule and the rollback alarms, as ``pipeline.sagemaker.triggers``
    describes."""
    from pipeline.sagemaker.triggers import events_role, upsert_alarms, upsert_approval_rule, upsert_schedule

    role = events_role(cfg) or require_role(cfg)
    return [
        upsert_approval_rule(clients.client("events"), cfg, deploy_arn, role),
        upsert_schedule(clients.client("scheduler"), cfg, build_arn, role),
        upsert_alarms(clients.client("cloudwatch"), cfg),
    ]


def upsert_watch(
    clients: AwsClients, cfg: PipelineConfig, archive: CodeArchive, role: str, build_arn: str
) -> list[str]:
    """The monitoring schedule, its drift alarm and the retrain rule (``pipeline.sagemaker.monitoring``)."""
    from pipeline.sagemaker.monitoring import upsert_monitoring
    from pipeline.sagemaker.triggers import events_role

    return upsert_monitoring(
        sagemaker=clients.sagemaker,
        s3=clients.s3,
        cloudwatch=clients.client("cloudwatch"),
        events=clients.client("events"),
        cfg=cfg,
        code=archive,
        role_arn=role,
        events_role_arn=events_role(cfg) or role,
        build_arn=build_arn,
    )


def check_events_role(clients: AwsClients, cfg: PipelineConfig) -> None:
    """The role EventBridge (approval rule) and Scheduler (schedule) assume must trust them; it defaults
    to the execution role, which usually trusts only SageMaker."""
    from pipeline.sagemaker.monitoring import monitoring_wanted
    from pipeline.sagemaker.triggers import events_role

    retrains = monitoring_wanted(cfg) is None and cfg.monitor.on_drift == "retrain"
    services = (("events.amazonaws.com",) if cfg.deploy.on_approval != "off" or retrains else ()) + (
        ("scheduler.amazonaws.com",) if cfg.schedule else ()
    )
    if services:
        clients.check_role(events_role(cfg) or require_role(cfg), services, " (the approval rule's role)")


def upsert_pipeline(
    clients: AwsClients, cfg: PipelineConfig, definition: str, archive: CodeArchive
) -> UpsertResult:
    """Stage the code if absent, then create or update both pipelines and what triggers them; nothing
    is written if a check fails."""
    from pipeline.config.deploy_names import deploy_pipeline_name
    from pipeline.definition.deploy_pipeline import build_deploy_definition

    role = require_role(cfg)
    check_definition_code(definition, archive)
    deploy_definition = build_deploy_definition(cfg, role_arn=role, code=archive)
    clients.check_credentials()
    clients.check_bucket(cfg.project.bucket)
    clients.check_role(role, ("sagemaker.amazonaws.com",), " (the pipelines' execution role)")
    check_events_role(clients, cfg)
    with aws_errors():
        staged = upload_code(clients.s3, archive, cfg)
        arn, action = put_pipeline(clients, cfg, cfg.project.name, definition, role)
        deploy_arn, deploy_action = put_pipeline(
            clients, cfg, deploy_pipeline_name(cfg), deploy_definition, role
        )
        triggers = upsert_triggers(clients, cfg, arn, deploy_arn)
        triggers += upsert_watch(clients, cfg, archive, role, arn)
    total = len(archive.staging_plan(cfg))
    return UpsertResult(arn, action, staged, total - len(staged), deploy_arn, deploy_action, triggers)


def describe_pipeline(sagemaker: Any, name: str) -> dict[str, Any] | None:
    """DescribePipeline, or None when no such pipeline exists."""
    try:
        return sagemaker.describe_pipeline(PipelineName=name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def deployed_definition(sagemaker: Any, name: str) -> str | None:
    """The definition SageMaker holds for ``name``, or None when no such pipeline exists."""
    described = describe_pipeline(sagemaker, name)
    return None if described is None else described["PipelineDefinition"]


def require_deployed_definition(sagemaker: Any, name: str) -> str:
    definition = deployed_definition(sagemaker, name)
    if definition is None:
        raise PipelineError(f"pipeline {name!r} does not exist on SageMaker: run `dogpipe upsert` first")
    return definition


def start_execution(
    clients: AwsClients, cfg: PipelineConfig, overrides: dict[str, str], pipeline: str | None = None
) -> str:
    """Start the deployed pipeline (the build one unless ``pipeline`` names another) with ``overrides``
    checked against its deployed definition by the local engine's rule (``ParameterError`` else);
    returns the execution ARN."""
    clients.check_credentials()
    name = pipeline or cfg.project.name
    with aws_errors():
        definition = require_deployed_definition(clients.sagemaker, name)
        parameters = pipeline_parameters_request(definition, overrides)
        request: dict[str, Any] = {"PipelineName": name}
        if parameters:
            request["PipelineParameters"] = parameters
        return clients.sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"]


@dataclass(frozen=True)
class StepState:
    name: str
    status: str
    started: datetime | None = None
    ended: datetime | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the job it ran: {"TrainingJob": {"Arn": …}}


@dataclass(frozen=True)
class ExecutionReport:
    arn: str
    status: str
    created: datetime | None
    failure_reason: str | None
    steps: list[StepState] = field(default_factory=list)
    steps_unavailable: str | None = None


def latest_execution_arn(sagemaker: Any, pipeline_name: str) -> str:
    require_deployed_definition(sagemaker, pipeline_name)
    summaries = sagemaker.list_pipeline_executions(
        PipelineName=pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    ).get("PipelineExecutionSummaries", [])
    if not summaries:
        raise PipelineError(f"pipeline {pipeline_name!r} has no executions yet: `dogpipe start` one")
    return summaries[0]["PipelineExecutionArn"]


def _steps(sagemaker: Any, arn: str) -> tuple[list[StepState], str | None]:
    """The execution's steps, or why the API would not list them (moto and some proxies lack the call)."""
    steps: list[StepState] = []
    try:
        paginator = sagemaker.get_paginator("list_pipeline_execution_steps")
        for page in paginator.paginate(PipelineExecutionArn=arn, SortOrder="Ascending"):
            steps.extend(
                StepState(
                    name=item.get("StepName", "?"),
                    status=item.get("StepStatus", "?"),
                    started=item.get("StartTime"),
                    ended=item.get("EndTime"),
                    failure_reason=explain_failure(item.get("FailureReason")),
                    metadata=item.get("Metadata") or {},
                )
                for item in page.get("PipelineExecutionSteps", [])
            )
    except ClientError as error:
        return (
            [],
            f"ListPipelineExecutionSteps failed ({error_code(error) or 'error'}); step states unavailable",
        )
    return steps, None


QUOTA_HINT = (
    " (the account's quota for that instance type is too low: new accounts get 0 for GPU types such as "
    "ml.g4dn.xlarge, and Tune runs tuning.max_parallel_jobs at once; request more in Service Quotas, or "
    "set training.instance_type to a CPU type such as ml.m5.xlarge)"
)


def explain_failure(reason: str | None) -> str | None:
    """A step's FailureReason, with what to do when it is a quota (ResourceLimitExceeded) refusal."""
    if reason and ("ResourceLimitExceeded" in reason or "service limit" in reason):
        return reason + QUOTA_HINT
    return reason


def list_execution_steps(sagemaker: Any, arn: str) -> list[StepState]:
    """The execution's steps with the jobs they ran; PipelineError where the API will not list them."""
    steps, unavailable = _steps(sagemaker, arn)
    if unavailable:
        raise PipelineError(unavailable)
    return steps


def execution_report(clients: AwsClients, cfg: PipelineConfig, arn: str | None = None) -> ExecutionReport:
    """Status of ``arn`` (the latest execution when None) and its steps where the API gives them."""
    clients.check_credentials()
    sagemaker = clients.sagemaker
    with aws_errors():
        arn = arn or latest_execution_arn(sagemaker, cfg.project.name)
        try:
            described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        except ClientError as error:
            if is_not_found(error):
                raise PipelineError(f"no pipeline execution {arn!r}") from None
            raise
        steps, unavailable = _steps(sagemaker, arn)
    reason = described.get("FailureReason") or None
    return ExecutionReport(
        arn=arn,
        status=described.get("PipelineExecutionStatus", "?"),
        created=described.get("CreationTime"),
        failure_reason=explain_failure(reason) if reason not in {"None", ""} else None,
        steps=steps,
        steps_unavailable=unavailable,
    )


__all__ = [
    "ExecutionReport",
    "PipelineError",
    "StepState",
    "UpsertResult",
    "execution_report",
    "list_execution_steps",
    "start_execution",
    "upload_code",
    "upsert_pipeline",
]
