"""The deploy pipeline's definition: zero AWS calls, identical bytes, golden, valid, options honoured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import DEFAULT_CONFIG, load_config, parse_config
from pipeline.config.deploy_names import deploy_pipeline_name
from pipeline.definition.deploy_pipeline import build_deploy_definition
from pipeline.definition.graph import mermaid
from pipeline.definition.validate import check_shape, sagemaker_model, validate_definition
from tests.golden.regenerate import CODE_SHA256_PLACEHOLDER, DEPLOY_GOLDEN
from tests.test_definition import _steps, no_network  # noqa: F401
from training_code.deploy_endpoint import deployment_config, parse_args


@pytest.fixture(scope="module")
def shipped() -> str:
    return build_deploy_definition(load_config(DEFAULT_CONFIG))


def test_rebuild_is_byte_identical_without_network(no_network: list[str], shipped: str) -> None:  # noqa: F811
    assert build_deploy_definition(load_config(DEFAULT_CONFIG)) == shipped
    assert no_network == []


def test_golden_deploy_definition_is_current_and_valid(shipped: str) -> None:
    from pipeline.definition.code import package_code

    assert shipped.replace(package_code().sha256, CODE_SHA256_PLACEHOLDER) == DEPLOY_GOLDEN.read_text(), (
        "deploy pipeline changed: review, then `make golden`"
    )
    assert validate_definition(shipped) == []


def _deploy_request(steps: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """What the Deploy job's script makes of its arguments: (args, UpdateEndpoint's DeploymentConfig)."""
    app = steps["Deploy"]["Arguments"]["AppSpecification"]
    assert app["ContainerEntrypoint"][-1].endswith("/deploy_endpoint.py")
    words = [word if isinstance(word, str) else "<expression>" for word in app["ContainerArguments"]]
    args = parse_args(words)
    return args, (deployment_config(args) if args.blue_green else None)


def test_it_deploys_only_an_approved_package_of_the_group_with_guardrails(shipped: str) -> None:
    definition = json.loads(shipped)
    assert deploy_pipeline_name(load_config(DEFAULT_CONFIG)) == "dogpipe-deploy"
    assert definition["Parameters"] == [
        {"DefaultValue": "latest", "Name": "ModelPackageArn", "Type": "String"}
    ]
    steps = _steps(definition)
    assert {name: step["Type"] for name, step in steps.items()} == {
        "ResolvePackage": "Processing",
        "CheckPackage": "Condition",
        "CreateModel": "Model",
        "EndpointConfig": "EndpointConfig",
        "Deploy": "Processing",
        "PackageNotDeployable": "Fail",
    }
    conditions = steps["CheckPackage"]["Arguments"]["Conditions"]
    assert [(c["LeftValue"]["Std:JsonGet"]["Path"], c["RightValue"]) for c in conditions] == [
        ("ModelApprovalStatus", "Approved"),
        ("ModelPackageGroupName", "dogpipe-dog-breeds"),
    ]
    args, guard = _deploy_request(steps)
    assert (args.endpoint_name, args.stage, args.group) == ("dogpipe-prod", "prod", "dogpipe-dog-breeds")
    assert steps["Deploy"]["Arguments"]["Environment"] == {"AWS_DEFAULT_REGION": "us-east-1"}
    assert steps["ResolvePackage"]["Arguments"]["Environment"] == {"AWS_DEFAULT_REGION": "us-east-1"}
    request = {"EndpointName": args.endpoint_name, "EndpointConfigName": "c", "DeploymentConfig": guard}
    assert check_shape(sagemaker_model().operation_model("UpdateEndpoint").input_shape, request, "") == []
    assert guard is not None
    assert guard["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "ALL_AT_ONCE",
        "WaitIntervalInSeconds": 300,
    }
    assert [alarm["AlarmName"] for alarm in guard["AutoRollbackConfiguration"]["Alarms"]] == [
        "dogpipe-prod-5xx-errors",
        "dogpipe-prod-model-latency",
    ]
    container = steps["CreateModel"]["Arguments"]["Containers"][0]["ModelPackageName"]
    assert container["Std:JsonGet"]["Path"] == "ModelPackageArn"


def test_serverless_async_and_data_capture_options_are_valid_requests() -> None:
    raw = load_config(DEFAULT_CONFIG).model_dump(mode="json")
    raw["deploy"].update(
        on_approval="staging",
        serverless={"memory_mb": 2048, "max_concurrency": 3},
        data_capture={"enabled": True, "sampling_percentage": 10},
    )
    text = build_deploy_definition(parse_config(raw))
    assert validate_definition(text) == []
    steps = _steps(json.loads(text))
    variant = steps["EndpointConfig"]["Arguments"]["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 3}
    args, guard = _deploy_request(steps)
    assert "InstanceType" not in variant and guard is None
    assert steps["EndpointConfig"]["Arguments"]["DataCaptureConfig"]["InitialSamplingPercentage"] == 10
    assert args.endpoint_name == "dogpipe-staging"

    raw["deploy"].update(serverless=None, async_inference={"output_s3_uri": "s3://my-dogpipe-bucket/async"})
    raw["deploy"]["guardrails"] = {"traffic": "LINEAR", "linear_step_percent": 20}
    raw["deploy"]["initial_instance_count"] = 2
    text = build_deploy_definition(parse_config(raw))
    assert validate_definition(text) == []
    steps = _steps(json.loads(text))
    assert steps["EndpointConfig"]["Arguments"]["AsyncInferenceConfig"]["OutputConfig"] == {
        "S3OutputPath": "s3://my-dogpipe-bucket/async"
    }
    routing = _deploy_request(steps)[1]["BlueGreenUpdatePolicy"]
    assert routing["TrafficRoutingConfiguration"]["LinearStepSize"] == {
        "Type": "CAPACITY_PERCENT",
        "Value": 20,
    }


def test_a_bad_schedule_or_stage_is_a_config_error() -> None:
    from pipeline.config import ConfigError

    raw = load_config(DEFAULT_CONFIG).model_dump(mode="json")
    with pytest.raises(ConfigError, match="schedule"):
        parse_config({**raw, "schedule": "every day"})
    with pytest.raises(ConfigError, match="needs initial_instance_count >= 2"):
        parse_config({**raw, "deploy": {**raw["deploy"], "guardrails": {"traffic": "CANARY"}}})
    with pytest.raises(ConfigError, match="on_approval"):
        parse_config({**raw, "deploy": {**raw["deploy"], "on_approval": "production"}})


def test_definition_and_graph_show_the_deploy_pipeline_when_asked(shipped: str, tmp_path: Path) -> None:
    """``--pipeline deploy`` shows ``<project>-deploy`` (the same bytes as its builder), the default the
    build pipeline; a ``--definition`` file beside ``--pipeline deploy`` is refused as ambiguous."""
    config = ["--config", str(DEFAULT_CONFIG)]
    runner = CliRunner()
    deploy = runner.invoke(cli, ["definition", "--pipeline", "deploy", *config])
    assert deploy.exit_code == 0, deploy.output
    assert deploy.output == shipped
    steps = set(_steps(json.loads(deploy.output)))
    assert {"ResolvePackage", "CheckPackage", "CreateModel", "EndpointConfig", "Deploy"} <= steps
    written = tmp_path / "deploy.json"
    to_file = ["definition", "--pipeline", "deploy", "--output-file", str(written), *config]
    assert runner.invoke(cli, to_file).exit_code == 0
    assert written.read_text() == shipped
    build = set(_steps(json.loads(runner.invoke(cli, ["definition", *config]).output)))
    assert "Train" in build and "ResolvePackage" not in build

    graph = runner.invoke(cli, ["graph", "--pipeline", "deploy", *config])
    assert graph.exit_code == 0, graph.output
    assert graph.output == mermaid(shipped)
    assert '    ResolvePackage["ResolvePackage<br/>Processing"]' in graph.output
    assert "    CheckPackage -->|if| Deploy" in graph.output
    assert "Train" not in graph.output
    default = runner.invoke(cli, ["graph", *config]).output
    assert "Train" in default and "ResolvePackage" not in default

    both = runner.invoke(cli, ["graph", "--pipeline", "deploy", "--definition", str(written), *config])
    assert both.exit_code == 2
    assert "--pipeline deploy would build the deploy pipeline: pass one of them" in both.output
