"""Building the definition: zero AWS calls, identical bytes, every stage present, golden file current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.client
import pytest
import requests
import urllib3
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import DEFAULT_CONFIG, load_config, parse_config
from pipeline.definition.document import build_definition
from pipeline.definition.validate import validate_definition
from tests.golden.regenerate import CODE_SHA256_PLACEHOLDER, GOLDEN


class NetworkCall(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every botocore API call and every HTTP send raises (and is recorded)."""
    calls: list[str] = []

    def refuse(name: str):
        def _raise(*args: Any, **kwargs: Any) -> None:
            calls.append(f"{name} {args[1:2]}")
            raise NetworkCall(f"{name} called while building")

        return _raise

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse("botocore"))
    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", refuse("urllib3"))
    monkeypatch.setattr(requests.Session, "send", refuse("requests"))
    return calls


@pytest.fixture(scope="module")
def shipped_text() -> str:
    return build_definition(load_config(DEFAULT_CONFIG))


def _steps(definition: dict) -> dict[str, dict]:
    found = {}

    def walk(steps: list[dict]) -> None:
        for step in steps:
            found[step["Name"]] = step
            if step["Type"] == "Condition":
                walk(step["Arguments"]["IfSteps"])
                walk(step["Arguments"]["ElseSteps"])

    walk(definition["Steps"])
    return found


def test_two_builds_are_byte_identical_without_network(no_network: list[str], shipped_text: str) -> None:
    again = build_definition(load_config(DEFAULT_CONFIG))
    assert no_network == []
    assert again == shipped_text


def test_the_default_asks_nothing_of_sagemaker_debugger(shipped_text: str) -> None:
    """Debugger is closed to new AWS customers: the shipped config sends none of its fields, while
    train.py still records the trace and the profile that DebugRules and the report read."""
    train = _steps(json.loads(shipped_text))["Train"]["Arguments"]
    for field in ("DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"):
        assert field not in train
    assert train["ProfilerConfig"] == {"DisableProfiler": True}
    assert train["HyperParameters"]["debug_hook"] == "true" and train["HyperParameters"]["profiler"] == "true"


def test_all_stages_and_debugger_fields() -> None:
    raw = load_config(DEFAULT_CONFIG).model_dump(mode="json")
    raw["debugger"].update(platform_hook=True, platform_rules=True, platform_profiler=True)
    shipped_text = build_definition(parse_config(raw))
    steps = _steps(json.loads(shipped_text))
    expected = {
        "Preprocess": "Processing",
        "Tune": "Tuning",
        "Train": "Training",
        "Evaluate": "Processing",
        "Compare": "Processing",
        "DebugRules": "Processing",
        "CheckRules": "Condition",
        "CheckAccuracy": "Condition",
        "CheckProduction": "Condition",
        "CheckNewModel": "Condition",
        "AccuracyTooLow": "Fail",
        "DebugRulesFailed": "Fail",
        "WorseThanProduction": "Fail",
        "Register": "RegisterModel",
        "CreateModel": "Model",
        "EndpointConfig": "EndpointConfig",
        "Deploy": "Endpoint",
    }
    assert validate_definition(shipped_text) == []
    assert {name: step["Type"] for name, step in steps.items()} == expected
    train = steps["Train"]["Arguments"]
    assert train["DebugHookConfig"]["HookParameters"] == {"save_interval": "100", "eval.save_interval": "10"}
    assert {r["RuleConfigurationName"] for r in train["DebugRuleConfigurations"]} == {
        "VanishingGradient",
        "Overfit",
        "Overtraining",
        "PoorWeightInitialization",
        "LossNotDecreasing",
    }
    assert train["ProfilerRuleConfigurations"][0]["RuleConfigurationName"] == "ProfilerReport"
    assert train["HyperParameters"]["lr"] == {"Get": "Steps.Tune.BestTrainingJob.TunedHyperParameters['lr']"}
    tuning = steps["Tune"]["Arguments"]["TrainingJobDefinition"]["StaticHyperParameters"]
    assert tuning["debug_hook"] == "false" and "lr" not in tuning
    for name in ("Preprocess", "Train", "Evaluate"):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
        assert steps[name]["RetryPolicies"]


