"""``training_code/deploy_endpoint.py``, the deploy pipeline's Deploy job, against SageMaker's API.

The registry half (which package the stage should serve) and the first deploy run on a moto server.
moto has no UpdateEndpoint, so the blue/green update and the rollback are checked with botocore's
Stubber, which also checks every request against botocore's shapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.moto_server import AwsEnv, aws_env, moto_endpoint  # noqa: F401
from training_code import deploy_endpoint
from training_code.deploy_endpoint import DeployRefused, parse_args, switch_endpoint, wait_in_service

GROUP = "dogpipe-dog-breeds"
SPEC = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1", "ModelDataUrl": "s3://b/m"}],
    "SupportedContentTypes": ["image/jpeg"],
    "SupportedResponseMIMETypes": ["application/json"],
}


@pytest.fixture()
def sagemaker(aws_env: AwsEnv) -> Iterator[Any]:  # noqa: F811
    client = boto3.client("sagemaker", region_name=aws_env.region)
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    client.create_model(
        ModelName="m",
        ExecutionRoleArn=aws_env.role_arn,
        PrimaryContainer={"Image": SPEC["Containers"][0]["Image"]},
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "m",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    client.create_endpoint_config(EndpointConfigName="config-2", ProductionVariants=[variant])
    yield client


def _package(client: Any, approved: bool = True) -> str:
    arn = client.create_model_package(
        ModelPackageGroupName=GROUP, InferenceSpecification=SPEC, ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageArn"]
    if approved:
        _approve(client, arn)
    return arn


def _approve(client: Any, arn: str, status: str = "Approved") -> None:
    time.sleep(0.01)  # LastModifiedTime has millisecond resolution
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)


def _argv(arn: str) -> list[str]:
    return [
        "--endpoint-name", "dogpipe-prod", "--endpoint-config-name", "config-2", "--model-package-arn", arn,
        "--group", GROUP, "--stage", "prod", "--wait-minutes", "1",
    ]  # fmt: skip


def test_the_first_deploy_creates_the_endpoint_of_the_newest_approval(sagemaker: Any) -> None:
    _package(sagemaker)
    two = _package(sagemaker)
    assert deploy_endpoint.main(_argv(two)) == 0
    assert sagemaker.describe_endpoint(EndpointName="dogpipe-prod")["EndpointConfigName"] == "config-2"


def test_a_deploy_overtaken_by_a_later_approval_or_a_rejection_changes_nothing(
    sagemaker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _package(sagemaker)
    two = _package(sagemaker)
    _approve(sagemaker, one)  # approved again after 2: prod should serve 1
    assert deploy_endpoint.main(_argv(two)) == 1
    assert "version 1 was approved for prod after this deploy of version 2 started" in capsys.readouterr().err
    _approve(sagemaker, two)
    _approve(sagemaker, two, "Rejected")
    assert deploy_endpoint.main(_argv(two)) == 1
    assert "version 2 is Rejected now" in capsys.readouterr().err
    assert sagemaker.list_endpoints()["Endpoints"] == []


def _described(config: str, status: str = "InService") -> dict[str, Any]:
    return {
        "EndpointName": "dogpipe-prod",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dogpipe-prod",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }


@pytest.mark.parametrize("settled_on", ["config-2", "config-1"], ids=["switched", "rolled-back"])
def test_an_existing_endpoint_is_updated_blue_green_and_a_rollback_fails_the_job(settled_on: str) -> None:
    # Stubber: moto has no UpdateEndpoint.
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    blue_green = '{"TrafficRoutingConfiguration":{"Type":"ALL_AT_ONCE","WaitIntervalInSeconds":300}}'
    args = parse_args(
        [
            *_argv("arn"),
            "--blue-green",
            blue_green,
            "--rollback-alarms",
            "dogpipe-prod-5xx-errors,dogpipe-prod-model-latency",
        ]
    )
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", _described("config-1"), {"EndpointName": "dogpipe-prod"})
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": _described("x")["EndpointArn"]},
            {
                "EndpointName": "dogpipe-prod",
                "EndpointConfigName": "config-2",
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}
                    },
                    "AutoRollbackConfiguration": {
                        "Alarms": [
                            {"AlarmName": "dogpipe-prod-5xx-errors"},
                            {"AlarmName": "dogpipe-prod-model-latency"},
                        ]
                    },
                },
            },
        )
        stub.add_response(
            "describe_endpoint", _described("config-1", "Updating"), {"EndpointName": "dogpipe-prod"}
        )
        stub.add_response("describe_endpoint", _described(settled_on), {"EndpointName": "dogpipe-prod"})
        assert switch_endpoint(client, args) == "updated"
        if settled_on == "config-2":
            assert wait_in_service(client, args, sleep=lambda _: None)["EndpointConfigName"] == "config-2"
        else:
            with pytest.raises(DeployRefused, match="rolled back to config-1"):
                wait_in_service(client, args, sleep=lambda _: None)
        stub.assert_no_pending_responses()


def test_the_job_writes_why_it_failed_where_sagemaker_reads_exit_messages(
    sagemaker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = tmp_path / "output" / "message"
    message.parent.mkdir()
    monkeypatch.setattr(deploy_endpoint, "EXIT_MESSAGE", message)
    rejected = _package(sagemaker, approved=False)
    assert deploy_endpoint.main(_argv(rejected)) == 1
    assert "is PendingManualApproval now" in message.read_text()
