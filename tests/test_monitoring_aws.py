"""What ``dogpipe upsert`` creates to watch the endpoint on SageMaker, on a moto server.

moto (5.2) has no monitoring schedules: DescribeMonitoringSchedule, CreateMonitoringSchedule,
UpdateMonitoringSchedule and DeleteMonitoringSchedule are answered by ``ScheduleRecorder``, which checks
each request against botocore's SageMaker shapes (what the real API validates first) and keeps it.
Everything else (S3, CloudWatch alarms, EventBridge rules and their pattern) is moto's.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import botocore.session
import pytest
import yaml
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import load_config
from pipeline.definition.code import package_code
from pipeline.sagemaker import monitoring
from pipeline.sagemaker.aws import AwsClients
from tests.moto_server import ACCOUNT, BUCKET, REGION, ROLE_ARN, aws_env, moto_endpoint  # noqa: F401

PROJECT = "dogpipe-test"
BUILD_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PROJECT}"
MODEL = botocore.session.get_session().get_service_model("sagemaker")


def check_shape(operation: str, request: dict[str, Any]) -> None:
    report = ParamValidator().validate(request, MODEL.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


class ScheduleRecorder:
    """The moto SageMaker client plus the monitoring-schedule calls moto lacks, shape-checked."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.schedules: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def describe_monitoring_schedule(self, **request: Any) -> dict[str, Any]:
        check_shape("DescribeMonitoringSchedule", request)
        name = request["MonitoringScheduleName"]
        if name not in self.schedules:
            raise ClientError({"Error": {"Code": "ResourceNotFound", "Message": name}}, "Describe")
        return self.schedules[name]

    def create_monitoring_schedule(self, **request: Any) -> dict[str, Any]:
        check_shape("CreateMonitoringSchedule", request)
        self.calls.append("create")
        self.schedules[request["MonitoringScheduleName"]] = request
        return {"MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/x"}

    def update_monitoring_schedule(self, **request: Any) -> dict[str, Any]:
        check_shape("UpdateMonitoringSchedule", request)
        self.calls.append("update")
        self.schedules[request["MonitoringScheduleName"]].update(request)
        return {"MonitoringScheduleArn": "x"}

    def delete_monitoring_schedule(self, **request: Any) -> None:
        check_shape("DeleteMonitoringSchedule", request)
        self.calls.append("delete")
        del self.schedules[request["MonitoringScheduleName"]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _config(tmp_path: Path, **monitor: Any) -> Path:
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
        "deploy": {
            "production_endpoint": "dogs-prod",
            "events_role_arn": ROLE_ARN,
            "data_capture": {"enabled": True, "sampling_percentage": 50},
        },
        "monitor": {"stage": "prod", **monitor},
        "tuning": {"enabled": False},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _upsert(cfg: Any, recorder: ScheduleRecorder) -> list[str]:
    clients = AwsClients.for_config(cfg)
    return monitoring.upsert_monitoring(
        sagemaker=recorder,
        s3=clients.s3,
        cloudwatch=clients.client("cloudwatch"),
        events=clients.client("events"),
        cfg=cfg,
        code=package_code(),
        role_arn=ROLE_ARN,
        events_role_arn=ROLE_ARN,
        build_arn=BUILD_ARN,
    )


def test_every_request_is_a_valid_one(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, on_drift="retrain"))
    schedule = monitoring.monitoring_schedule_request(cfg, package_code(), ROLE_ARN)
    check_shape("CreateMonitoringSchedule", schedule)
    app = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]["MonitoringAppSpecification"]
    assert all(len(part) <= 256 for part in app["ContainerEntrypoint"])  # the API's item limit
    assert app["ContainerArguments"][0].endswith("/sourcedir.tar.gz")
    events = botocore.session.get_session().get_service_model("events")
    cloudwatch = botocore.session.get_session().get_service_model("cloudwatch")
    for model, operation, request in (
        (cloudwatch, "PutMetricAlarm", monitoring.drift_alarm_request(cfg)),
        (events, "PutRule", monitoring.retrain_rule_request(cfg, "arn:aws:cloudwatch:x:1:alarm:a")),
        (events, "PutTargets", monitoring.retrain_targets_request(cfg, BUILD_ARN, ROLE_ARN)),
    ):
        report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
        assert not report.has_errors(), report.generate_report()


