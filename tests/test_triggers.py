"""Upsert's rules, schedule and alarms on a moto server; the approval rule's pattern against events.

moto answers every call here (events incl. TestEventPattern, scheduler, cloudwatch, sagemaker, s3), so
no Stubber is needed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import load_config
from pipeline.config.deploy_names import deployment_config
from pipeline.sagemaker.triggers import (
    alarm_requests,
    approval_event_pattern,
    approval_rule_name,
    approval_rule_request,
    approval_targets_request,
    schedule_name,
    schedule_request,
)
from tests.moto_server import ACCOUNT, BUCKET, REGION, ROLE_ARN, aws_env, moto_endpoint  # noqa: F401

PROJECT = "dogpipe-test"
GROUP = "dogpipe-test-models"


def _config(tmp_path: Path, **deploy: Any) -> Path:
    raw = {
        "engine": "sagemaker",
        "project": {
            "name": PROJECT,
            "region": REGION,
            "bucket": BUCKET,
            "prefix": "dp",
            "role_arn": ROLE_ARN,
        },
        "data": {"s3_uri": f"s3://{BUCKET}/data/"},
        "registry": {"model_package_group": GROUP},
        "deploy": {"production_endpoint": "dogs-prod", "on_approval": "prod", **deploy},
        "schedule": "rate(7 days)",
        "tuning": {"enabled": False},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def package_event(group: str, status: str, version: int = 3) -> dict[str, Any]:
    """A "SageMaker Model Package State Change" event as EventBridge delivers it."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"
    return {
        "version": "0",
        "id": "0f8a3d5e-1111-2222-3333-444455556666",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": datetime(2026, 12, 2, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "ModelPackageStatus": "Completed",
        },
    }


SAMPLES = {
    "approved": (package_event(GROUP, "Approved"), True),
    "pending": (package_event(GROUP, "PendingManualApproval", version=4), False),
    "rejected": (package_event(GROUP, "Rejected", version=5), False),
    "other-group": (package_event("someone-elses-models", "Approved", version=6), False),
    # a package registered as Approved straight away, in another group
    "created-approved-elsewhere": (package_event("someone-elses-models", "Approved", version=1), False),
}


@pytest.mark.usefixtures("aws_env")
def test_the_approval_rule_matches_only_approved_packages_of_the_group(tmp_path: Path) -> None:
    """The rule's pattern as upsert writes it, on moto's event bus (moto lacks TestEventPattern and cannot
    deliver to a pipeline target): a rule with the same request but a queue as its target shows which of
    the sample events matched."""
    cfg = load_config(_config(tmp_path))
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="matched")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(**{**approval_rule_request(cfg), "Name": "observer"})
    events.put_targets(Rule="observer", Targets=[{"Id": "observer", "Arn": queue_arn}])
    for event, _ in SAMPLES.values():
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"]),
            "Resources": event["resources"],
        }
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    matched = {json.loads(message["Body"])["detail"]["ModelPackageArn"] for message in received}
    expected = {event["detail"]["ModelPackageArn"] for event, matches in SAMPLES.values() if matches}
    assert matched == expected


def test_every_trigger_request_fits_botocore_shapes(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path))
    session = botocore.session.get_session()
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PROJECT}"
    requests = [
        ("events", "PutRule", approval_rule_request(cfg)),
        ("events", "PutTargets", approval_targets_request(cfg, f"{pipeline_arn}-deploy", ROLE_ARN)),
        ("scheduler", "CreateSchedule", schedule_request(cfg, pipeline_arn, ROLE_ARN)),
        ("scheduler", "UpdateSchedule", schedule_request(cfg, pipeline_arn, ROLE_ARN)),
        *(("cloudwatch", "PutMetricAlarm", request) for request in alarm_requests(cfg)),
        (
            "sagemaker",
            "UpdateEndpoint",
            {
                "EndpointName": "dogs-prod",
                "EndpointConfigName": "c",
                "DeploymentConfig": deployment_config(cfg),
            },
        ),
    ]
    for service, operation, request in requests:
        shape = session.get_service_model(service).operation_model(operation).input_shape
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), f"{service}.{operation}: {report.generate_report()}"


