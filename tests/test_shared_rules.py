"""The small rules declared once and shared (issue 19): atomic files, process identity and stopping,
AWS "not found", the local ARNs. Real files, real processes, a real moto server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pipeline.files import aside, atomic_path, create_exclusively, is_aside, write_atomic, write_json_atomic
from pipeline.local.endpoint_records import server_alive
from pipeline.local.executions import engine_alive
from pipeline.processes import ProcessIdentity, running_process, stop_group
from pipeline.registry import LocalRegistry, RegistryError, read_s3_json
from pipeline.sagemaker.aws import is_not_found
from tests.moto_server import AwsEnv, aws_env, moto_endpoint  # noqa: F401


def test_an_atomic_write_publishes_whole_and_a_failed_one_leaves_the_old_file_and_no_temp(
    tmp_path: Path,
) -> None:
    target = tmp_path / "deep" / "record.json"
    write_json_atomic(target, {"b": 1, "a": [1]})
    assert target.read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half of a new rec")
        raise RuntimeError("the writer failed midway")
    assert target.read_text().startswith('{\n  "a"') and os.listdir(target.parent) == ["record.json"]
    write_atomic(target, b"bytes")
    assert target.read_bytes() == b"bytes"


def test_concurrent_writers_never_share_a_temp_file_and_exactly_one_creates_a_name(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    names = {aside(target).name for _ in range(50)}
    names |= {name for name in _in_threads(lambda: aside(target).name, 8)}
    assert len(names) == 58 and all(is_aside(name) for name in names) and not is_aside("x.json")
    winners = _in_threads(lambda: create_exclusively(target, threading.current_thread().name), 8)
    assert winners.count(True) == 1 and target.read_text().startswith("Thread")
    assert os.listdir(tmp_path) == ["x.json"]


def _in_threads(work: Any, count: int) -> list[Any]:
    results: list[Any] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        results.append(work())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_one_identity_rule_for_engines_and_servers_a_missing_start_time_names_no_process() -> None:
    me = ProcessIdentity.current()
    assert running_process(me.pid, me.started) is not None
    assert running_process(me.pid, me.started - 1) is None  # a reused pid
    assert running_process(me.pid, None) is None
    for started, expected in ((me.started, True), (me.started - 1, False), (None, False)):
        assert engine_alive({"pid": me.pid, "pid_started": started}) is expected
        assert server_alive({"pid": me.pid, "create_time": started}) is expected


def test_an_exited_unreaped_child_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = ProcessIdentity.of(child.pid)
    assert identity is not None
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert identity.process() is None
    child.wait()


def test_stopping_a_group_kills_a_leader_that_ignores_sigterm_and_its_children() -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert leader.stdout is not None
        child = psutil.Process(int(leader.stdout.readline()))
        stop_group(psutil.Process(leader.pid), grace_s=0.5)  # reaps our child: Popen cannot see how
        assert not psutil.pid_exists(leader.pid)  # SIGTERM was ignored, so the SIGKILL ended it
        child.wait(timeout=5)  # and the rest of its group
    finally:
        leader.kill()


def _client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


def test_not_found_is_said_by_codes_and_by_sagemakers_validation_message_only() -> None:
    for code in ("404", "NoSuchKey", "NoSuchBucket", "ResourceNotFound", "ResourceNotFoundException"):
        assert is_not_found(_client_error(code))
    assert is_not_found(_client_error("ValidationException", "Could not find endpoint 'dogpipe-prod'."))
    assert not is_not_found(_client_error("ValidationException", "1 validation error detected: Value"))
    assert not is_not_found(_client_error("AccessDenied", "not found in the policy"))
    assert not is_not_found(ValueError("Could not find"))


def test_a_missing_metrics_file_reads_as_none_and_access_denied_is_an_error(aws_env: AwsEnv) -> None:  # noqa: F811
    s3 = boto3.client("s3", region_name=aws_env.region)
    s3.create_bucket(Bucket=aws_env.bucket)
    s3.put_object(Bucket=aws_env.bucket, Key="metrics.json", Body=b'{"accuracy": 0.9}')
    assert read_s3_json(s3, f"s3://{aws_env.bucket}/metrics.json") == {"accuracy": 0.9}
    assert read_s3_json(s3, f"s3://{aws_env.bucket}/missing.json") is None
    # Stubber: moto's S3 does not enforce access policies, so it cannot answer AccessDenied.
    with Stubber(s3) as stub:
        stub.add_client_error(
            "get_object", service_error_code="AccessDenied", service_message="Access Denied"
        )
        with pytest.raises(RegistryError, match=r"cannot read s3://.*/metrics.json: .*Denied"):
            read_s3_json(s3, f"s3://{aws_env.bucket}/metrics.json")


def test_local_arns_have_one_account_and_region(tmp_path: Path) -> None:
    from pipeline.local.context import arn

    package = LocalRegistry(tmp_path).register("dogs", "s3://b/m.tar.gz", "image")
    assert package.arn == "arn:aws:sagemaker:local:000000000000:model-package/dogs/1"
    assert arn("pipeline", "Dogpipe") == "arn:aws:sagemaker:local:000000000000:pipeline/dogpipe"
