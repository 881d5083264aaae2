"""Every AWS call the code makes is allowed by the policy ``dogpipe iam-policy`` prints for its role.

The calls are recorded (botocore's ``_make_api_call``, only those made from ``pipeline/`` or
``training_code/``, not the tests' own setup) while the operator's round trip runs on a moto server
(upsert with rule, schedule and alarms, start, status, listings, approve, reject, deploy) and while the
deploy pipeline's jobs run their scripts (ResolvePackage, Deploy).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
import yaml

from pipeline.config import load_config
from pipeline.sagemaker.iam_policy import (
    allowed_actions,
    events_trust_policy,
    execution_role_policy,
    iam_action,
    operator_policy,
)
from tests import test_aws_cli
from tests.moto_server import ROLE_ARN, aws_env, moto_endpoint  # noqa: F401
from tests.test_aws_cli import config_file  # noqa: F401
from tests.test_deploy_job import GROUP, SPEC, _argv

REPO = Path(__file__).resolve().parents[1]
OWN_CODE = (str(REPO / "pipeline") + "/", str(REPO / "training_code") + "/")


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    made: set[str] = set()
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        if any(frame.filename.startswith(OWN_CODE) for frame in traceback.extract_stack()):
            made.add(iam_action(self.meta.service_model.service_name, operation))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    yield made


@pytest.mark.slow
@pytest.mark.usefixtures("aws_env")
def test_the_operators_round_trip_needs_nothing_the_operator_policy_lacks(
    calls: set[str],
    config_file: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from pipeline.cli.main import cli

    test_aws_cli.test_round_trip_upsert_start_status_approve_deploy(config_file, tmp_path)
    raw = yaml.safe_load(config_file.read_text())
    raw["deploy"]["on_approval"] = "prod"
    raw["schedule"] = "rate(7 days)"
    config_file.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    for command in (
        ["upsert", "--role-arn", ROLE_ARN],
        ["endpoints", "list"],
        ["executions", "list"],
        ["diff", "--role-arn", ROLE_ARN],
    ):
        result = runner.invoke(cli, [*command, "--config", str(config_file)])
        assert result.exit_code == 0, (command, result.output)
    policy = operator_policy(load_config(config_file), [ROLE_ARN])
    assert (
        "events:PutRule" in calls
        and "scheduler:GetSchedule" in calls
        and "cloudwatch:PutMetricAlarm" in calls
    )
    assert calls - allowed_actions(policy) == set()


@pytest.mark.usefixtures("aws_env")
def test_the_deploy_jobs_need_nothing_the_execution_role_policy_lacks(calls: set[str]) -> None:
    from pipeline.config import DEFAULT_CONFIG
    from pipeline.definition.deploy_pipeline import build_deploy_definition
    from pipeline.definition.document import build_definition
    from training_code import deploy_endpoint, resolve_model_package

    client = boto3.client("sagemaker", region_name="us-east-1")
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = client.create_model_package(
        ModelPackageGroupName=GROUP, InferenceSpecification=SPEC, ModelApprovalStatus="Approved"
    )["ModelPackageArn"]
    client.create_model(ModelName="m", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": "i"})
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "m",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    client.create_endpoint_config(EndpointConfigName="config-2", ProductionVariants=[variant])
    resolve_model_package.describe_sagemaker("latest", GROUP)
    assert deploy_endpoint.main(_argv(arn)) == 0

    cfg = load_config(DEFAULT_CONFIG)
    policy = execution_role_policy(cfg, [build_definition(cfg), build_deploy_definition(cfg)], ROLE_ARN)
    actions = allowed_actions(policy)
    assert calls and calls - actions == set()
    # What the definitions run: every step type's create call, and the guardrails' alarm reads.
    assert {
        "sagemaker:CreateTrainingJob",
        "sagemaker:CreateHyperParameterTuningJob",
        "cloudwatch:DescribeAlarms",
    } <= actions
    passed = [s for s in policy["Statement"] if s["Action"] == ["iam:PassRole"]]
    assert passed and passed[0]["Resource"] == [ROLE_ARN]


def test_the_printed_events_role_trusts_what_upsert_checks_for(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli.main import cli
    from pipeline.sagemaker.aws import trusted_services

    result = CliRunner().invoke(cli, ["iam-policy", "--config", "config/pipeline.yaml", "--role", "events"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)["events"]
    assert printed["trust"] == events_trust_policy()
    assert trusted_services({"AssumeRolePolicyDocument": printed["trust"]}) == {
        "events.amazonaws.com",
        "scheduler.amazonaws.com",
    }
    assert printed["policy"]["Statement"][0]["Action"] == ["sagemaker:StartPipelineExecution"]
    # Everything upsert hands this role to: the approval rule, the schedule and the monitor's retrain rule.
    assert printed["used_by"] == [
        "dogpipe-deploy-on-approval",
        "dogpipe-scheduled-build",
        "dogpipe-retrain-on-drift",
    ]