@pytest.mark.usefixtures("aws_env")
@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_upsert_creates_both_pipelines_the_rule_the_schedule_and_the_alarms(tmp_path: Path) -> None:
    config = _config(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["upsert", "--config", str(config)], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "deploy pipeline created" in first.output
    assert f"approval rule {PROJECT}-deploy-on-approval: created" in first.output
    assert f"schedule {PROJECT}-scheduled-build: created (rate(7 days))" in first.output

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    deploy = json.loads(sagemaker.describe_pipeline(PipelineName=f"{PROJECT}-deploy")["PipelineDefinition"])
    assert deploy["Parameters"][0]["Name"] == "ModelPackageArn"
    events = boto3.client("events", region_name=REGION)
    cfg = load_config(config)
    rule = events.describe_rule(Name=approval_rule_name(cfg))
    assert json.loads(rule["EventPattern"]) == approval_event_pattern(cfg)
    (target,) = events.list_targets_by_rule(Rule=approval_rule_name(cfg))["Targets"]
    assert target["Arn"].endswith(f":pipeline/{PROJECT}-deploy") and target["RoleArn"] == ROLE_ARN
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "ModelPackageArn", "Value": "latest"}
    ]
    schedule = boto3.client("scheduler", region_name=REGION).get_schedule(Name=schedule_name(cfg))
    assert schedule["ScheduleExpression"] == "rate(7 days)"
    assert schedule["Target"]["Arn"].endswith(f":pipeline/{PROJECT}")
    alarms = boto3.client("cloudwatch", region_name=REGION).describe_alarms()["MetricAlarms"]
    assert {(a["AlarmName"], a["MetricName"]) for a in alarms} == {
        ("dogs-prod-5xx-errors", "Invocation5XXErrors"),
        ("dogs-prod-model-latency", "ModelLatency"),
    }

    again = runner.invoke(cli, ["upsert", "--config", str(config)], catch_exceptions=False)
    assert "deploy pipeline unchanged" in again.output, again.output  # nothing differs: nothing written
    assert f"approval rule {PROJECT}-deploy-on-approval: unchanged" in again.output
    assert f"schedule {PROJECT}-scheduled-build: unchanged (rate(7 days))" in again.output

    raw = yaml.safe_load(config.read_text())
    raw["schedule"] = "rate(1 day)"
    config.write_text(yaml.safe_dump(raw))
    diff = runner.invoke(cli, ["diff", "--config", str(config)], catch_exceptions=False)
    assert diff.exit_code == 0, diff.output
    assert f"approval rule {PROJECT}-deploy-on-approval: unchanged" in diff.output
    assert f"schedule {PROJECT}-scheduled-build: rate(7 days) -> rate(1 day)" in diff.output
    changed = runner.invoke(cli, ["upsert", "--config", str(config)], catch_exceptions=False)
    assert f"schedule {PROJECT}-scheduled-build: updated (rate(1 day))" in changed.output
    assert f"approval rule {PROJECT}-deploy-on-approval: unchanged" in changed.output

    raw["deploy"]["on_approval"] = "off"
    raw.pop("schedule")
    config.write_text(yaml.safe_dump(raw))
    off = runner.invoke(cli, ["upsert", "--config", str(config)], catch_exceptions=False)
    assert off.exit_code == 0, off.output
    assert "deleted (deploy.on_approval is off)" in off.output and "deleted (no schedule" in off.output
    assert events.list_rules(NamePrefix=PROJECT)["Rules"] == []
    after = runner.invoke(cli, ["diff", "--config", str(config)], catch_exceptions=False)
    assert "none (deploy.on_approval is off)" in after.output and "scheduled-build: none" in after.output