def test_the_production_gate_follows_its_switch_and_the_comparison_reaches_the_package() -> None:
    """Compare always runs (never from the cache: production changes under the same inputs) and its
    comparison.json is the package's model-quality constraints with the verdict in its metadata; only
    ``must_not_be_worse_than_production`` puts CheckProduction between CheckAccuracy and Register."""
    raw = load_config(DEFAULT_CONFIG).model_dump(mode="json")
    raw["evaluation"].update(production_tolerance=0.02, significance_alpha=0.1)
    gated = _steps(json.loads(build_definition(parse_config(raw))))
    compare = gated["Compare"]
    assert "CacheConfig" not in compare and compare["DependsOn"] == ["Evaluate"]
    arguments = compare["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--gate") + 1] == "true"
    assert arguments[arguments.index("--tolerance") + 1] == "0.02"
    assert arguments[arguments.index("--alpha") + 1] == "0.1"
    assert arguments[arguments.index("--production-endpoint") + 1] == raw["deploy"]["production_endpoint"]
    check = gated["CheckProduction"]["Arguments"]
    assert check["IfSteps"][0]["Name"] == "CheckNewModel"
    assert [step["Name"] for step in check["ElseSteps"]] == ["WorseThanProduction"]
    accuracy_branch = gated["CheckAccuracy"]["Arguments"]["IfSteps"]
    assert [step["Name"] for step in accuracy_branch] == ["CheckProduction"]

    raw["evaluation"]["must_not_be_worse_than_production"] = False
    ungated = _steps(json.loads(build_definition(parse_config(raw))))
    assert "CheckProduction" not in ungated and "WorseThanProduction" not in ungated
    arguments = ungated["Compare"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--gate") + 1] == "false"
    register = ungated["Register"]["Arguments"]
    constraints = register["ModelMetrics"]["ModelQuality"]["Constraints"]
    assert constraints["ContentType"] == "application/json"
    assert "Steps.Compare.ProcessingOutputConfig" in json.dumps(constraints["S3Uri"])
    metadata = register["CustomerMetadataProperties"]
    assert metadata["delta_accuracy"] == {
        "Std:JsonGet": {
            "Path": "registry_metadata.delta_accuracy",
            "PropertyFile": {"Get": "Steps.Compare.PropertyFiles.ComparisonReport"},
        }
    }
    assert {"comparison_report", "comparison_status", "gate_passed", "mcnemar_p"} <= set(metadata)


def test_code_is_referenced_by_content_hash(shipped_text: str) -> None:
    from pipeline.definition.code import package_code

    code = package_code()
    cfg = load_config(DEFAULT_CONFIG)
    assert code.sourcedir_uri(cfg) in shipped_text and code.source_prefix_uri(cfg) in shipped_text
    assert "/tmp" not in shipped_text and "sagemaker-us-east-1-" not in shipped_text


def test_golden_definition_is_current(shipped_text: str) -> None:
    from pipeline.definition.code import package_code

    normalised = shipped_text.replace(package_code().sha256, CODE_SHA256_PLACEHOLDER)
    assert normalised == GOLDEN.read_text(), "pipeline changed: review, then `make golden`"


def test_switches_change_the_dag() -> None:
    raw = json.loads(json.dumps(load_config(DEFAULT_CONFIG).model_dump(mode="json")))
    raw["tuning"]["enabled"] = False
    raw["deploy"]["enabled"] = False
    raw["debugger"].update(hook=False, profiler=False, platform_rules=False)
    steps = _steps(json.loads(build_definition(parse_config(raw))))
    assert "Tune" not in steps and "Deploy" not in steps and "Register" in steps
    train = steps["Train"]["Arguments"]
    assert train["HyperParameters"]["lr"] == "0.0003" and train["HyperParameters"]["debug_hook"] == "false"
    assert "DebugHookConfig" not in train and train["ProfilerConfig"] == {"DisableProfiler": True}
    assert [i["InputName"] for i in steps["DebugRules"]["Arguments"]["ProcessingInputs"]] == [
        "training_output",
        "code",
    ]


@pytest.mark.parametrize("command", [["definition", "--output-file"], ["sample-data"]])
def test_an_output_path_that_cannot_be_written_is_one_line_naming_it(
    tmp_path: Path, command: list[str]
) -> None:
    """Shared by every command (the CLI group): an OSError on a user's path exits 1 without a traceback."""
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    target = blocker / "out"
    result = CliRunner().invoke(cli, [*command, str(target)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith(f"Error: {target}") and "Not a directory" in result.output
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("already", "duplicate", "registers"),
    [(False, "false", True), (True, "false", False), (True, "true", True), (False, "true", True)],
)
def test_a_model_the_group_holds_is_registered_again_only_when_register_duplicate_asks(
    shipped_text: str, already: bool, duplicate: str, registers: bool
) -> None:
    """Issue 25: the Compare job looks up the very URI Register would record (Train's artifact, the
    earlier job's on a cache hit); CheckNewModel, as the local engine evaluates it from the definition,
    runs Register and the staging deploy for a new model or with ``--param RegisterDuplicate=true``,
    and nothing (no Fail step) for a model already registered."""
    from pipeline.definition.parameters import parameter_values
    from pipeline.local.condition import evaluate_all
    from pipeline.local.expressions import Scope, resolve

    definition = json.loads(shipped_text)
    steps = _steps(definition)
    arguments = steps["Compare"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    register_container = steps["Register"]["Arguments"]["InferenceSpecification"]["Containers"][0]
    assert arguments[arguments.index("--candidate-model-uri") + 1] == register_container["ModelDataUrl"]
    check = steps["CheckNewModel"]["Arguments"]
    assert [step["Name"] for step in check["IfSteps"]] == [
        "Register",
        "CreateModel",
        "EndpointConfig",
        "Deploy",
    ]
    assert check["ElseSteps"] == []

    comparison = {"registered": {"already": already, "version": 1 if already else None}}
    scope = Scope(
        parameters=parameter_values(definition, {"RegisterDuplicate": duplicate}),
        execution={},
        step_properties=lambda step: {},
        property_file=lambda step, name: (
            comparison if (step, name) == ("Compare", "ComparisonReport") else {}
        ),
    )
    assert evaluate_all(resolve(check["Conditions"], scope)) is registers


def test_register_duplicate_is_a_boolean_parameter_defaulting_to_false(shipped_text: str) -> None:
    from pipeline.definition.parameters import ParameterError, parameter_values, pipeline_parameters_request

    assert parameter_values(shipped_text, {})["RegisterDuplicate"] is False
    request = pipeline_parameters_request(shipped_text, {"RegisterDuplicate": "TRUE"})
    assert request == [{"Name": "RegisterDuplicate", "Value": "true"}]
    with pytest.raises(ParameterError, match="'RegisterDuplicate' is Boolean; 'yes' is not a valid Boolean"):
        parameter_values(shipped_text, {"RegisterDuplicate": "yes"})


def test_preprocess_on_two_instances_shards_its_input_and_merges_its_stats(
    tmp_path: Path, shipped_text: str
) -> None:
    """``processing.instance_count: 2``: the data input is ShardedByS3Key (the code stays whole), a
    one-instance MergeStats step reduces the parts, and Tune/Train read its stats; `validate` passes."""
    config = tmp_path / "sharded.yaml"
    text = DEFAULT_CONFIG.read_text()
    assert "processing:\n  instance_type: ml.m5.xlarge\n" in text
    config.write_text(
        text.replace(
            "processing:\n  instance_type: ml.m5.xlarge\n",
            "processing:\n  instance_type: ml.m5.xlarge\n  instance_count: 2\n",
        ).replace(
            "s3://my-dogpipe-bucket/datasets/dogImages.zip", "s3://my-dogpipe-bucket/datasets/dogImages/"
        )
    )
    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "definition.json"
    result = CliRunner().invoke(cli, ["definition", "--config", str(config), "--output-file", str(out)])
    assert result.exit_code == 0, result.output
    definition = json.loads(out.read_text())
    assert validate_definition(out.read_text()) == []
    steps = _steps(definition)

    preprocess = steps["Preprocess"]["Arguments"]
    assert preprocess["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    inputs = preprocess["ProcessingInputs"]
    distribution = {item["InputName"]: item["S3Input"]["S3DataDistributionType"] for item in inputs}
    assert distribution == {"data": "ShardedByS3Key", "code": "FullyReplicated"}

    merge = steps["MergeStats"]["Arguments"]
    assert merge["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert merge["AppSpecification"]["ContainerEntrypoint"][-1] == "preprocess_merge.py"
    parts = next(item for item in merge["ProcessingInputs"] if item["InputName"] == "parts")["S3Input"]
    stats = "ProcessingOutputConfig.Outputs['stats'].S3Output.S3Uri"
    assert parts["S3Uri"] == {"Get": f"Steps.Preprocess.{stats}"}
    merged = {"Get": f"Steps.MergeStats.{stats}"}
    train_channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in steps["Train"]["Arguments"]["InputDataConfig"]
    }
    assert train_channels["stats"] == merged
    tune = steps["Tune"]["Arguments"]["TrainingJobDefinition"]["InputDataConfig"]
    tune_stats = next(channel for channel in tune if channel["ChannelName"] == "stats")
    assert tune_stats["DataSource"]["S3DataSource"]["S3Uri"] == merged
    assert "MergeStats" not in _steps(json.loads(shipped_text))  # one instance: nothing to merge


STAND_IN_CHECK = """
import sys
from pydantic import BaseModel
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.definition.document import build_definition
from pipeline.definition.sdk import STAND_INS
build_definition(load_config(DEFAULT_CONFIG))
assert not any(name in sys.modules for name in STAND_INS), [n for n in STAND_INS if n in sys.modules]
assert "defer_build" not in BaseModel.model_config
import pandas
from sagemaker.serve.model_builder import ModelBuilder
assert len(pandas.DataFrame({"a": [1, 2]})) == 2
assert ModelBuilder.__module__ == "sagemaker.serve.model_builder"
import sagemaker.mlops
print("stand-in", sagemaker.mlops.ModelBuilder.__init__.__qualname__)
# While a build runs, only SDK modules get stand-ins: another importer (a thread preparing mlflow's
# store, say) gets the real module.
from pipeline.definition.sdk import skipping_unused_imports
del sys.modules["pandas"]
with skipping_unused_imports():
    sdk_side, other_side = {"__name__": "sagemaker.core.fake"}, {"__name__": "pipeline.fake"}
    exec("from pandas import DataFrame", sdk_side)
    assert sdk_side["DataFrame"].__module__ == "pandas" and not hasattr(sys.modules.get("pandas"), "Series")
    exec("import pandas", other_side)
    assert other_side["pandas"].Series is not None
"""


def test_stand_ins_serve_the_build_only_and_real_modules_load_afterwards() -> None:
    """The build loads less of the SDK (pipeline/definition/sdk.py: STAND_INS, deferred pydantic
    builds); afterwards nothing of that remains: the real modules import and work in the same process."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", STAND_IN_CHECK], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # What the build saw was the stand-in: the SDK's package keeps it (dogpipe never uses ModelBuilder).
    assert result.stdout.strip() == "stand-in _stand_in_module.<locals>.refuse"
