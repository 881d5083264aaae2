"""What starts the pipelines on SageMaker, and what guards a deploy: EventBridge, Scheduler, CloudWatch.

``dogpipe upsert`` writes all of it from the YAML:

- an EventBridge rule matching "SageMaker Model Package State Change" events of *this group* whose
  ``ModelApprovalStatus`` is ``Approved`` (the SageMaker project template's rule matches every state
  change, so Pending and Rejected packages got deployed), targeting ``<project>-deploy``;
- an EventBridge Scheduler schedule starting the build pipeline when ``schedule:`` is set;
- the two CloudWatch alarms whose ALARM state rolls a blue/green endpoint update back.

A rule target cannot hand event fields to a pipeline: botocore's ``SageMakerPipelineParameter.Value`` is
a plain string, and EventBridge documents dynamic JSON paths (``$.detail.…``) for *Pipes* targets only.
So the target passes ``ModelPackageArn=latest`` and the deploy pipeline deploys the group's highest
Approved version, which is the package just approved unless a newer one was approved before it (then
that newer one stays, as ``dogpipe deploy`` would choose). Every request is built by a pure function
here, so tests check each against botocore's shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import (
    LATEST_PACKAGE,
    VARIANT,
    alarm_names,
    approval_rule_name,
    schedule_name,
    stage_endpoint,
)
from pipeline.sagemaker.aws import is_not_found

PACKAGE_EVENT = "SageMaker Model Package State Change"
TARGET_ID = "deploy-pipeline"


def events_role(cfg: PipelineConfig) -> str | None:
    return cfg.deploy.events_role_arn or cfg.project.role_arn


def events_role_problem(cfg: PipelineConfig) -> str | None:
    """Offline, for ``validate``: a rule or schedule whose role is the execution role, which normally
    trusts only SageMaker, so EventBridge could not start the pipelines (``upsert`` checks the trust)."""
    if cfg.deploy.events_role_arn or (cfg.deploy.on_approval == "off" and not cfg.schedule):
        return None
    return (
        "deploy.events_role_arn is unset, so EventBridge and the Scheduler would assume the execution role, "
        "which normally trusts only sagemaker.amazonaws.com: set it to a role that trusts "
        "events.amazonaws.com and scheduler.amazonaws.com (`dogpipe iam-policy --role events`)"
    )


def approval_event_pattern(cfg: PipelineConfig) -> dict[str, Any]:
    """Only this group's packages, only when their status is Approved."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": [PACKAGE_EVENT],
        "detail": {
            "ModelPackageGroupName": [cfg.registry.model_package_group],
            "ModelApprovalStatus": ["Approved"],
        },
    }


def approval_rule_request(cfg: PipelineConfig) -> dict[str, Any]:
    """events:PutRule."""
    return {
        "Name": approval_rule_name(cfg),
        "EventPattern": json.dumps(approval_event_pattern(cfg), sort_keys=True),
        "State": "ENABLED",
        "Description": (
            f"Starts {cfg.project.name}-deploy when a package of {cfg.registry.model_package_group} "
            "is Approved (managed by dogpipe upsert)"
        ),
    }


def approval_targets_request(cfg: PipelineConfig, deploy_pipeline_arn: str, role_arn: str) -> dict[str, Any]:
    """events:PutTargets: the deploy pipeline, started with the group's latest Approved package."""
    return {
        "Rule": approval_rule_name(cfg),
        "Targets": [
            {
                "Id": TARGET_ID,
                "Arn": deploy_pipeline_arn,
                "RoleArn": role_arn,
                "SageMakerPipelineParameters": {
                    "PipelineParameterList": [{"Name": "ModelPackageArn", "Value": LATEST_PACKAGE}]
                },
            }
        ],
    }


