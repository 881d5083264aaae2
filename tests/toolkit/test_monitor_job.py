"""The monitoring job as a SageMaker monitoring schedule runs it, against a moto server.

The job is what ``dogpipe upsert`` declares (``pipeline.sagemaker.monitoring``): the framework image's
``python3 -c <bootstrap> s3://.../sourcedir.tar.gz``, with ``/opt/ml`` remapped to a job folder as the
local engine maps it. The platform's part is played here as Model Monitor's container contract says:
the window's capture files at the EndpointInput's ``LocalPath``, the constraints at
``/opt/ml/processing/baseline/constraints/``, the contract's variables (``dataset_source``,
``output_path``, ``start_time``/``end_time``, the endpoint and schedule names) beside the job's own. The
code comes from S3 and the baseline and model from the version the endpoint serves (moto holds the
endpoint, its config, model, model package and the files).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import numpy as np
import pytest
import yaml

from pipeline.config import load_config
from pipeline.definition.code import package_code
from pipeline.local.container import Container
from pipeline.sagemaker.monitoring import monitoring_schedule_request
from pipeline.sample_data import shifted_jpeg
from pipeline.serving.capture_format import CaptureSettings, Exchange, capture_record
from tests.moto_server import BUCKET, REGION, ROLE_ARN, aws_env, moto_endpoint  # noqa: F401
from tests.serving_helpers import write_model_dir
from training_code import evaluate, models

pytestmark = pytest.mark.slow
ENDPOINT = "dogs-prod"


def _config(tmp_path: Path):  # type: ignore[no-untyped-def]
    raw = {
        "engine": "sagemaker",
        "project": {
            "name": "dogpipe-test",
            "region": REGION,
            "bucket": BUCKET,
            "prefix": "dp",
            "role_arn": ROLE_ARN,
        },
        "data": {"s3_uri": f"s3://{BUCKET}/data/"},
        "deploy": {"production_endpoint": ENDPOINT, "data_capture": {"enabled": True}},
        "monitor": {"stage": "prod", "min_records": 20, "checks": {"embedding": {"permutations": 50}}},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def _serve_on_moto(tmp_path: Path, sample_dataset: Path) -> None:
    """What the pipelines leave on AWS: a registered version with its baseline, served on ENDPOINT."""
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    model_dir = write_model_dir(tmp_path / "model")
    network, info = models.load_trained_model(model_dir)
    evaluate.write_baseline(network, info, sample_dataset / "test", tmp_path / "evaluation")
    archive = tmp_path / "model.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(model_dir), "."], check=True)
    s3.upload_file(str(archive), BUCKET, "dp/train/model.tar.gz")
    for name in ("baseline.json", "baseline_embeddings.npy"):
        s3.upload_file(str(tmp_path / "evaluation" / name), BUCKET, f"dp/evaluation/{name}")
    sagemaker.create_model_package_group(ModelPackageGroupName="dogs")
    package = sagemaker.create_model_package(
        ModelPackageGroupName="dogs",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {"Image": "pytorch-inference:2.5", "ModelDataUrl": f"s3://{BUCKET}/dp/train/model.tar.gz"}
            ],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={"drift_baseline": f"s3://{BUCKET}/dp/evaluation/baseline.json"},
    )["ModelPackageArn"]
    sagemaker.create_model(
        ModelName="dogs-v1", ExecutionRoleArn=ROLE_ARN, Containers=[{"ModelPackageName": package}]
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="dogs-v1-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "dogs-v1",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="dogs-v1-config")


def _captured(folder: Path, shift: str, when: datetime, count: int = 30) -> None:
    settings = CaptureSettings(folder=folder, endpoint=ENDPOINT)
    rng = np.random.default_rng(7)
    hour = folder / ENDPOINT / "AllTraffic" / when.strftime("%Y/%m/%d/%H")
    hour.mkdir(parents=True, exist_ok=True)
    reply = b'{"predictions": []}'
    exchanges = [
        Exchange(
            when.timestamp() + i,
            shifted_jpeg(i % 4, shift, rng, (48, 96)),
            "image/jpeg",
            reply,
            "application/json",
        )
        for i in range(count)
    ]
    lines = [json.dumps(capture_record(settings, exchange)) for exchange in exchanges]
    (hour / f"00-00-000-{shift}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("shift", "drifted"), [("none", False), ("dark", True)])
@pytest.mark.usefixtures("aws_env")
def test_the_scheduled_job_judges_the_window_with_the_served_versions_baseline(
    tmp_path: Path, sample_dataset: Path, shift: str, drifted: bool
) -> None:
    cfg = _config(tmp_path)
    code = package_code()
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=code.sourcedir_uri(cfg).split(f"{BUCKET}/", 1)[1], Body=code.data
    )
    _serve_on_moto(tmp_path, sample_dataset)
    job = monitoring_schedule_request(cfg, code, ROLE_ARN)["MonitoringScheduleConfig"][
        "MonitoringJobDefinition"
    ]
    container = Container(tmp_path / "job")
    local_path = job["MonitoringInputs"][0]["EndpointInput"]["LocalPath"]
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    _captured(container.path(local_path), shift, start + timedelta(minutes=1))
    constraints = container.path("/opt/ml/processing/baseline/constraints/constraints.json")
    constraints.parent.mkdir(parents=True)
    constraints.write_text(json.dumps(cfg.monitor.constraints()))
    output = job["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["LocalPath"]
    capture_format = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
    contract = {
        "dataset_format": json.dumps(capture_format),
        "dataset_source": local_path,
        "output_path": output,
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "baseline_constraints": "/opt/ml/processing/baseline/constraints/constraints.json",
        "sagemaker_endpoint_name": ENDPOINT,
        "sagemaker_monitoring_schedule_name": "dogs-prod-drift",
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],  # the moto server (aws_env)
    }  # fmt: skip
    app = job["MonitoringAppSpecification"]
    result = subprocess.run(
        container.command([*app["ContainerEntrypoint"], *app["ContainerArguments"]]),
        env=container.environment({**job["Environment"], **contract}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    reports = container.path(output)
    statistics = json.loads((reports / "statistics.json").read_text())
    assert statistics["status"] == "judged" and statistics["images"] == 30
    violations = json.loads((reports / "constraint_violations.json").read_text())["violations"]
    assert bool(violations) == drifted, violations
    if drifted:
        assert {"input.brightness_r", "input.brightness_g"} <= {v["feature_name"] for v in violations}
    metrics = container.path("/opt/ml/output/metrics/cloudwatch/dogpipe-drift.jsonl").read_text().splitlines()
    first = json.loads(metrics[0])
    assert first["MetricName"] == "drift_violations" and first["Value"] == len(violations)
    assert {"Name": "MonitoringSchedule", "Value": "dogs-prod-drift"} in first["Dimensions"]
