"""``dogpipe iam-policy``: the least-privilege IAM policies of the three roles a SageMaker run involves.

- **execution**: the role the pipelines run as (``--role-arn``). What it needs follows from the two
  definitions: each step type's create/describe/stop calls, plus the calls the jobs' scripts make
  themselves (ResolvePackage, Deploy and Compare call the registry and the endpoint API), the S3
  prefix, ECR pulls, CloudWatch Logs and metrics, ``cloudwatch:DescribeAlarms`` (the deployment
  guardrails read the rollback alarms) and ``iam:PassRole`` on itself (jobs run as it).
- **events**: what EventBridge (the approval rule, and with ``monitor.on_drift: retrain`` the monitor's
  retrain rule) and EventBridge Scheduler (schedule) assume to start the pipelines; its trust policy
  names both services (``upsert`` checks it).
- **operator**: whoever runs ``upsert``, ``start``, ``status``, the listings, approvals and ``deploy``.

With ``tracking.uri`` naming a SageMaker managed MLflow tracking server, the execution role (the
training jobs log their runs) and the operator (``dogpipe report`` records the execution's run) also get
``sagemaker-mlflow:*`` on that server's ARN (the service prefix and its ``mlflow-tracking-server``
resource type: AWS's Service Authorization Reference, "Amazon SageMaker with MLflow"). Artifacts go to
the server's own S3 artifact store, which its role, not these, writes through presigned URLs.

``tests/test_iam_policy.py`` records every AWS call those code paths make on a moto server and checks
that each is allowed here, so a new call without its permission fails a test, not a first real run.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import (
    approval_rule_name,
    deploy_pipeline_name,
    retrain_rule_name,
    schedule_name,
)

#: Step type → the SageMaker actions Pipelines calls, as the execution role, to run the step.
STEP_ACTIONS: dict[str, tuple[str, ...]] = {
    "Processing": ("CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob"),
    "Training": ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"),
    "Tuning": (
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
        "ListTrainingJobsForHyperParameterTuningJob",
    ),
    "RegisterModel": ("CreateModelPackage", "DescribeModelPackage"),
    "Model": ("CreateModel", "DescribeModel"),
    "EndpointConfig": ("CreateEndpointConfig", "DescribeEndpointConfig"),
    "Endpoint": ("CreateEndpoint", "DescribeEndpoint", "UpdateEndpoint"),
}
#: What the job scripts call with the execution role (resolve_model_package.py, deploy_endpoint.py,
#: production_model.py: the Compare job follows the prod endpoint to the package it serves).
SCRIPT_ACTIONS = (
    "sagemaker:ListModelPackages",
    "sagemaker:DescribeModelPackage",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    # training_code/monitor.py on a monitoring schedule: which version the endpoint serves
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
)
#: The operator's actions, by what they are for.
OPERATOR_ACTIONS: dict[str, tuple[str, ...]] = {
    "identity": ("sts:GetCallerIdentity", "iam:GetRole"),
    "pipelines": (
        "sagemaker:CreatePipeline",
        "sagemaker:UpdatePipeline",
        "sagemaker:DescribePipeline",
        "sagemaker:AddTags",
        "sagemaker:StartPipelineExecution",
        "sagemaker:StopPipelineExecution",
        "sagemaker:RetryPipelineExecution",
        "sagemaker:DescribePipelineExecution",
        "sagemaker:ListPipelineExecutions",
        "sagemaker:ListPipelineExecutionSteps",
        "sagemaker:DescribeProcessingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    ),
    "registry": (
        "sagemaker:ListModelPackages",
        "sagemaker:DescribeModelPackage",
        "sagemaker:UpdateModelPackage",
    ),
    "endpoints": (
        "sagemaker:CreateModel",
        "sagemaker:DescribeModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DeleteEndpoint",
        "sagemaker:ListEndpoints",
        "sagemaker:InvokeEndpoint",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:PutScalingPolicy",
    ),
    "triggers": (
        "events:PutRule",
        "events:DescribeRule",
        "events:DeleteRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:ListTargetsByRule",
        "scheduler:GetSchedule",
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        # watching the endpoint (pipeline/sagemaker/monitoring.py)
        "sagemaker:DescribeMonitoringSchedule",
        "sagemaker:CreateMonitoringSchedule",
        "sagemaker:UpdateMonitoringSchedule",
        "sagemaker:DeleteMonitoringSchedule",
    ),
    "storage": ("s3:ListBucket", "s3:GetObject", "s3:PutObject"),
    "logs": ("logs:FilterLogEvents",),  # dogpipe logs: the jobs' CloudWatch streams
}
#: botocore operations whose IAM action has another name (S3's HEAD requests, its listing).
_ACTION_OF: dict[tuple[str, str], str] = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("sagemaker-runtime", "InvokeEndpoint"): "sagemaker:InvokeEndpoint",
}


def iam_action(service: str, operation: str) -> str:
    """The IAM action of one botocore call: ``("s3", "HeadObject")`` → ``s3:GetObject``."""
    return _ACTION_OF.get((service, operation), f"{service}:{operation}")


def _statement(sid: str, actions: list[str], resources: list[str] | str = "*") -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}


def _bucket_resources(cfg: PipelineConfig) -> list[str]:
    bucket = f"arn:aws:s3:::{cfg.project.bucket}"
    return [bucket, f"{bucket}/*"]


def step_types(definitions: list[str]) -> set[str]:
    from pipeline.definition.reader import parse_definition, steps_of

    return {node.type for text in definitions for node in steps_of(parse_definition(text))}


def tracking_statements(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """``sagemaker-mlflow:*`` on the tracking server ``tracking.uri`` names (none without one)."""
    tracking = cfg.tracking
    if not (tracking.enabled and tracking.uri and tracking.is_tracking_server):
        return []
    return [_statement("ExperimentTracking", ["sagemaker-mlflow:*"], [tracking.uri])]


def execution_role_policy(cfg: PipelineConfig, definitions: list[str], role_arn: str) -> dict[str, Any]:
    """What the pipelines' role needs for the step types of ``definitions`` and the jobs' own calls."""
    sagemaker = [
        f"sagemaker:{action}"
        for kind in sorted(step_types(definitions))
        for action in STEP_ACTIONS.get(kind, ())
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("PipelineSteps", [*sagemaker, *SCRIPT_ACTIONS, "sagemaker:AddTags"]),
            _statement("Data", ["s3:ListBucket", "s3:GetObject", "s3:PutObject"], _bucket_resources(cfg)),
            _statement(
                "Containers",
                ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            ),
            _statement(
                "LogsAndMetrics",
                [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                    "cloudwatch:PutMetricData",
                    "cloudwatch:DescribeAlarms",
                ],
            ),
            _statement("RunJobsAsThisRole", ["iam:PassRole"], [role_arn]),
            *tracking_statements(cfg),
        ],
    }


def events_role_policy(cfg: PipelineConfig) -> dict[str, Any]:
    """What EventBridge and the Scheduler need: start the two pipelines, nothing else."""
    arn = f"arn:aws:sagemaker:{cfg.project.region}:*:pipeline/"
    pipelines = [f"{arn}{cfg.project.name}", f"{arn}{deploy_pipeline_name(cfg)}"]
    return {
        "Version": "2012-10-17",
        "Statement": [_statement("StartPipelines", ["sagemaker:StartPipelineExecution"], pipelines)],
    }


def events_trust_policy() -> dict[str, Any]:
    services = ["events.amazonaws.com", "scheduler.amazonaws.com"]
    statement = {"Effect": "Allow", "Principal": {"Service": services}, "Action": "sts:AssumeRole"}
    return {"Version": "2012-10-17", "Statement": [statement]}


def operator_policy(cfg: PipelineConfig, role_arns: list[str]) -> dict[str, Any]:
    """What the person or CI job running the dogpipe commands needs."""
    statements = [
        _statement(sid.capitalize(), list(actions), _bucket_resources(cfg) if sid == "storage" else "*")
        for sid, actions in OPERATOR_ACTIONS.items()
    ]
    statements.append(_statement("PassTheRoles", ["iam:PassRole"], sorted(set(role_arns))))
    statements += tracking_statements(cfg)
    return {"Version": "2012-10-17", "Statement": statements}


def allowed_actions(policy: dict[str, Any]) -> set[str]:
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def policies(
    cfg: PipelineConfig, definitions: list[str], role_arn: str, events_role_arn: str
) -> dict[str, Any]:
    """All three, named as ``dogpipe iam-policy`` prints them."""
    return {
        "execution": {"policy": execution_role_policy(cfg, definitions, role_arn)},
        "events": {
            "policy": events_role_policy(cfg),
            "trust": events_trust_policy(),
            # The retrain rule exists with monitor.on_drift: retrain (and capture on); the role is the
            # one upsert passes to its target, starting the build pipeline.
            "used_by": [approval_rule_name(cfg), schedule_name(cfg), retrain_rule_name(cfg)],
        },
        "operator": {"policy": operator_policy(cfg, [role_arn, events_role_arn])},
    }


def to_text(documents: dict[str, Any]) -> str:
    return json.dumps(documents, indent=2, sort_keys=True)
