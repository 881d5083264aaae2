"""``dogpipe endpoints list|delete`` on SageMaker, against the moto server."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from tests.moto_server import ACCOUNT, BUCKET, REGION, ROLE_ARN, aws_env, moto_endpoint  # noqa: F401


@pytest.mark.usefixtures("aws_env")
def test_list_follows_endpoint_to_package_version_and_delete_needs_yes(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    raw = {
        "engine": "sagemaker",
        "project": {"name": "dp", "region": REGION, "bucket": BUCKET, "role_arn": ROLE_ARN},
        "data": {"s3_uri": f"s3://{BUCKET}/data/"},
    }
    config.write_text(yaml.safe_dump(raw))
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    package = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/dogs/7"
    sagemaker.create_model(
        ModelName="m7", ExecutionRoleArn=ROLE_ARN, Containers=[{"ModelPackageName": package}]
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c7",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "m7",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="dogs-prod", EndpointConfigName="c7")
    runner = CliRunner()

    listed = runner.invoke(cli, ["endpoints", "list", "--config", str(config), "-o", "json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["name"] == "dogs-prod" and row["model_version"] == "dogs/7" and row["pid"] is None
    assert row["url"] == f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/dogs-prod/invocations"
    described = sagemaker.describe_endpoint(EndpointName="dogs-prod")
    assert row["status"] == described["EndpointStatus"] and row["instance_type"] == "ml.m5.large"
    assert row["variants"].startswith("AllTraffic:") and row["created"]
    table = runner.invoke(cli, ["endpoints", "list", "--config", str(config)]).output
    header, line = table.splitlines()
    assert header.split() == ["NAME", "STATUS", "MODEL_VERSION", "INSTANCE_TYPE", "VARIANTS", "CREATED"]
    assert "PID" not in header and "ALIVE" not in header and described["EndpointStatus"] in line

    unconfirmed = runner.invoke(cli, ["endpoints", "delete", "dogs-prod", "--config", str(config)])
    assert unconfirmed.exit_code == 1 and "--yes" in unconfirmed.output
    assert sagemaker.list_endpoints()["Endpoints"]
    unknown = runner.invoke(cli, ["endpoints", "delete", "nope", "--yes", "--config", str(config)])
    assert unknown.exit_code == 1 and "no SageMaker endpoint named 'nope'" in unknown.output
    deleted = runner.invoke(cli, ["endpoints", "delete", "dogs-prod", "--yes", "--config", str(config)])
    assert deleted.exit_code == 0, deleted.output
    assert sagemaker.list_endpoints()["Endpoints"] == []
    stop = runner.invoke(cli, ["endpoints", "stop", "dogs-prod", "--config", str(config)])
    assert stop.exit_code == 1 and "endpoints delete" in stop.output
