"""``dogpipe logs``: a local execution's job logs in DAG order with their source, one step's, and
``--follow`` until the execution ends; on SageMaker the jobs' CloudWatch streams (moto's Logs)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.local.executions import ExecutionStore
from pipeline.sagemaker.logs import PROCESSING_LOGS, TRAINING_LOGS, CloudWatchTail, job_logs
from pipeline.sagemaker.pipelines import StepState
from tests.moto_server import REGION, aws_env, moto_endpoint  # noqa: F401

from .local.test_engine import local_config

DEFINITION = {
    "Version": "2020-12-01",
    "Steps": [  # declared out of order: the logs follow the DAG
        {"Name": "Train", "Type": "Training", "DependsOn": ["Preprocess"], "Arguments": {}},
        {"Name": "Preprocess", "Type": "Processing", "Arguments": {}},
        {"Name": "Check", "Type": "Condition", "DependsOn": ["Train"], "Arguments": {}},
    ],
}


def _log(execution, step: str, attempt: int, name: str, text: str) -> Path:  # type: ignore[no-untyped-def]
    path = execution.step_dir(step) / f"attempt-{attempt}" / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(text)
    return path


def test_local_logs_in_dag_order_with_their_source_and_one_step(tmp_path: Path) -> None:
    root = tmp_path / "root"
    execution = ExecutionStore(root).create("dogpipe-local", DEFINITION, {})
    execution.update(status="Failed")
    _log(execution, "Train", 1, "Train-algo-1", "epoch 1 failed\n")
    _log(execution, "Train", 2, "Train-algo-1", "epoch 1 loss 0.9\n")
    _log(execution, "Train", 2, "Train-algo-2", "host 2 up\n")
    _log(execution, "Preprocess", 1, "Preprocess", "mean computed\nstd computed\n")
    config = ["--config", str(local_config(tmp_path, root))]
    runner = CliRunner()

    everything = runner.invoke(cli, ["logs", execution.id, *config])
    assert everything.exit_code == 0, everything.output
    assert everything.output.splitlines() == [
        "[Preprocess/Preprocess] mean computed",
        "[Preprocess/Preprocess] std computed",
        "[Train#1/Train-algo-1] epoch 1 failed",
        "[Train#2/Train-algo-1] epoch 1 loss 0.9",
        "[Train#2/Train-algo-2] host 2 up",
    ]
    one = runner.invoke(cli, ["logs", execution.id, "Preprocess", *config])
    assert one.output.splitlines() == [
        "[Preprocess/Preprocess] mean computed",
        "[Preprocess/Preprocess] std computed",
    ]
    none = runner.invoke(cli, ["logs", execution.id, "Check", *config])
    assert none.exit_code == 0 and none.output.strip() == "no log lines yet (--follow waits for them)"
    unknown = runner.invoke(cli, ["logs", execution.id, "Tune", *config])
    assert unknown.exit_code == 1 and len(unknown.output.strip().splitlines()) == 1
    assert "has no step 'Tune' (steps: Preprocess, Train, Check)" in unknown.output
    missing = runner.invoke(cli, ["logs", "20260101-000000-abcdef", *config])
    assert missing.exit_code == 1 and f"(latest: {execution.id})" in missing.output


def test_follow_prints_lines_as_they_arrive_and_stops_when_the_execution_ends(tmp_path: Path) -> None:
    """The execution is Executing under a live engine (this process); a writer thread appends whole
    and partial lines, starts a second step, then ends the execution: --follow prints all, then exits."""
    root = tmp_path / "root"
    execution = ExecutionStore(root).create("dogpipe-local", DEFINITION, {})
    _log(execution, "Preprocess", 1, "Preprocess", "first\n")

    def writer() -> None:
        time.sleep(0.5)
        _log(execution, "Preprocess", 1, "Preprocess", "second\nthi")
        time.sleep(0.5)
        _log(execution, "Preprocess", 1, "Preprocess", "rd\n")
        _log(execution, "Train", 1, "Train-algo-1", "training\n")
        time.sleep(0.5)
        _log(execution, "Train", 1, "Train-algo-1", "last words")  # no newline: printed at the end
        execution.update(status="Succeeded")

    thread = threading.Thread(target=writer)
    thread.start()
    config = ["--config", str(local_config(tmp_path, root))]
    followed = CliRunner().invoke(cli, ["logs", execution.id, "--follow", "--poll", "0.1", *config])
    thread.join()
    assert followed.exit_code == 0, followed.output
    assert followed.output.splitlines() == [
        "[Preprocess/Preprocess] first",
        "[Preprocess/Preprocess] second",
        "[Preprocess/Preprocess] third",
        "[Train/Train-algo-1] training",
        "[Train/Train-algo-1] last words",
    ]


@pytest.mark.usefixtures("aws_env")
def test_sagemaker_logs_are_the_jobs_cloudwatch_streams_read_once_each() -> None:
    """Steps as ListPipelineExecutionSteps describes them (moto lacks that call, so they are built
    here); the streams are moto's CloudWatch Logs, with another job's stream in the same group."""
    logs = boto3.client("logs", region_name=REGION)
    streams = {
        TRAINING_LOGS: ["pipelines-abc-Train-1/algo-1-1700000000", "other-job/algo-1-1700000000"],
        PROCESSING_LOGS: ["pipelines-abc-Preprocess-1/algo-1-1700000000"],
    }
    for group, names in streams.items():
        logs.create_log_group(logGroupName=group)
        for name in names:
            logs.create_log_stream(logGroupName=group, logStreamName=name)
    now = int(time.time() * 1000)

    def put(group: str, stream: str, *messages: str) -> None:
        events = [{"timestamp": now + i, "message": message} for i, message in enumerate(messages)]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    put(PROCESSING_LOGS, streams[PROCESSING_LOGS][0], "pixel stats done")
    put(TRAINING_LOGS, streams[TRAINING_LOGS][0], "epoch 1", "epoch 2")
    put(TRAINING_LOGS, streams[TRAINING_LOGS][1], "not ours")
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:"
    steps = [
        StepState(
            "Preprocess",
            "Succeeded",
            metadata={"ProcessingJob": {"Arn": arn + "processing-job/pipelines-abc-Preprocess-1"}},
        ),
        StepState(
            "Train",
            "Executing",
            metadata={"TrainingJob": {"Arn": arn + "training-job/pipelines-abc-Train-1"}},
        ),
        StepState("CheckAccuracy", "Succeeded", metadata={"Condition": {"Outcome": "True"}}),
    ]
    jobs = job_logs(None, steps)
    assert [(job.step, job.group) for job in jobs] == [
        ("Preprocess", PROCESSING_LOGS),
        ("Train", TRAINING_LOGS),
    ]
    tail = CloudWatchTail(logs)
    assert list(tail.new_lines(jobs)) == [
        f"[Preprocess/{streams[PROCESSING_LOGS][0]}] pixel stats done",
        f"[Train/{streams[TRAINING_LOGS][0]}] epoch 1",
        f"[Train/{streams[TRAINING_LOGS][0]}] epoch 2",
    ]
    assert list(tail.new_lines(jobs)) == []  # read once
    put(TRAINING_LOGS, streams[TRAINING_LOGS][0], "epoch 3")
    assert list(tail.new_lines(job_logs(None, steps, "Train"))) == [
        f"[Train/{streams[TRAINING_LOGS][0]}] epoch 3"
    ]
