"""``dogpipe start --wait`` prints each step's status change as it is seen."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import Stubber

from pipeline.sagemaker.pipelines import PipelineError
from pipeline.sagemaker.watch import watch_execution

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc"
T0 = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)


def step(name: str, status: str, reason: str | None = None) -> dict:
    item = {"StepName": name, "StepStatus": status, "StartTime": T0}
    if reason:
        item["FailureReason"] = reason
    return item


def stubbed_client(polls: list[tuple[str, list[dict]]]) -> tuple[object, Stubber]:
    """A SageMaker client answering each poll from ``polls``. botocore Stubber, because moto lacks
    ListPipelineExecutionSteps and its executions finish the moment they start (no status changes)."""
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stubber = Stubber(client)
    for status, steps in polls:
        stubber.add_response(
            "describe_pipeline_execution", {"PipelineExecutionStatus": status}, {"PipelineExecutionArn": ARN}
        )
        stubber.add_response(
            "list_pipeline_execution_steps",
            {"PipelineExecutionSteps": steps},
            {"PipelineExecutionArn": ARN, "SortOrder": "Ascending"},
        )
    stubber.activate()
    return client, stubber


def changes(lines: list[str]) -> list[tuple[str, ...]]:
    """The printed lines without their time stamps."""
    return [tuple(line.split()[1:]) for line in lines]


def test_each_step_change_is_printed_once_as_it_happens() -> None:
    client, stubber = stubbed_client(
        [
            ("Executing", [step("Preprocess", "Executing")]),
            ("Executing", [step("Preprocess", "Executing")]),
            ("Executing", [step("Preprocess", "Succeeded"), step("Train", "Executing")]),
            ("Failed", [step("Preprocess", "Succeeded"), step("Train", "Failed", "AlgorithmError: OOM")]),
        ]
    )
    lines: list[str] = []
    sleeps: list[float] = []
    status = watch_execution(client, ARN, lines.append, timeout_s=3600, poll_s=5, sleep=sleeps.append)
    assert status == "Failed" and sleeps == [5, 5, 5]
    assert changes(lines) == [
        ("Preprocess", "Executing"),
        ("execution", "Executing"),
        ("Preprocess", "Succeeded"),
        ("Train", "Executing"),
        ("Train", "Failed", "(AlgorithmError:", "OOM)"),
        ("execution", "Failed"),
    ]
    stubber.assert_no_pending_responses()


def test_without_step_listing_the_execution_status_is_followed() -> None:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stubber = Stubber(client)
    for status in ("Executing", "Succeeded"):
        stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": status})
        if status == "Executing":
            stubber.add_client_error("list_pipeline_execution_steps", "UnknownOperationException")
    stubber.activate()
    lines: list[str] = []
    assert (
        watch_execution(client, ARN, lines.append, timeout_s=60, poll_s=1, sleep=lambda _: None)
        == "Succeeded"
    )
    assert "ListPipelineExecutionSteps failed (UnknownOperationException)" in lines[0]
    assert changes(lines)[1:] == [("execution", "Executing"), ("execution", "Succeeded")]


def test_wait_gives_up_after_its_timeout_naming_the_execution() -> None:
    client, _ = stubbed_client([("Executing", [])])
    with pytest.raises(PipelineError, match=r"still Executing after 0 s .*dogpipe status arn:aws"):
        watch_execution(client, ARN, lambda _: None, timeout_s=0, poll_s=1, sleep=lambda _: None)
