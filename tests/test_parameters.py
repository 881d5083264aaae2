"""One ``--param`` rule for both engines: ``dogpipe run`` (local) and ``dogpipe start`` (SageMaker) parse
the pairs the same way and refuse the same values with the same one-line message, exit status 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner, Result

from pipeline.cli.main import cli
from pipeline.config import LOCAL_CONFIG, load_config
from pipeline.definition.parameters import (
    ParameterError,
    coerce_parameter,
    parameter_values,
    parse_param_pairs,
    pipeline_parameters_request,
)
from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine
from pipeline.local.executions import ExecutionStore
from pipeline.local.forked_jobs import ENABLE_ENV
from pipeline.object_store import ObjectStore
from tests.moto_server import BUCKET, REGION, aws_env, moto_endpoint  # noqa: F401

STATUSES = ["PendingManualApproval", "Approved", "Rejected"]
DEFINITION: dict[str, Any] = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "lr", "Type": "Float", "DefaultValue": 0.001},
        {"Name": "Epochs", "Type": "Integer", "DefaultValue": 3},
        {"Name": "Status", "Type": "String", "DefaultValue": "Approved", "EnumValues": STATUSES},
        {"Name": "Augment", "Type": "Boolean", "DefaultValue": False},
    ],
    "Steps": [],
}
ENUM_MESSAGE = "parameter 'Status' must be one of PendingManualApproval, Approved, Rejected; got 'approved'"
REFUSED = {
    "nan": (["lr=nan"], "parameter 'lr' is Float; 'nan' is not a valid Float"),
    "inf": (["lr=inf"], "parameter 'lr' is Float; 'inf' is not a valid Float"),
    "repeated": (["lr=0.1", "lr=0.2"], "--param lr given twice ('0.1' and '0.2'); pass each parameter once"),
    "enum": (["Status=approved"], ENUM_MESSAGE),
    "integer": (["Epochs=3.5"], "parameter 'Epochs' is Integer; '3.5' is not a valid Integer"),
    "boolean": (["Augment=yes"], "parameter 'Augment' is Boolean; 'yes' is not a valid Boolean"),
    "no '='": (["lr"], "--param expects NAME=VALUE, got 'lr' (no '=')"),
    "no name": (["=0.1"], "--param expects NAME=VALUE, got '=0.1' (no name before '=')"),
    "unknown": (
        ["LR=0.1"],
        "unknown pipeline parameter(s): LR; the pipeline declares: Augment, Epochs, Status, lr",
    ),
}


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(ParameterError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize(("pairs", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_both_engines_refuse_the_same_pairs_with_the_same_message(
    pairs: list[str], message: str, tmp_path: Path
) -> None:
    """What the local engine records (``LocalEngine.start``, which ``dogpipe run`` calls) and what
    ``dogpipe start`` sends (the StartPipelineExecution request) are refused alike."""
    engine = LocalEngine(EngineSettings(root=tmp_path), echo=lambda line: None)
    local = _refusal(lambda: engine.start(DEFINITION, "t", parse_param_pairs(pairs)))
    sagemaker = _refusal(
        lambda: pipeline_parameters_request(json.dumps(DEFINITION), parse_param_pairs(pairs))
    )
    assert local == sagemaker == message
    assert "\n" not in message
    assert ExecutionStore(tmp_path).list() == []  # refused before an execution is recorded


def test_accepted_values_are_typed_locally_and_rendered_as_sagemaker_takes_them() -> None:
    overrides = parse_param_pairs(["lr=1e-3", "Epochs=007", "Augment=TRUE", "Status=Rejected"])
    assert parameter_values(DEFINITION, overrides) == {
        "lr": 0.001,
        "Epochs": 7,
        "Status": "Rejected",
        "Augment": True,
    }
    assert pipeline_parameters_request(json.dumps(DEFINITION), overrides) == [
        {"Name": "lr", "Value": "0.001"},
        {"Name": "Epochs", "Value": "7"},
        {"Name": "Augment", "Value": "true"},
        {"Name": "Status", "Value": "Rejected"},
    ]
    # Not overridden: the local engine takes the default, SageMaker is left to apply its own.
    assert parameter_values(DEFINITION, {}) == {
        "lr": 0.001,
        "Epochs": 3,
        "Status": "Approved",
        "Augment": False,
    }
    assert pipeline_parameters_request(DEFINITION, {}) == []
    assert parse_param_pairs([" lr =0.5", "Status=a=b"]) == {"lr": "0.5", "Status": "a=b"}


def test_a_parameter_without_default_must_be_given_on_both_engines() -> None:
    definition = {"Parameters": [{"Name": "Data", "Type": "String"}], "Steps": []}
    message = "parameter 'Data' has no default value: pass --param Data=VALUE"
    assert _refusal(lambda: parameter_values(definition, {})) == message
    assert _refusal(lambda: pipeline_parameters_request(definition, {})) == message
    assert pipeline_parameters_request(definition, {"Data": "s3://b/d"}) == [
        {"Name": "Data", "Value": "s3://b/d"}
    ]


def test_floats_must_be_finite_and_enums_exact() -> None:
    status = {"Name": "Status", "Type": "String", "EnumValues": ["Approved", "Rejected"]}
    assert coerce_parameter(status, "Approved") == "Approved"
    with pytest.raises(ParameterError, match="'Status' must be one of Approved, Rejected; got 'approved'"):
        coerce_parameter(status, "approved")
    threshold = {"Name": "Threshold", "Type": "Float"}
    for value in ("nan", "inf", "-Infinity", float("nan"), True):
        with pytest.raises(ParameterError, match=f"'Threshold' is Float; {value!r} is not a valid Float"):
            coerce_parameter(threshold, value)
    assert coerce_parameter(threshold, "0.5") == 0.5
    assert json.dumps(coerce_parameter(threshold, "1e3")) == "1000.0"


# --- through the command line, on the real build definition --------------------------------------

#: The same refusals spelled with the build pipeline's own parameters (it declares no Integer).
CLI_REFUSED = {
    "nan": ["AccuracyThreshold=nan"],
    "inf": ["AccuracyThreshold=inf"],
    "not a float": ["AccuracyThreshold=high"],
    "repeated": ["AccuracyThreshold=0.8", "AccuracyThreshold=0.9"],
    "enum": ["ModelApprovalStatus=approved"],
    "no '='": ["AccuracyThreshold"],
    "unknown": ["Accuracy=0.9"],
}


def _error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def local_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped local config on a store of its own that holds some data (so ``run`` gets as far as
    the parameters), with no fork server (nothing should run)."""
    monkeypatch.setenv(ENABLE_ENV, "0")
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"] = {"root": str(tmp_path / "root")}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    ObjectStore(tmp_path / "root").put_bytes(raw["data"]["s3_uri"] + "train/a/1.jpg", b"jpeg")
    return path


