"""The AWS side of the CLI against a real moto server: upsert → start → status → approve → deploy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner, Result

from pipeline.cli.main import cli
from pipeline.cli.output import cell, parse_table
from pipeline.config import load_config
from pipeline.definition.code import package_code
from pipeline.definition.diff import diff_definitions
from pipeline.registry import SageMakerRegistry
from pipeline.sagemaker.aws import AwsClients
from pipeline.sagemaker.deploy import SageMakerDeployer
from tests.moto_server import BUCKET, REGION, ROLE_ARN, aws_env, hide_aws_config, moto_endpoint  # noqa: F401

PIPELINE = "dogpipe-test"
GROUP = "dogpipe-test-models"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    raw = {
        "engine": "sagemaker",
        "project": {"name": PIPELINE, "region": REGION, "bucket": BUCKET, "prefix": "dp"},
        "data": {"s3_uri": f"s3://{BUCKET}/data/"},
        "registry": {"model_package_group": GROUP},
        "deploy": {"production_endpoint": "dogs-prod", "staging_endpoint": "dogs-staging"},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def make_definition(config_file: Path, lr: str = "0.001", extra_parameter: bool = False) -> dict[str, Any]:
    """A small definition in SageMaker's shape that refers to the code upsert will stage."""
    cfg = load_config(config_file)
    code = package_code()
    parameters = [
        {"Name": "AccuracyThreshold", "Type": "Float", "DefaultValue": 0.7},
        {"Name": "Epochs", "Type": "Integer", "DefaultValue": 3},
    ]
    if extra_parameter:
        parameters.append({"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "Approved"})
    train = {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {
            "HyperParameters": {"lr": lr, "sagemaker_submit_directory": code.sourcedir_uri(cfg)},
            "RoleArn": "arn:aws:iam::123456789012:role/dogpipe-test-role",
        },
    }
    check = {
        "Name": "CheckAccuracy",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [],
            "IfSteps": [{"Name": "Register", "Type": "RegisterModel"}],
            "ElseSteps": [],
        },
    }
    return {"Version": "2020-12-01", "Parameters": parameters, "Steps": [train, check]}


def write_definition(path: Path, definition: dict[str, Any]) -> Path:
    path.write_text(json.dumps(definition, sort_keys=True))
    return path


def dogpipe(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def register_package(accuracy: float, metadata: dict[str, str] | None = None, **request: Any) -> str:
    """What the pipeline's Register step leaves in the registry: the accuracy as metadata unless
    ``metadata`` is given, plus any other CreateModelPackage fields (ModelMetrics)."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {"Image": "pytorch-inference:2.5", "ModelDataUrl": f"s3://{BUCKET}/m/{accuracy}.tar.gz"}
            ],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties=metadata or {"accuracy": str(accuracy)},
        **request,
    )["ModelPackageArn"]


@pytest.mark.usefixtures("aws_env")
@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_round_trip_upsert_start_status_approve_deploy(config_file: Path, tmp_path: Path) -> None:
    definition = write_definition(tmp_path / "definition.json", make_definition(config_file))
    common = ("--config", str(config_file), "--definition", str(definition))
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)

    first = dogpipe("upsert", *common, "--role-arn", ROLE_ARN)
    assert first.exit_code == 0, first.output
    staged = package_code().staging_plan(load_config(config_file))
    assert f"code: {len(staged)} object(s) uploaded, 0 already in S3" in first.output
    assert "pipeline created" in first.output
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {uri.removeprefix(f"s3://{BUCKET}/") for uri in staged}

    second = dogpipe("upsert", *common, "--role-arn", ROLE_ARN)
    assert second.exit_code == 0, second.output
    assert f"code: 0 object(s) uploaded, {len(staged)} already in S3" in second.output
    assert "pipeline unchanged" in second.output  # the same definition, role and settings: no write
    assert json.loads(sagemaker.describe_pipeline(PipelineName=PIPELINE)["PipelineDefinition"]) == json.loads(
        definition.read_text()
    )

    started = dogpipe("start", "--config", str(config_file), "--param", "AccuracyThreshold=0.85", "--wait")
    assert started.exit_code == 0, started.output
    arn = started.output.splitlines()[0]
    assert arn.startswith(f"arn:aws:sagemaker:{REGION}:") and f"pipeline/{PIPELINE}/execution/" in arn
    assert "status: Succeeded" in started.output
    sent = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert sent == [{"Name": "AccuracyThreshold", "Value": "0.85"}]

    unknown = dogpipe("start", "--config", str(config_file), "--param", "Accuracy=0.9")
    assert unknown.exit_code == 2
    assert (
        "unknown pipeline parameter(s): Accuracy; the pipeline declares: AccuracyThreshold, Epochs"
        in unknown.output
    )
    bad_value = dogpipe("start", "--config", str(config_file), "--param", "Epochs=three")
    assert bad_value.exit_code == 2 and "parameter 'Epochs' is Integer; 'three'" in bad_value.output
    assert len(sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]) == 1

    status = dogpipe("status", "--config", str(config_file))
    assert status.exit_code == 0, status.output
    assert f"execution: {arn}" in status.output and "status:    Succeeded" in status.output
    assert "ListPipelineExecutionSteps failed" in status.output  # moto lacks the call: reported, not fatal
    as_json = json.loads(dogpipe("status", "--config", str(config_file), "-o", "json").output)
    assert as_json["execution"] == arn and as_json["status"] == "Succeeded" and as_json["steps"] == []
    shown = dict(line.split(":", 1) for line in status.output.splitlines())
    assert {key: value.strip() for key, value in shown.items()} == {
        key: cell(value) for key, value in as_json.items() if key != "steps"
    }

    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    register_package(0.71)
    v2 = register_package(0.93)
    listed = dogpipe("models", "list", "--config", str(config_file))
    assert listed.exit_code == 0, listed.output
    rows = parse_table(listed.output)
    assert [(row["version"], row["status"], row["accuracy"]) for row in rows] == [
        ("1", "PendingManualApproval", "0.7100"),
        ("2", "PendingManualApproval", "0.9300"),
    ]
    as_json = json.loads(dogpipe("models", "list", "--config", str(config_file), "-o", "json").output)
    assert [(row["version"], row["accuracy"]) for row in as_json] == [(1, 0.71), (2, 0.93)]
    table = parse_table(listed.output)
    assert table == [{key: cell(row[key]) for key in table[0]} for row in as_json]

    refused = dogpipe("deploy", "--stage", "prod", "--config", str(config_file), "--role-arn", ROLE_ARN)
    assert refused.exit_code == 1
    assert "refusing to deploy: no Approved model package" in refused.output
    assert "v1 PendingManualApproval, v2 PendingManualApproval" in refused.output
    assert sagemaker.list_endpoints()["Endpoints"] == []

    approved = dogpipe("models", "approve", "2", "--note", "best so far", "--config", str(config_file))
    assert approved.exit_code == 0, approved.output
    described = sagemaker.describe_model_package(ModelPackageName=v2)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == ("Approved", "best so far")
    assert dogpipe("models", "reject", "1", "--config", str(config_file)).exit_code == 0
    missing = dogpipe("models", "approve", "9", "--config", str(config_file))
    assert (
        missing.exit_code == 1
        and "version 9 not found in group 'dogpipe-test-models' (versions: 1, 2)" in missing.output
    )

    deployed = dogpipe("deploy", "--stage", "prod", "--config", str(config_file), "--role-arn", ROLE_ARN)
    assert deployed.exit_code == 0, deployed.output
    assert "endpoint dogs-prod created: version 2" in deployed.output
    endpoint = sagemaker.describe_endpoint(EndpointName="dogs-prod")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["Containers"] == [{"ModelPackageName": v2}]
    assert not config.get("DataCaptureConfig")

    again = dogpipe("deploy", "--stage", "prod", "--config", str(config_file), "--role-arn", ROLE_ARN)
    assert again.exit_code == 0 and "endpoint dogs-prod unchanged: version 2" in again.output


class RecordingSageMaker:
    """The moto client, plus UpdateEndpoint (which moto lacks), recorded and applied to nothing."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.updates: list[dict[str, str]] = []

    def update_endpoint(self, **request: str) -> dict[str, str]:
        self.updates.append(request)
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{request['EndpointName']}"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.usefixtures("aws_env")
def test_new_approved_version_updates_the_endpoint_with_capture_and_scaling(config_file: Path) -> None:
    raw = yaml.safe_load(config_file.read_text())
    raw["deploy"]["data_capture"] = {"enabled": True, "sampling_percentage": 25}
    raw["deploy"]["autoscaling"] = {"min": 1, "max": 4, "target_invocations": 50}
    config_file.write_text(yaml.safe_dump(raw))
    cfg = load_config(config_file)
    clients = AwsClients.for_config(cfg)
    sagemaker = RecordingSageMaker(clients.sagemaker)
    registry = SageMakerRegistry(clients.sagemaker)
    deployer = SageMakerDeployer(sagemaker, clients.autoscaling, wait_timeout_s=5, poll_s=0)
    clients.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    register_package(0.8)
    register_package(0.9)

    first = deployer.deploy(cfg, "prod", registry.set_approval(GROUP, 1, "Approved"), ROLE_ARN)
    second = deployer.deploy(cfg, "prod", registry.set_approval(GROUP, 2, "Approved"), ROLE_ARN)

    assert (first.action, second.action) == ("created", "updated")
    from pipeline.config.deploy_names import deployment_config

    assert sagemaker.updates == [
        {
            "EndpointName": "dogs-prod",
            "EndpointConfigName": second.endpoint_config_name,
            "DeploymentConfig": deployment_config(cfg),  # blue/green, rolled back by the upsert's alarms
        }
    ]
    capture = clients.sagemaker.describe_endpoint_config(EndpointConfigName=second.endpoint_config_name)[
        "DataCaptureConfig"
    ]
    assert capture["InitialSamplingPercentage"] == 25
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/dp/data-capture"  # + <endpoint>/<variant>
    resource = "endpoint/dogs-prod/variant/AllTraffic"
    targets = clients.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource]
    )
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets["ScalableTargets"]] == [(1, 4)]
    policies = clients.autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource
    )
    [policy] = policies["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 50.0


@pytest.mark.usefixtures("aws_env")
def test_missing_credentials_or_role_stop_before_anything_is_staged(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = write_definition(tmp_path / "definition.json", make_definition(config_file))
    common = ("upsert", "--config", str(config_file), "--definition", str(definition))

    no_role = dogpipe(*common)
    assert no_role.exit_code == 1
    assert "no SageMaker execution role: pass --role-arn, set DOGPIPE_ROLE_ARN, or set project.role_arn" in (
        no_role.output
    )
    wrong_role = dogpipe(*common, "--role-arn", "arn:aws:iam::123456789012:role/nobody")
    assert (
        wrong_role.exit_code == 1
        and "IAM role 'arn:aws:iam::123456789012:role/nobody' does not exist" in (wrong_role.output)
    )
    no_bucket = dogpipe(*common, "--role-arn", ROLE_ARN, "--bucket", "no-such-bucket")
    assert no_bucket.exit_code == 1 and "S3 bucket 'no-such-bucket' does not exist" in no_bucket.output

    hide_aws_config(monkeypatch, tmp_path)
    no_credentials = dogpipe(*common, "--role-arn", ROLE_ARN)
    assert no_credentials.exit_code == 1
    assert (
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in no_credentials.output
    )
    assert "Traceback" not in no_credentials.output
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    partial = dogpipe("models", "list", "--config", str(config_file))
    assert partial.exit_code == 1 and "AWS_SECRET_ACCESS_KEY" in partial.output

    assert "Contents" not in boto3.client(
        "s3", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    ).list_objects_v2(Bucket=BUCKET)


@pytest.mark.usefixtures("aws_env")
def test_diff_reports_changed_step_and_added_parameter(config_file: Path, tmp_path: Path) -> None:
    deployed = write_definition(tmp_path / "deployed.json", make_definition(config_file))
    common = ("--config", str(config_file), "--role-arn", ROLE_ARN)
    before = dogpipe("diff", *common, "--definition", str(deployed))  # nothing upserted yet: all new
    assert before.exit_code == 0, before.output
    lines = before.output.splitlines()
    assert lines[:4] == [
        f"pipeline {PIPELINE}: would be created",
        "  step CheckAccuracy: added",
        "  step Register: added",
        "  step Train: added",
    ]
    assert f"pipeline {PIPELINE}-deploy: would be created" in lines
    upserted = dogpipe("upsert", *common, "--definition", str(deployed))
    assert upserted.exit_code == 0, upserted.output
    same = dogpipe("diff", *common, "--definition", str(deployed))
    assert same.exit_code == 0, same.output
    assert same.output.splitlines()[:2] == [
        f"pipeline {PIPELINE}: unchanged",
        f"pipeline {PIPELINE}-deploy: unchanged",
    ]
    again = dogpipe("upsert", *common, "--definition", str(deployed))  # issue 25: says so, writes nothing
    assert "pipeline unchanged:" in again.output and "deploy pipeline unchanged:" in again.output

    changed = make_definition(config_file, lr="0.01", extra_parameter=True)
    local = write_definition(tmp_path / "local.json", changed)
    result = dogpipe("diff", *common, "--definition", str(local))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"pipeline {PIPELINE}: would be updated",
        "  step Train: changed",
        "      $.Arguments.HyperParameters.lr",
        "  parameter ModelApprovalStatus: added",
        f"pipeline {PIPELINE}-deploy: unchanged",
        "approval rule dogpipe-test-deploy-on-approval: none (deploy.on_approval is off)",
        "schedule dogpipe-test-scheduled-build: none",
        "monitoring schedule: none (deploy.data_capture captures no requests)",
    ]


def test_diff_matches_by_name_and_looks_inside_condition_branches() -> None:
    register = {"Name": "Register", "Type": "RegisterModel", "Arguments": {"ModelApprovalStatus": "Pending"}}
    fail = {"Name": "Fail", "Type": "Fail", "Arguments": {"ErrorMessage": "low"}}
    gate = {"Name": "Gate", "Type": "Condition", "Arguments": {"IfSteps": [register], "ElseSteps": [fail]}}
    old = {"Steps": [{"Name": "Train", "Type": "Training"}, gate], "Parameters": []}
    reordered = {"Steps": [gate, {"Name": "Train", "Type": "Training"}], "Parameters": []}
    assert diff_definitions(old, reordered).empty

    approved = {**register, "Arguments": {"ModelApprovalStatus": "Approved"}}
    new_gate = {**gate, "Arguments": {"IfSteps": [approved], "ElseSteps": []}}
    new = {"Steps": [{"Name": "Train", "Type": "Training"}, new_gate], "Parameters": [], "Version": "2"}
    lines = diff_definitions(old, new).lines()
    assert lines == [
        "step Fail: removed",
        "step Gate: changed",
        "    $.Arguments.ElseSteps[0]",
        "step Register: changed",
        "    $.Arguments.ModelApprovalStatus",
        "pipeline (top level): changed",
        "    $.Version",
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("aws_env")
def test_aws_commands_print_no_library_info_lines_unless_verbose(config_file: Path, tmp_path: Path) -> None:
    """A real process with a cold build (the SDK's import calls logging.basicConfig(level=INFO)): stderr
    carries no botocore INFO lines; ``-v`` shows them."""
    import os
    import subprocess
    import sys

    environment = {**os.environ, "DOGPIPE_CACHE_DIR": str(tmp_path / "cache")}

    def upsert(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pipeline", *flags, "upsert", "--config", str(config_file)]
        return subprocess.run(
            [*command, "--role-arn", ROLE_ARN], capture_output=True, text=True, env=environment, timeout=300
        )

    quiet = upsert()
    assert quiet.returncode == 0, quiet.stderr
    assert "pipeline created" in quiet.stdout
    assert "INFO" not in quiet.stderr and "botocore" not in quiet.stderr, quiet.stderr
    verbose = upsert("-v")
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO botocore" in verbose.stderr


@pytest.mark.usefixtures("aws_env")
def test_upsert_sends_tags_description_parallelism_and_puts_a_large_definition_in_s3(
    config_file: Path, tmp_path: Path
) -> None:
    raw = yaml.safe_load(config_file.read_text())
    raw["project"].update(
        description="Dog breeds, fine-tuned weekly",
        tags={"team": "vision", "cost-center": "42"},
        sagemaker_project={"name": "dogs", "id": "p-abcdefghijkl"},
        max_parallel_steps=3,
    )
    config_file.write_text(yaml.safe_dump(raw))
    definition = make_definition(config_file)
    definition["Steps"][0]["Description"] = "x" * 120_000  # over the 100 KB inline limit
    path = write_definition(tmp_path / "definition.json", definition)
    sagemaker = boto3.client("sagemaker", region_name=REGION)

    for action in ("created", "updated"):
        result = dogpipe(
            "upsert", "--config", str(config_file), "--definition", str(path), "--role-arn", ROLE_ARN
        )
        assert result.exit_code == 0, result.output
        assert f"pipeline {action}" in result.output
        described = sagemaker.describe_pipeline(PipelineName=PIPELINE)
        assert described["PipelineDescription"] == "Dog breeds, fine-tuned weekly"
        assert described["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 3}
        tags = sagemaker.list_tags(ResourceArn=described["PipelineArn"])["Tags"]
        assert {tag["Key"]: tag["Value"] for tag in tags} == {
            "team": "vision",
            "cost-center": "42",
            "sagemaker:project-name": "dogs",
            "sagemaker:project-id": "p-abcdefghijkl",
        }
    text = path.read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key=f"dp/definitions/{PIPELINE}/{digest}.json"
    )
    assert stored["Body"].read().decode() == text  # moto read the pipeline from there (it keeps a dict)


def test_a_small_definition_stays_inline_and_reserved_tags_are_refused(config_file: Path) -> None:
    from pipeline.config import ConfigError, parse_config
    from pipeline.sagemaker.pipelines import definition_location

    cfg = load_config(config_file)
    assert definition_location(None, cfg, PIPELINE, "{}") == {"PipelineDefinition": "{}"}
    raw = yaml.safe_load(config_file.read_text())
    raw["project"]["tags"] = {"sagemaker:project-name": "x"}
    with pytest.raises(ConfigError, match=r"project -> tags.*reserved"):
        parse_config(raw)


@pytest.mark.usefixtures("aws_env")
def test_an_events_role_that_eventbridge_cannot_assume_stops_upsert_before_anything_is_written(
    config_file: Path, tmp_path: Path
) -> None:
    """With on_approval set, the rule's role defaults to the execution role; one that trusts only
    SageMaker would leave approvals deploying nothing, so upsert refuses it in one line."""
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    sagemaker_only = iam.create_role(RoleName="sagemaker-only", AssumeRolePolicyDocument=json.dumps(trust))
    raw = yaml.safe_load(config_file.read_text())
    raw["deploy"]["on_approval"] = "prod"
    config_file.write_text(yaml.safe_dump(raw))
    definition = write_definition(tmp_path / "definition.json", make_definition(config_file))
    common = ("upsert", "--config", str(config_file), "--definition", str(definition), "--role-arn")

    refused = dogpipe(*common, sagemaker_only["Role"]["Arn"])
    assert refused.exit_code == 1
    assert "does not trust events.amazonaws.com (the approval rule's role)" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []

    raw["deploy"]["events_role_arn"] = ROLE_ARN  # trusts events and scheduler too
    config_file.write_text(yaml.safe_dump(raw))
    assert dogpipe(*common, sagemaker_only["Role"]["Arn"]).exit_code == 0


@pytest.mark.usefixtures("aws_env")
@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_production_is_reached_only_through_the_deploy_pipeline_and_approvals_say_who(
    config_file: Path, tmp_path: Path
) -> None:
    """Issue 25 on moto: with on_approval: prod, `deploy --stage prod` starts `<project>-deploy` for the
    newest approval (a listed execution) instead of touching the endpoint; approving a Rejected version
    needs --force and a note; `models list -o json` says who approved, when, with which note."""
    raw = yaml.safe_load(config_file.read_text())
    raw["deploy"].update(on_approval="prod", events_role_arn=ROLE_ARN)
    config_file.write_text(yaml.safe_dump(raw))
    definition = write_definition(tmp_path / "definition.json", make_definition(config_file))
    config = ("--config", str(config_file))
    assert dogpipe("upsert", *config, "--definition", str(definition), "--role-arn", ROLE_ARN).exit_code == 0
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    register_package(0.8)
    v2 = register_package(0.9)

    refused = dogpipe("deploy", "--stage", "prod", *config, "--role-arn", ROLE_ARN)
    assert refused.exit_code == 1 and "refusing to deploy: no Approved model package" in refused.output
    assert dogpipe("models", "reject", "2", "--note", "overfits", *config).exit_code == 0
    over = dogpipe("models", "approve", "2", *config)
    assert over.exit_code == 1 and len(over.output.strip().splitlines()) == 1
    assert "version 2 was Rejected (overfits): approving it needs --force and a --note" in over.output
    assert sagemaker.describe_model_package(ModelPackageName=v2)["ModelApprovalStatus"] == "Rejected"
    forced = dogpipe("models", "approve", "2", "--force", "--note", "false alarm", *config)
    assert forced.exit_code == 0, forced.output

    deployed = dogpipe("deploy", "--stage", "prod", *config, "--role-arn", ROLE_ARN)
    assert deployed.exit_code == 0, deployed.output
    assert f"{PIPELINE}-deploy started for {v2} (stage prod)" in deployed.output
    runs = sagemaker.list_pipeline_executions(PipelineName=f"{PIPELINE}-deploy")["PipelineExecutionSummaries"]
    assert len(runs) == 1 and sagemaker.list_endpoints()["Endpoints"] == []
    sent = sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=runs[0]["PipelineExecutionArn"]
    )
    assert sent["PipelineParameters"] == [{"Name": "ModelPackageArn", "Value": v2}]
    listed = dogpipe("executions", "list", *config)
    assert runs[0]["PipelineExecutionArn"].rsplit("/", 1)[-1] in listed.output

    rows = {
        row["version"]: row for row in json.loads(dogpipe("models", "list", *config, "-o", "json").output)
    }
    caller = boto3.client("sts", region_name=REGION).get_caller_identity()["Arn"]
    assert rows[2]["approved_by"] == caller and rows[2]["note"] == "approved over a rejection: false alarm"
    assert rows[2]["approval_time"] and rows[1]["approval_time"] is None and rows[1]["approved_by"] is None
    assert rows[2]["model_data"] == f"s3://{BUCKET}/m/0.9.tar.gz" and rows[2]["serving"] is None


@pytest.mark.usefixtures("aws_env")
def test_models_show_reads_the_lineage_and_evaluation_back_from_sagemaker(config_file: Path) -> None:
    """Issue 22 on moto: the fields the Register step sends (customer metadata and the model-quality
    statistics file) are accepted by CreateModelPackage and read back by `models show`."""
    s3 = boto3.client("s3", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    evaluation = {
        "multiclass_classification_metrics": {"accuracy": {"value": 0.9}, "weighted_f1": {"value": 0.88}},
        "per_class": {"001.Affenpinscher": {"f1": 0.8, "support": 5}},
        "num_samples": 5,
    }
    rules = {
        "rules": [{"rule": "overfit", "status": "NoIssuesFound", "fail_pipeline": True}],
        "blocking_issues": 0,
    }
    s3.put_object(Bucket=BUCKET, Key="e/evaluation.json", Body=json.dumps(evaluation).encode())
    s3.put_object(Bucket=BUCKET, Key="r/rules.json", Body=json.dumps(rules).encode())
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    execution = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{PIPELINE}/execution/abc123"
    register_package(
        0.9,
        metadata={
            "source_execution": execution,
            "code_sha256": "a" * 64,
            "data_uri": f"s3://{BUCKET}/data/",
            "training_job": "pipelines-abc123-Train-x",
            "best_trial": "tune-001",
            "hp_lr": "0.001",
            "rules_report": f"s3://{BUCKET}/r/rules.json",
        },
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/e/evaluation.json"}
            }
        },
    )
    shown = dogpipe("models", "show", "1", "--config", str(config_file), "-o", "json")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert (record["source_execution"], record["training_job"], record["best_trial"]) == (
        execution,
        "pipelines-abc123-Train-x",
        "tune-001",
    )
    assert record["accuracy"] == 0.9 and record["weighted_f1"] == 0.88 and record["test_images"] == 5
    assert record["hyperparameters"] == "lr=0.001" and record["data_uri"] == f"s3://{BUCKET}/data/"
    assert record["rules"][0]["rule"] == "overfit" and record["rules_blocking"] == 0


@pytest.mark.usefixtures("aws_env")
def test_start_wait_records_the_ended_executions_mlflow_run(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SageMaker execution followed to its end by ``start --wait`` is an MLflow run in the configured
    store (a SQLite file here, a managed server's ARN in use), as ``dogpipe report`` records it."""
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = yaml.safe_load(config_file.read_text())
    raw["tracking"] = {"uri": store, "experiment": "dogpipe-aws"}
    config_file.write_text(yaml.safe_dump(raw))
    definition = write_definition(tmp_path / "definition.json", make_definition(config_file))
    upserted = dogpipe("upsert", "--config", str(config_file), "--definition", str(definition),
                       "--role-arn", ROLE_ARN)  # fmt: skip
    assert upserted.exit_code == 0, upserted.output
    unrecorded = dogpipe("start", "--config", str(config_file), "--wait", "--poll", "0.1")
    assert unrecorded.exit_code == 0, unrecorded.output  # moto lacks ListPipelineExecutionSteps: no report
    assert "tracking: execution run not recorded (cannot report on" in unrecorded.output
    assert "`dogpipe report` records it" in unrecorded.output

    def no_steps(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("", 200, {}, None), {"PipelineExecutionSteps": []}

    with_steps = AwsClients.for_config  # moto lacks ListPipelineExecutionSteps: answered before the call

    def clients(cfg: Any) -> AwsClients:
        made = with_steps(cfg)
        made.sagemaker.meta.events.register("before-call.sagemaker.ListPipelineExecutionSteps", no_steps)
        return made

    monkeypatch.setattr(AwsClients, "for_config", clients)
    started = dogpipe("start", "--config", str(config_file), "--wait", "--poll", "0.1")
    assert started.exit_code == 0, started.output
    arn = started.output.splitlines()[0]
    recorded = [line for line in started.output.splitlines() if line.startswith("tracking: execution run ")]
    assert len(recorded) == 1, started.output
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("dogpipe-aws")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (run,) = runs  # the first execution's record failed: one run, the second's
    assert run.info.run_id == recorded[0].rsplit(" ", 1)[-1]
    assert arn.endswith(run.data.tags["dogpipe.execution_id"]), run.data.tags
    assert "report.html" in {
        artifact.path for artifact in mlflow.MlflowClient(store).list_artifacts(run.info.run_id)
    }
