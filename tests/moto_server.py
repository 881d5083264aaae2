"""A real moto server on 127.0.0.1 for the AWS-facing tests, and the fixtures that point boto3 at it.

The server runs in a thread of the test session (one per session, a free port); each test starts from
a reset server, with fake credentials and ``AWS_ENDPOINT_URL`` set only for that test, and the user's
own AWS config files hidden so nothing can reach a real account. Use it from a test module with
``from tests.moto_server import aws_env, moto_endpoint``.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "dogpipe-test-bucket"
ROLE_NAME = "dogpipe-test-role"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
#: A test role that SageMaker, EventBridge and the Scheduler may assume (what `upsert` checks).
TRUST_ALL = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {
                "Service": ["sagemaker.amazonaws.com", "events.amazonaws.com", "scheduler.amazonaws.com"]
            },
            "Action": "sts:AssumeRole",
        }
    ],
}
_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "DOGPIPE_REGION",
    "DOGPIPE_BUCKET",
    "DOGPIPE_ROLE_ARN",
)


@dataclass(frozen=True)
class AwsEnv:
    """What a test needs to know about the fake account it runs against."""

    endpoint: str
    region: str = REGION
    bucket: str = BUCKET
    role_arn: str = ROLE_ARN


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server that lives for the whole test session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def hide_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, profile or region from the machine running the tests, and no metadata probing."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AwsEnv:
    """A clean fake account: reset server, fake credentials, the test bucket and execution role."""
    import boto3

    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    hide_aws_config(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # moto answers 500 for what it lacks: fail fast
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    boto3.client("iam", region_name=REGION).create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_ALL)
    )
    return AwsEnv(endpoint=moto_endpoint)
