"""Expressions resolve as SageMaker resolves them; unknown references fail naming what is missing."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.definition.reader import referenced_steps
from pipeline.local.expressions import ExpressionError, Scope, parse_path, resolve

TRAIN = {
    "TrainingJobName": "train-1",
    "ModelArtifacts": {"S3ModelArtifacts": "s3://b/models/train-1/output/model.tar.gz"},
    "HyperParameters": {"lr": "0.01"},
    "FinalMetricDataList": [{"MetricName": "valid_accuracy", "Value": 0.75}],
}
PREPROCESS = {
    "ProcessingOutputConfig": {
        "Outputs": [
            {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/data/train"}},
            {"OutputName": "stats", "S3Output": {"S3Uri": "s3://b/data/stats"}},
        ]
    }
}
TUNE = {"TrainingJobSummaries": [{"TrainingJobName": "tune-001"}, {"TrainingJobName": "tune-002"}]}


def scope(files: dict[tuple[str, str], Any] | None = None) -> Scope:
    steps = {"Train": TRAIN, "Preprocess": PREPROCESS, "Tune": TUNE}

    def properties(name: str) -> dict[str, Any]:
        if name not in steps:
            raise ExpressionError(f"step {name!r} has not succeeded")
        return steps[name]

    def property_file(step: str, name: str) -> Any:
        return (files or {})[(step, name)]

    return Scope(
        {"Threshold": 0.7, "Bucket": "b"}, {"PipelineExecutionId": "exec-1"}, properties, property_file
    )


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Steps.Train.ModelArtifacts.S3ModelArtifacts", "s3://b/models/train-1/output/model.tar.gz"),
        ("Steps.Train.HyperParameters['lr']", "0.01"),
        ("Steps.Train.FinalMetricDataList['valid_accuracy'].Value", 0.75),
        ("Steps.Preprocess.ProcessingOutputConfig.Outputs['stats'].S3Output.S3Uri", "s3://b/data/stats"),
        ("Steps.Tune.TrainingJobSummaries[1].TrainingJobName", "tune-002"),
        ("Parameters.Threshold", 0.7),
        ("Execution.PipelineExecutionId", "exec-1"),
    ],
)
def test_get_resolves_properties_parameters_and_execution_variables(reference: str, expected: Any) -> None:
    assert resolve({"Get": reference}, scope()) == expected


def test_join_and_json_get_nest_inside_arguments() -> None:
    files = {("Evaluate", "Report"): {"metrics": {"accuracy": {"value": 0.9}}, "per_class": [0.5, 0.25]}}
    value = {
        "Uri": {
            "Std:Join": {
                "On": "/",
                "Values": ["s3:/", {"Get": "Parameters.Bucket"}, {"Get": "Execution.PipelineExecutionId"}],
            }
        },
        "Accuracy": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"},
                "Path": "metrics.accuracy.value",
            }
        },
        "Second": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"},
                "Path": "per_class[1]",
            }
        },
        "List": [1, {"Get": "Parameters.Threshold"}],
    }
    assert resolve(value, scope(files)) == {
        "Uri": "s3://b/exec-1",
        "Accuracy": 0.9,
        "Second": 0.25,
        "List": [1, 0.7],
    }


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("Steps.Train.ModelArtifacts.S3Uri", "step 'Train' has no property 'ModelArtifacts.S3Uri'"),
        ("Steps.Preprocess.ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri", "Outputs['nope']"),
        ("Steps.Tune.TrainingJobSummaries[5].TrainingJobName", "TrainingJobSummaries[5]"),
        ("Steps.Missing.Foo", "step 'Missing' has not succeeded"),
        ("Parameters.Nope", "unknown pipeline parameter 'Nope'"),
        ("Execution.Nope", "unknown execution variable 'Nope'"),
    ],
)
def test_unknown_references_name_the_step_and_property(reference: str, message: str) -> None:
    with pytest.raises(
        ExpressionError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        resolve({"Get": reference}, scope())


def test_json_get_missing_path_names_the_file() -> None:
    files = {("Evaluate", "Report"): {"metrics": {}}}
    expression = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"},
            "Path": "metrics.accuracy",
        }
    }
    with pytest.raises(
        ExpressionError, match=r"'metrics\.accuracy' not found in property file 'Report' of step 'Evaluate'"
    ):
        resolve(expression, scope(files))


def test_parse_path_and_referenced_steps() -> None:
    assert parse_path("A.B['x-y'][0].C") == ["A", "B", "x-y", 0, "C"]
    with pytest.raises(ExpressionError, match="malformed"):
        parse_path("A..B[")
    value = {
        "X": [
            {"Get": "Steps.A.P"},
            {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.B.PropertyFiles.F"}, "Path": "p"}},
        ],
        "Y": {"Get": "Parameters.Z"},
    }
    assert referenced_steps(value) == {"A", "B"}