@pytest.fixture
def deployed(local_config: Path, tmp_path: Path, aws_env: Any) -> Path:  # noqa: F811
    """A SageMaker config whose pipeline on (moto's) SageMaker is the very definition ``run`` builds."""
    from pipeline.definition.document import build_definition

    name = "dogpipe-params"
    raw = {
        "engine": "sagemaker",
        "project": {"name": name, "region": REGION, "bucket": BUCKET, "prefix": "dp"},
        "data": {"s3_uri": f"s3://{BUCKET}/data/"},
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    boto3.client("sagemaker", region_name=REGION).create_pipeline(
        PipelineName=name,
        PipelineDefinition=build_definition(load_config(local_config)),
        RoleArn=aws_env.role_arn,
    )
    return path


@pytest.mark.parametrize("pairs", CLI_REFUSED.values(), ids=CLI_REFUSED.keys())
def test_run_and_start_print_the_same_line_and_start_nothing(
    pairs: list[str], local_config: Path, deployed: Path, tmp_path: Path
) -> None:
    params = [word for pair in pairs for word in ("--param", pair)]
    run = CliRunner().invoke(cli, ["run", "--config", str(local_config), *params])
    start = CliRunner().invoke(cli, ["start", "--config", str(deployed), *params])
    assert _error_line(run) == _error_line(start)
    assert ExecutionStore(tmp_path / "root").list() == []
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert (
        sagemaker.list_pipeline_executions(PipelineName="dogpipe-params")["PipelineExecutionSummaries"] == []
    )


def test_start_sends_the_checked_values_as_strings(deployed: Path) -> None:
    started = CliRunner().invoke(
        cli,
        [
            "start",
            "--config",
            str(deployed),
            "--param",
            "AccuracyThreshold=.85",
            "--param",
            "ModelApprovalStatus=Approved",
        ],
    )
    assert started.exit_code == 0, started.output
    arn = started.output.splitlines()[0]
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sent = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert sent == [
        {"Name": "AccuracyThreshold", "Value": "0.85"},
        {"Name": "ModelApprovalStatus", "Value": "Approved"},
    ]
