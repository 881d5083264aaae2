"""Issue 22 on a moto server: the Compare job finds and fetches production through the SageMaker and
S3 APIs (with nothing the execution role's policy lacks), and the Register step's request, as the
definition builds it, carries the comparison in fields botocore accepts and ``models show`` reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.definition.document import build_definition
from pipeline.definition.reader import steps_of
from pipeline.local.expressions import Scope, resolve
from pipeline.sagemaker.iam_policy import allowed_actions, execution_role_policy
from tests.moto_server import BUCKET, REGION, ROLE_ARN, aws_env, moto_endpoint  # noqa: F401
from tests.test_aws_cli import GROUP, config_file  # noqa: F401
from tests.test_iam_policy import calls  # noqa: F401
from training_code import production_model

ENDPOINT = "dogs-prod"


def _package(client: Any, key: str, status: str) -> str:
    spec = {
        "Containers": [{"Image": "pytorch-inference:2.5", "ModelDataUrl": f"s3://{BUCKET}/{key}"}],
        "SupportedContentTypes": ["image/jpeg"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    return client.create_model_package(
        ModelPackageGroupName=GROUP, InferenceSpecification=spec, ModelApprovalStatus=status
    )["ModelPackageArn"]


def _serve(client: Any, package_arn: str) -> None:
    client.create_model(
        ModelName="prod-model", ExecutionRoleArn=ROLE_ARN, Containers=[{"ModelPackageName": package_arn}]
    )
    variant = {"VariantName": "AllTraffic", "ModelName": "prod-model", "InitialInstanceCount": 1}
    client.create_endpoint_config(
        EndpointConfigName="prod-config", ProductionVariants=[{**variant, "InstanceType": "ml.m5.large"}]
    )
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="prod-config")


@pytest.mark.usefixtures("aws_env")
def test_the_job_finds_production_on_sagemaker_and_fetches_its_artifact(
    calls: set[str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        production_model.LOCAL_REGISTRY,
        production_model.LOCAL_ENDPOINTS,
        production_model.LOCAL_S3,
    ):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    client.create_model_package_group(ModelPackageGroupName=GROUP)
    assert production_model.resolve_production(ENDPOINT, GROUP) is None  # a first run

    first = _package(client, "m/1/model.tar.gz", "Approved")
    _package(client, "m/2/model.tar.gz", "Approved")
    newest = production_model.resolve_production(ENDPOINT, GROUP)
    assert newest is not None and (newest["version"], newest["source"]) == (2, "latest_approved")

    _serve(client, first)  # production serves v1 although v2 was approved later
    served = production_model.resolve_production(ENDPOINT, GROUP)
    assert served == {
        "version": 1,
        "package_arn": first,
        "source": "stage",
        "endpoint": ENDPOINT,
        "model_data_url": f"s3://{BUCKET}/m/1/model.tar.gz",
    }
    s3.put_object(Bucket=BUCKET, Key="m/1/model.tar.gz", Body=b"the production archive")
    folder = production_model.fetch_model(served["model_data_url"], tmp_path / "production")
    assert (folder / "model.tar.gz").read_bytes() == b"the production archive"
    with pytest.raises(production_model.ProductionUnavailable, match="cannot read production model"):
        production_model.fetch_model(f"s3://{BUCKET}/m/9/model.tar.gz", tmp_path / "missing")

    cfg = load_config(DEFAULT_CONFIG)
    policy = execution_role_policy(cfg, [build_definition(cfg)], ROLE_ARN)
    # (the artifact's GetObject runs in s3transfer's threads, outside the recorder's view; the
    # execution role's Data statement grants it on the bucket)
    assert {"sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"} <= calls
    assert calls - allowed_actions(policy) == set()


COMPARISON = {
    "status": "compared",
    "reason": None,
    "production": {"version": 1, "package_arn": "arn:aws:sagemaker:x/1", "source": "stage"},
    "test_images": 16,
    "candidate": {"accuracy": 0.875, "weighted_f1": 0.86, "model_bytes": 9000, "latency_ms": 4.2},
    "baseline": {"accuracy": 0.9375, "weighted_f1": 0.93, "model_bytes": 9000, "latency_ms": 4.0},
    "delta": {"accuracy": -0.0625, "weighted_f1": -0.07},
    "mcnemar": {
        "candidate_only_right": 0,
        "production_only_right": 1,
        "p_value": 1.0,
        "significant": False,
        "alpha": 0.05,
    },
    "per_breed": [
        {"breed": "b", "candidate_accuracy": 0.75, "production_accuracy": 1.0, "delta": -0.25, "n": 4}
    ],
    "gate": {"enabled": True, "tolerance": 0.01, "passed": True, "message": "not clearly worse"},
    "registry_metadata": {
        "comparison_status": "compared",
        "production_version": "1",
        "delta_accuracy": "-0.0625",
        "delta_weighted_f1": "-0.0700",
        "mcnemar_p": "1",
        "gate_passed": "true",
        "test_data": f"s3://{BUCKET}/dp/executions/e1/data/test",
    },
}


def _outputs(name: str, uri: str) -> dict[str, Any]:
    return {"ProcessingOutputConfig": {"Outputs": [{"OutputName": name, "S3Output": {"S3Uri": uri}}]}}


def register_request(definition: str) -> dict[str, Any]:
    """The Register step's CreateModelPackage request with its expressions resolved the way the
    pipeline resolves them, against finished upstream steps whose outputs are in the test bucket."""
    register = next(node for node in steps_of(json.loads(definition)) if node.name == "Register")
    best = {
        "TrainingJobName": "tune-007",
        "TunedHyperParameters": {"lr": "0.001", "batch_size": "16", "optimizer": "adam"},
    }
    properties = {
        "Train": {
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/m/2/model.tar.gz"},
            "TrainingJobName": "train-2",
        },
        "Tune": {"BestTrainingJob": best},
        "Evaluate": _outputs("evaluation", f"s3://{BUCKET}/e"),
        "DebugRules": _outputs("rules", f"s3://{BUCKET}/r"),
        "Compare": _outputs("comparison", f"s3://{BUCKET}/c"),
    }
    scope = Scope(
        parameters={"InputDataUrl": f"s3://{BUCKET}/data/", "ModelApprovalStatus": "PendingManualApproval"},
        execution={
            "PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1"
        },
        step_properties=lambda step: properties[step],
        property_file=lambda step, name: COMPARISON,
    )
    return resolve(register.arguments, scope)


@pytest.mark.usefixtures("aws_env")
def test_the_registry_entry_carries_the_comparison_and_models_show_reads_it(config_file: Path) -> None:  # noqa: F811
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    evaluation = {"multiclass_classification_metrics": {"accuracy": {"value": 0.875}}, "num_samples": 16}
    s3.put_object(Bucket=BUCKET, Key="e/evaluation.json", Body=json.dumps(evaluation).encode())
    s3.put_object(Bucket=BUCKET, Key="c/comparison.json", Body=json.dumps(COMPARISON).encode())
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    request = register_request(build_definition(load_config(config_file)))
    assert (
        request["ModelMetrics"]["ModelQuality"]["Constraints"]["S3Uri"] == f"s3://{BUCKET}/c/comparison.json"
    )
    request["ModelMetrics"] = {key: value for key, value in request["ModelMetrics"].items() if value}
    sagemaker.create_model_package(**request)  # botocore validates the request against the API's shapes

    described = sagemaker.describe_model_package(
        ModelPackageName=f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{GROUP}/1"
    )
    metadata = described["CustomerMetadataProperties"]
    assert (metadata["comparison_status"], metadata["delta_accuracy"], metadata["production_version"]) == (
        "compared",
        "-0.0625",
        "1",
    )
    assert metadata["test_data"] == f"s3://{BUCKET}/dp/executions/e1/data/test"
    shown = CliRunner().invoke(cli, ["models", "show", "1", "--config", str(config_file), "-o", "json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert (
        record["comparison"] == COMPARISON
        and record["comparison_report"] == f"s3://{BUCKET}/c/comparison.json"
    )
    assert record["vs_production"] == (
        "v1 (stage): accuracy 0.8750 vs 0.9375 (-0.0625), weighted_f1 0.8600 vs 0.9300 (-0.0700), "
        "McNemar p=1 (not significant) on 16 images; gate passed"
    )
    assert record["breeds_worse_than_production"] == "b (-0.25)"
    table = CliRunner().invoke(cli, ["models", "show", "1", "--config", str(config_file)])
    assert "vs_production:" in table.output and "comparison:" not in table.output


@pytest.mark.usefixtures("aws_env")
def test_models_compare_fetches_artifacts_and_test_splits_from_s3_as_the_store_lays_them_out(
    tmp_path: Path,
) -> None:
    from pipeline.sagemaker.aws import download_s3

    s3 = boto3.client("s3", region_name=REGION)
    for key in ("t/test/a/1.jpg", "t/test/b/2.jpg", "t/testing/other.jpg", "m/1/model.tar.gz"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    split = download_s3(s3, f"s3://{BUCKET}/t/test/", tmp_path / "test")
    assert split is not None
    assert sorted(p.relative_to(split).as_posix() for p in split.rglob("*") if p.is_file()) == [
        "a/1.jpg",
        "b/2.jpg",
    ]
    model = download_s3(s3, f"s3://{BUCKET}/m/1/model.tar.gz", tmp_path / "model")
    assert model is not None and (model / "model.tar.gz").read_bytes() == b"m/1/model.tar.gz"
    assert download_s3(s3, f"s3://{BUCKET}/m/9/model.tar.gz", tmp_path / "none") is None
