"""``executions list|stop|retry`` on SageMaker: listing on the moto server; stop and retry through a
botocore Stubber, because moto lacks StopPipelineExecution and RetryPipelineExecution."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber

from pipeline.config import load_config
from pipeline.sagemaker.executions import list_sagemaker_executions, retry_execution, stop_execution
from pipeline.sagemaker.pipelines import PipelineError
from tests.moto_server import ACCOUNT, BUCKET, REGION, ROLE_ARN, aws_env, moto_endpoint  # noqa: F401

DEFINITION = '{"Version": "2020-12-01", "Parameters": [], "Steps": []}'


@pytest.fixture
def cfg(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "pipeline.yaml"
    raw = {
        "engine": "sagemaker",
        "project": {"name": "dp", "region": REGION, "bucket": BUCKET, "role_arn": ROLE_ARN},
        "data": {"s3_uri": f"s3://{BUCKET}/data/"},
    }
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.mark.usefixtures("aws_env")
def test_list_shows_both_pipelines_executions_with_the_local_fields(cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert list_sagemaker_executions(sagemaker, cfg) == []  # nothing upserted yet: an empty list
    for name in ("dp", "dp-deploy"):
        sagemaker.create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=ROLE_ARN)
    started = [
        sagemaker.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
        for name in ("dp", "dp", "dp-deploy")
    ]
    rows = list_sagemaker_executions(sagemaker, cfg)
    assert sorted(row["arn"] for row in rows) == sorted(started)
    assert {row["pipeline"] for row in rows} == {"dp", "dp-deploy"}
    for row in rows:
        assert set(row) >= {"execution", "status", "started", "failure"}
        assert row["arn"].endswith(f"/execution/{row['execution']}") and row["status"] == "Succeeded"
    from click.testing import CliRunner

    from pipeline.cli.main import cli

    config = str(tmp_path / "pipeline.yaml")
    listed = CliRunner().invoke(cli, ["executions", "list", "--config", config, "-o", "json"])
    assert listed.exit_code == 0, listed.output
    assert [row["execution"] for row in json.loads(listed.output)] == [row["execution"] for row in rows]
    table = CliRunner().invoke(cli, ["executions", "list", "--config", config]).output.splitlines()
    assert table[0].split() == ["EXECUTION", "STATUS", "STARTED", "FAILURE", "PIPELINE"] and len(table) == 4
    refused = CliRunner().invoke(cli, ["executions", "stop", rows[0]["execution"], "--config", config])
    assert refused.exit_code == 1 and "only an Executing one stops" in refused.output
    with pytest.raises(PipelineError, match="only an Executing one stops"):
        stop_execution(sagemaker, cfg, rows[0]["execution"])
    with pytest.raises(PipelineError, match="no execution 'nope'"):
        retry_execution(sagemaker, cfg, "nope")


def _summary(pipeline: str, execution: str, status: str) -> dict:
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{pipeline}/execution/{execution}"
    return {
        "PipelineExecutionArn": arn,
        "StartTime": datetime(2026, 12, 2, tzinfo=timezone.utc),
        "PipelineExecutionStatus": status,
    }


def test_stop_and_retry_send_the_requests_sagemaker_expects() -> None:
    """Stubber: moto implements neither StopPipelineExecution nor RetryPipelineExecution."""
    from pipeline.config import parse_config

    cfg = parse_config({"project": {"name": "dp", "bucket": BUCKET}, "data": {"s3_uri": f"s3://{BUCKET}/d/"}})
    sagemaker = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    running, failed = _summary("dp", "aaaa1111", "Executing"), _summary("dp-deploy", "bbbb2222", "Failed")
    with Stubber(sagemaker) as stub:
        stub.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [running]})
        stub.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [failed]})
        stub.add_response(
            "stop_pipeline_execution",
            {"PipelineExecutionArn": running["PipelineExecutionArn"]},
            {"PipelineExecutionArn": running["PipelineExecutionArn"], "ClientRequestToken": ANY},
        )
        stub.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [running]})
        stub.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": [failed]})
        stub.add_response(
            "retry_pipeline_execution",
            {"PipelineExecutionArn": failed["PipelineExecutionArn"]},
            {"PipelineExecutionArn": failed["PipelineExecutionArn"], "ClientRequestToken": ANY},
        )
        assert stop_execution(sagemaker, cfg, "aaaa1111")["pipeline"] == "dp"
        assert retry_execution(sagemaker, cfg, failed["PipelineExecutionArn"])["pipeline"] == "dp-deploy"
        stub.assert_no_pending_responses()


def test_a_quota_refusal_says_what_to_do() -> None:
    from pipeline.sagemaker.pipelines import explain_failure

    reason = (
        "ClientError: ResourceLimitExceeded: The account-level service limit 'ml.g4dn.xlarge for training "
        "job usage' is 0 Instances"
    )
    assert "Service Quotas" in explain_failure(reason) and "ml.m5.xlarge" in explain_failure(reason)
    assert explain_failure("AlgorithmError: exit 1") == "AlgorithmError: exit 1"
    assert explain_failure(None) is None