@pytest.mark.usefixtures("aws_env")
def test_upsert_creates_the_schedule_the_alarm_and_the_retrain_rule(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, on_drift="retrain"))
    recorder = ScheduleRecorder(boto3.client("sagemaker", region_name=REGION))
    lines = _upsert(cfg, recorder)
    assert lines[0] == "monitoring schedule dogs-prod-drift: created (cron(0 * ? * * *) on dogs-prod)"
    (schedule,) = recorder.schedules.values()
    job = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    assert job["MonitoringInputs"][0]["EndpointInput"]["EndpointName"] == "dogs-prod"
    constraints = job["BaselineConfig"]["ConstraintsResource"]["S3Uri"]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=constraints.split(f"{BUCKET}/", 1)[1])["Body"]
    assert json.loads(body.read())["checks"]["embedding"]["permutations"] == 200

    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=["dogs-prod-drift"])["MetricAlarms"]
    assert (alarm["MetricName"], alarm["Namespace"]) == ("drift_violations", monitoring.METRICS_NAMESPACE)
    events = boto3.client("events", region_name=REGION)
    rule = events.describe_rule(Name=f"{PROJECT}-retrain-on-drift")
    # moto lacks TestEventPattern and answers PutEvents with a 500 for this nested pattern, so the
    # pattern is checked as written: this alarm's ARN, its state changes into ALARM only.
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [alarm["AlarmArn"]],
        "detail": {"state": {"value": ["ALARM"]}},
    }
    (target,) = events.list_targets_by_rule(Rule=f"{PROJECT}-retrain-on-drift")["Targets"]
    assert target["Arn"] == BUILD_ARN and target["RoleArn"] == ROLE_ARN

    again = _upsert(cfg, recorder)
    assert again[0].endswith("unchanged (cron(0 * ? * * *) on dogs-prod)") and recorder.calls == ["create"]
    alert = load_config(_config(tmp_path, on_drift="alert", schedule="cron(0 */6 ? * * *)"))
    changed = _upsert(alert, recorder)
    assert recorder.calls == ["create", "update"]
    assert changed[-1] == f"retrain rule {PROJECT}-retrain-on-drift: deleted (monitor.on_drift is alert)"
    off = load_config(_config(tmp_path, enabled=False))
    assert (
        _upsert(off, recorder)[0] == "monitoring schedule dogs-prod-drift: deleted (monitor.enabled is false)"
    )


@pytest.mark.usefixtures("aws_env")
def test_without_capture_nothing_is_created_and_diff_says_what_would_be(tmp_path: Path) -> None:
    raw = yaml.safe_load(_config(tmp_path).read_text())
    raw["deploy"]["data_capture"]["enabled"] = False
    path = tmp_path / "nocapture.yaml"
    path.write_text(yaml.safe_dump(raw))
    recorder = ScheduleRecorder(boto3.client("sagemaker", region_name=REGION))
    lines = _upsert(load_config(path), recorder)
    assert lines == ["monitoring schedule: none (deploy.data_capture captures no requests)"]
    assert recorder.schedules == {}
    cfg = load_config(_config(tmp_path, on_drift="retrain"))
    events = boto3.client("events", region_name=REGION)
    assert monitoring.monitoring_diff(recorder, events, cfg, package_code(), ROLE_ARN) == [
        "monitoring schedule dogs-prod-drift: would be created (cron(0 * ? * * *) on dogs-prod)",
        f"retrain rule {PROJECT}-retrain-on-drift: would be created",
    ]


def test_monitor_run_on_a_sagemaker_config_says_what_does_it_there(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["monitor", "run", "--config", str(_config(tmp_path))])
    assert result.exit_code == 1
    assert "monitoring schedule `dogpipe upsert` creates" in result.output


@pytest.mark.usefixtures("aws_env")
def test_the_policies_allow_every_call_of_the_upsert_and_of_the_job(
    tmp_path: Path, sample_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.definition.document import build_definition
    from pipeline.sagemaker.iam_policy import (
        allowed_actions,
        execution_role_policy,
        iam_action,
        operator_policy,
    )
    from tests.test_iam_policy import OWN_CODE
    from tests.toolkit.test_monitor_job import ENDPOINT, _serve_on_moto
    from training_code import monitor

    made: set[str] = set()
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        if any(frame.filename.startswith(OWN_CODE) for frame in traceback.extract_stack()):
            made.add(iam_action(self.meta.service_model.service_name, operation))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    cfg = load_config(_config(tmp_path, on_drift="retrain"))
    recorder = ScheduleRecorder(boto3.client("sagemaker", region_name=REGION))
    _upsert(cfg, recorder)
    upsert_calls = made | {
        f"sagemaker:{name.title().replace('_', '')}MonitoringSchedule" for name in ("describe", "create")
    }
    assert upsert_calls - allowed_actions(operator_policy(cfg, [ROLE_ARN])) == set()

    made.clear()
    _serve_on_moto(tmp_path, sample_dataset)
    monitor.resolve_from_endpoint(ENDPOINT, tmp_path / "resolved")
    role = execution_role_policy(cfg, [build_definition(cfg)], ROLE_ARN)
    assert made and made - allowed_actions(role) == set()