def alarm_requests(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """cloudwatch:PutMetricAlarm for the 5XX errors and model latency of the stage's endpoint."""
    thresholds = cfg.deploy.guardrails.alarms
    errors_name, latency_name = alarm_names(cfg)
    dimensions = [
        {"Name": "EndpointName", "Value": stage_endpoint(cfg)},
        {"Name": "VariantName", "Value": VARIANT},
    ]
    common = {
        "Namespace": "AWS/SageMaker",
        "Dimensions": dimensions,
        "Period": thresholds.period_seconds,
        "EvaluationPeriods": thresholds.evaluation_periods,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }
    return [
        {
            **common,
            "AlarmName": errors_name,
            "AlarmDescription": "5XX invocation errors: rolls a blue/green update back",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Threshold": float(thresholds.errors_5xx),
        },
        {
            **common,
            "AlarmName": latency_name,
            "AlarmDescription": "Average model latency (microseconds): rolls a blue/green update back",
            "MetricName": "ModelLatency",
            "Statistic": "Average",
            "Threshold": float(thresholds.model_latency_ms * 1000),
        },
    ]


def schedule_request(cfg: PipelineConfig, build_pipeline_arn: str, role_arn: str) -> dict[str, Any]:
    """scheduler:CreateSchedule / UpdateSchedule (same fields): start the build pipeline."""
    return {
        "Name": schedule_name(cfg),
        "ScheduleExpression": str(cfg.schedule),
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": f"Starts {cfg.project.name} (managed by dogpipe upsert)",
        "Target": {"Arn": build_pipeline_arn, "RoleArn": role_arn, "SageMakerPipelineParameters": {}},
    }


#: The schedule fields an upsert sets besides its target (compared before writing).
SCHEDULE_FIELDS = ("ScheduleExpression", "FlexibleTimeWindow", "State", "Description")


@dataclass
class TriggerChanges:
    """What an upsert did to rules, schedules and alarms, one line each for the CLI."""

    lines: list[str] = field(default_factory=list)


def describe_rule(events: Any, name: str) -> dict[str, Any] | None:
    try:
        return events.describe_rule(Name=name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def get_schedule(scheduler: Any, name: str) -> dict[str, Any] | None:
    try:
        return scheduler.get_schedule(Name=name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def upsert_approval_rule(events: Any, cfg: PipelineConfig, deploy_arn: str, role: str) -> str:
    existing = describe_rule(events, approval_rule_name(cfg))
    if cfg.deploy.on_approval == "off":
        if existing is None:
            return "approval rule: none (deploy.on_approval is off)"
        events.remove_targets(Rule=approval_rule_name(cfg), Ids=[TARGET_ID])
        events.delete_rule(Name=approval_rule_name(cfg))
        return f"approval rule {approval_rule_name(cfg)}: deleted (deploy.on_approval is off)"
    targets = approval_targets_request(cfg, deploy_arn, role)["Targets"]
    if existing is not None and _rule_state(events, cfg) == _wanted_rule_state(cfg):
        held = events.list_targets_by_rule(Rule=approval_rule_name(cfg)).get("Targets", [])
        if [_target_key(target) for target in held] == [_target_key(target) for target in targets]:
            return f"approval rule {approval_rule_name(cfg)}: unchanged"
    events.put_rule(**approval_rule_request(cfg))
    events.put_targets(Rule=approval_rule_name(cfg), Targets=targets)
    return f"approval rule {approval_rule_name(cfg)}: {'updated' if existing else 'created'}"


def _target_key(target: dict[str, Any]) -> tuple[Any, ...]:
    """What a target is, for comparing a held one with the wanted one."""
    parameters = (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList") or []
    return (target.get("Arn"), target.get("RoleArn"), json.dumps(parameters, sort_keys=True))


def upsert_schedule(scheduler: Any, cfg: PipelineConfig, build_arn: str, role: str) -> str:
    existing = get_schedule(scheduler, schedule_name(cfg))
    if cfg.schedule is None:
        if existing is None:
            return "schedule: none"
        scheduler.delete_schedule(Name=schedule_name(cfg))
        return f"schedule {schedule_name(cfg)}: deleted (no schedule: in the config)"
    request = schedule_request(cfg, build_arn, role)
    if existing is not None and all(existing.get(key) == request[key] for key in SCHEDULE_FIELDS):
        held, wanted = existing.get("Target") or {}, request["Target"]
        if (held.get("Arn"), held.get("RoleArn")) == (wanted["Arn"], wanted["RoleArn"]):
            return f"schedule {schedule_name(cfg)}: unchanged ({cfg.schedule})"
    (scheduler.update_schedule if existing else scheduler.create_schedule)(**request)
    return f"schedule {schedule_name(cfg)}: {'updated' if existing else 'created'} ({cfg.schedule})"


def upsert_alarms(cloudwatch: Any, cfg: PipelineConfig) -> str:
    if cfg.deploy.serverless is not None:
        return "rollback alarms: none (serverless endpoints update in place)"
    requests = alarm_requests(cfg)
    for request in requests:
        cloudwatch.put_metric_alarm(**request)
    return f"rollback alarms: {', '.join(request['AlarmName'] for request in requests)}"


def _rule_state(events: Any, cfg: PipelineConfig) -> str | None:
    """The approval rule as deployed, in the terms the config sets (pattern, parameters), or None."""
    rule = describe_rule(events, approval_rule_name(cfg))
    if rule is None:
        return None
    targets = events.list_targets_by_rule(Rule=approval_rule_name(cfg)).get("Targets", [])
    parameters = [
        (item["Name"], item["Value"])
        for target in targets
        for item in (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList", [])
    ]
    pattern = json.loads(rule.get("EventPattern") or "{}")
    return json.dumps({"pattern": pattern, "parameters": parameters}, sort_keys=True)


def _wanted_rule_state(cfg: PipelineConfig) -> str | None:
    if cfg.deploy.on_approval == "off":
        return None
    parameters = [("ModelPackageArn", LATEST_PACKAGE)]
    return json.dumps({"pattern": approval_event_pattern(cfg), "parameters": parameters}, sort_keys=True)


def trigger_diff(events: Any, scheduler: Any, cfg: PipelineConfig) -> list[str]:
    """What ``dogpipe upsert`` would change in the approval rule and the schedule, one line each."""
    lines = []
    deployed, wanted = _rule_state(events, cfg), _wanted_rule_state(cfg)
    rule = f"approval rule {approval_rule_name(cfg)}"
    if deployed == wanted:
        lines.append(f"{rule}: unchanged" if wanted else f"{rule}: none (deploy.on_approval is off)")
    elif wanted is None:
        lines.append(f"{rule}: would be deleted (deploy.on_approval is off)")
    elif deployed is None:
        lines.append(f"{rule}: would be created (Approved packages of {cfg.registry.model_package_group})")
    else:
        lines.append(f"{rule}: would be updated: {deployed} -> {wanted}")
    schedule = get_schedule(scheduler, schedule_name(cfg))
    current = schedule.get("ScheduleExpression") if schedule else None
    label = f"schedule {schedule_name(cfg)}"
    if current == cfg.schedule:
        lines.append(f"{label}: unchanged ({current})" if current else f"{label}: none")
    elif cfg.schedule is None:
        lines.append(f"{label}: would be deleted (was {current})")
    else:
        lines.append(f"{label}: {current or 'none'} -> {cfg.schedule}")
    return lines
