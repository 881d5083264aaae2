"""Watching the served model on SageMaker: what ``dogpipe upsert`` creates from ``monitor:``.

- ``constraints.json`` (the thresholds of ``monitor.checks``) at ``<s3_root>/monitoring/``;
- a monitoring schedule (``CreateMonitoringSchedule``) on ``monitor.stage``'s endpoint whose job is our
  framework image running ``training_code/monitor.py`` (Model Monitor's bring-your-own-container
  contract). A monitoring job gets no code input, only the endpoint's captured data, so the entrypoint
  is a short bootstrap that fetches the content-addressed ``sourcedir.tar.gz`` (the training code upsert
  staged) and runs the script; the script asks SageMaker which version the endpoint serves and reads
  that version's baseline (``drift_baseline`` in its metadata), so a new version brings its own;
- a CloudWatch alarm on the job's ``drift_violations`` metric (``publish_cloudwatch_metrics: Enabled``);
- with ``monitor.on_drift: retrain``, an EventBridge rule on that alarm's ALARM state that starts the
  build pipeline (the retraining), with the events role.

The schedule needs data capture (``deploy.data_capture.enabled``): without it there is nothing to judge
and none of it is created. Every request is built by a pure function, so tests check each against
botocore's shapes.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from pipeline.config import JobResources, PipelineConfig
from pipeline.config.deploy_names import (
    drift_alarm_name,
    monitored_endpoint,
    monitoring_prefix,
    monitoring_schedule_name,
    retrain_rule_name,
)
from pipeline.definition.code import CodeArchive
from training_code.contract import CONSTRAINTS_FILE

#: Where Model Monitor puts the endpoint's captured data and takes the reports from (the job's paths).
DATASET_PATH = "/opt/ml/processing/input/endpoint"
OUTPUT_PATH = "/opt/ml/processing/resultdata"
CODE_DIR = "/opt/ml/processing/code"
#: The monitoring job's entrypoint: fetch and unpack the code archive (its S3 URI is the first
#: argument), then run monitor.py as a script. ContainerEntrypoint items are at most 256 characters.
BOOTSTRAP = (
    "import boto3,sys,tarfile,runpy;b,k=sys.argv.pop(1)[5:].split('/',1);f='/tmp/code.tar.gz';"
    f"d='{CODE_DIR}';boto3.client('s3').download_file(b,k,f);tarfile.open(f).extractall(d);"
    "sys.path[0]=d;runpy.run_path(d+'/monitor.py',run_name='__main__')"
)
#: The monitoring job's metric (training_code/monitor.py writes it) and where Model Monitor puts it.
METRICS_NAMESPACE = "/aws/sagemaker/Endpoint/data-metrics"
VIOLATIONS_METRIC = "drift_violations"
RETRAIN_TARGET_ID = "build-pipeline"


def constraints_uri(cfg: PipelineConfig) -> str:
    return f"{monitoring_prefix(cfg)}/{CONSTRAINTS_FILE}"


def monitoring_wanted(cfg: PipelineConfig) -> str | None:
    """Why no schedule is wanted (None: one is)."""
    if not cfg.monitor.enabled:
        return "monitor.enabled is false"
    if not cfg.deploy.data_capture.enabled or not cfg.deploy.data_capture.capture_input:
        return "deploy.data_capture captures no requests"
    return None


def _inputs_and_outputs(cfg: PipelineConfig, endpoint: str) -> dict[str, Any]:
    """The job's baseline constraints, the endpoint's captured data (input) and the reports (output)."""
    return {
        "BaselineConfig": {"ConstraintsResource": {"S3Uri": constraints_uri(cfg)}},
        "MonitoringInputs": [
            {
                "EndpointInput": {
                    "EndpointName": endpoint,
                    "LocalPath": DATASET_PATH,
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                }
            }
        ],
        "MonitoringOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": f"{monitoring_prefix(cfg)}/{endpoint}/reports",
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ]
        },
    }


def monitoring_schedule_request(cfg: PipelineConfig, code: CodeArchive, role_arn: str) -> dict[str, Any]:
    """sagemaker:CreateMonitoringSchedule (UpdateMonitoringSchedule takes the same config)."""
    from pipeline.definition.sdk import prepare_sdk_environment

    prepare_sdk_environment(cfg.project.region)  # the SDK needs a region to be imported
    from steps.common import framework_image

    endpoint = monitored_endpoint(cfg)
    resources = JobResources(
        instance_type=cfg.monitor.instance_type,
        framework_version=cfg.training.resources.framework_version,
        py_version=cfg.training.resources.py_version,
    )
    definition = {
        **_inputs_and_outputs(cfg, endpoint),
        "MonitoringResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": cfg.monitor.instance_type,
                "VolumeSizeInGB": 30,
            }
        },
        "MonitoringAppSpecification": {
            "ImageUri": framework_image(cfg, resources, "training"),
            "ContainerEntrypoint": ["python3", "-c", BOOTSTRAP],
            "ContainerArguments": [code.sourcedir_uri(cfg)],
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        # Model Monitor adds the contract's variables (dataset_source, start/end_time, the endpoint, the
        # schedule, baseline_constraints from BaselineConfig); these are what it leaves to us.
        "Environment": {"publish_cloudwatch_metrics": "Enabled", "AWS_DEFAULT_REGION": cfg.project.region},
        "RoleArn": role_arn,
    }
    return {
        "MonitoringScheduleName": monitoring_schedule_name(cfg),
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": cfg.monitor.schedule},
            "MonitoringJobDefinition": definition,
        },
        "Tags": [{"Key": "dogpipe:project", "Value": cfg.project.name}],
    }


def drift_alarm_request(cfg: PipelineConfig) -> dict[str, Any]:
    """cloudwatch:PutMetricAlarm: any violation in a monitoring run puts the alarm in ALARM."""
    return {
        "AlarmName": drift_alarm_name(cfg),
        "AlarmDescription": f"Drift found by {monitoring_schedule_name(cfg)} (managed by dogpipe upsert)",
        "Namespace": METRICS_NAMESPACE,
        "MetricName": VIOLATIONS_METRIC,
        "Dimensions": [
            {"Name": "Endpoint", "Value": monitored_endpoint(cfg)},
            {"Name": "MonitoringSchedule", "Value": monitoring_schedule_name(cfg)},
        ],
        "Statistic": "Maximum",
        "Period": 3600,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    }


def retrain_event_pattern(cfg: PipelineConfig, alarm_arn: str) -> dict[str, Any]:
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [alarm_arn],
        "detail": {"state": {"value": ["ALARM"]}},
    }


def retrain_rule_request(cfg: PipelineConfig, alarm_arn: str) -> dict[str, Any]:
    """events:PutRule."""
    return {
        "Name": retrain_rule_name(cfg),
        "EventPattern": json.dumps(retrain_event_pattern(cfg, alarm_arn), sort_keys=True),
        "State": "ENABLED",
        "Description": f"Starts {cfg.project.name} on {drift_alarm_name(cfg)} (managed by dogpipe upsert)",
    }


def retrain_targets_request(cfg: PipelineConfig, build_arn: str, role_arn: str) -> dict[str, Any]:
    """events:PutTargets: the build pipeline with its default parameters (the configured data)."""
    return {
        "Rule": retrain_rule_name(cfg),
        "Targets": [
            {
                "Id": RETRAIN_TARGET_ID,
                "Arn": build_arn,
                "RoleArn": role_arn,
                "SageMakerPipelineParameters": {"PipelineParameterList": []},
            }
        ],
    }


def _missing(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in {"ResourceNotFound", "ResourceNotFoundException", "ValidationException"}


def describe_schedule(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
    except ClientError as error:
        if _missing(error):
            return None
        raise


def _put_schedule(
    sagemaker: Any, s3: Any, cfg: PipelineConfig, code: CodeArchive, role_arn: str, existing: Any
) -> str:
    """The constraints file, then the schedule created, updated or left as it is; one line."""
    name = monitoring_schedule_name(cfg)
    bucket, _, key = constraints_uri(cfg).removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(cfg.monitor.constraints(), indent=2).encode())
    request = monitoring_schedule_request(cfg, code, role_arn)
    if existing is None:
        sagemaker.create_monitoring_schedule(**request)
        action = "created"
    elif existing.get("MonitoringScheduleConfig") == request["MonitoringScheduleConfig"]:
        action = "unchanged"
    else:
        sagemaker.update_monitoring_schedule(
            MonitoringScheduleName=name, MonitoringScheduleConfig=request["MonitoringScheduleConfig"]
        )
        action = "updated"
    return f"monitoring schedule {name}: {action} ({cfg.monitor.schedule} on {monitored_endpoint(cfg)})"


def upsert_monitoring(
    *,
    sagemaker: Any,
    s3: Any,
    cloudwatch: Any,
    events: Any,
    cfg: PipelineConfig,
    code: CodeArchive,
    role_arn: str,
    events_role_arn: str,
    build_arn: str,
) -> list[str]:
    """Write the constraints, the schedule, the alarm and (``on_drift: retrain``) the retrain rule; one
    line each for the CLI."""
    name = monitoring_schedule_name(cfg)
    why_not = monitoring_wanted(cfg)
    if why_not is not None and cfg.monitor.enabled:
        # Capture off (the shipped SageMaker config): nothing to watch, and no monitoring call made.
        return [f"monitoring schedule: none ({why_not})"]
    existing = describe_schedule(sagemaker, name)
    if why_not is not None:  # monitor.enabled: false removes what an earlier upsert created
        lines = []
        if existing is not None:
            sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)
            lines.append(f"monitoring schedule {name}: deleted ({why_not})")
        else:
            lines.append(f"monitoring schedule: none ({why_not})")
        return [*lines, _remove_retrain_rule(events, cfg, why_not)]
    lines = [_put_schedule(sagemaker, s3, cfg, code, role_arn, existing)]
    alarm = drift_alarm_request(cfg)
    cloudwatch.put_metric_alarm(**alarm)
    lines.append(f"drift alarm: {alarm['AlarmName']}")
    if cfg.monitor.on_drift != "retrain":
        return [*lines, _remove_retrain_rule(events, cfg, "monitor.on_drift is alert")]
    alarm_arn = cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["AlarmArn"]
    events.put_rule(**retrain_rule_request(cfg, alarm_arn))
    events.put_targets(**retrain_targets_request(cfg, build_arn, events_role_arn))
    lines.append(f"retrain rule {retrain_rule_name(cfg)}: starts {cfg.project.name} on {alarm['AlarmName']}")
    return lines


def _remove_retrain_rule(events: Any, cfg: PipelineConfig, why: str) -> str:
    name = retrain_rule_name(cfg)
    try:
        events.describe_rule(Name=name)
    except ClientError as error:
        if _missing(error):
            return f"retrain rule: none ({why})"
        raise
    events.remove_targets(Rule=name, Ids=[RETRAIN_TARGET_ID])
    events.delete_rule(Name=name)
    return f"retrain rule {name}: deleted ({why})"


def monitoring_diff(
    sagemaker: Any, events: Any, cfg: PipelineConfig, code: CodeArchive, role_arn: str
) -> list[str]:
    """What ``upsert`` would change in the schedule and the retrain rule, one line each."""
    name = monitoring_schedule_name(cfg)
    why_not = monitoring_wanted(cfg)
    label = f"monitoring schedule {name}"
    if why_not is not None and cfg.monitor.enabled:
        return [f"monitoring schedule: none ({why_not})"]
    existing = describe_schedule(sagemaker, name)
    if why_not is not None:
        lines = [f"{label}: would be deleted ({why_not})" if existing else f"{label}: none ({why_not})"]
    elif existing is None:
        lines = [f"{label}: would be created ({cfg.monitor.schedule} on {monitored_endpoint(cfg)})"]
    elif (
        existing.get("MonitoringScheduleConfig")
        == monitoring_schedule_request(cfg, code, role_arn)["MonitoringScheduleConfig"]
    ):
        lines = [f"{label}: unchanged"]
    else:
        lines = [f"{label}: would be updated"]
    try:
        events.describe_rule(Name=retrain_rule_name(cfg))
        held = True
    except ClientError as error:
        if not _missing(error):
            raise
        held = False
    wanted = why_not is None and cfg.monitor.on_drift == "retrain"
    rule = f"retrain rule {retrain_rule_name(cfg)}"
    if held == wanted:
        lines.append(f"{rule}: {'unchanged' if held else 'none'}")
    else:
        lines.append(f"{rule}: would be {'created' if wanted else 'deleted'}")
    return lines
