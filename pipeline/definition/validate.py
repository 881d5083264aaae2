"""``validate_definition``: catch a broken pipeline definition before SageMaker (or the local engine) does.

Two kinds of checks, each problem naming the step and the JSON path:

* the DAG: unique step names, ``DependsOn`` targets, no cycles, every ``{"Get": ...}`` names an existing
  parameter, execution variable, step *and* a property that step type has (from botocore's Describe*
  output shape), and every property file a ``Std:JsonGet`` reads exists on that step;
* each job step's ``Arguments`` against botocore's SageMaker *request* shape of its API: unknown fields,
  missing required fields, wrong types, enum values, lengths and patterns. An expression
  (``Get``/``Std:Join``/``Std:JsonGet``) is accepted wherever a value goes, since it is resolved at run time;
* the hyperparameters of a Training or Tuning step that runs ``train.py``: every name must be declared in
  ``training_code/hyperparameters.py`` (train.py refuses the others at start).

* each step object against what the pipeline-definition schema allows around it
  (:mod:`pipeline.definition.schema`): the keys of the step, and the Endpoint step's narrower arguments.

AWS's published JSON schema of pipeline definitions is stale for API fields (botocore's service model
is current), but it is what CreatePipeline holds the step envelope to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from pipeline.definition.reader import (
    DefinitionFormatError,
    StepNode,
    dag_problems,
    expressions,
    own_arguments,
    parse_definition,
    step_of_reference,
    steps_of,
)
from pipeline.definition.run_time_length import RunTimeLength
from pipeline.definition.schema import schema_problems
from training_code.hyperparameters import unknown_message, unknown_names

#: Step type → (create API validated against, Describe API whose output holds the step's properties).
STEP_APIS: dict[str, tuple[str, str]] = {
    "Processing": ("CreateProcessingJob", "DescribeProcessingJob"),
    "Training": ("CreateTrainingJob", "DescribeTrainingJob"),
    "Tuning": ("CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob"),
    "RegisterModel": ("CreateModelPackage", "DescribeModelPackage"),
    "Model": ("CreateModel", "DescribeModel"),
    "EndpointConfig": ("CreateEndpointConfig", "DescribeEndpointConfig"),
    "Endpoint": ("CreateEndpoint", "DescribeEndpoint"),
}
#: Names SageMaker Pipelines fills in at run time, so the definition may omit them.
RUNTIME_NAMES = frozenset(
    {"ProcessingJobName", "TrainingJobName", "HyperParameterTuningJobName", "ModelName", "EndpointConfigName"}
)
EXECUTION_VARIABLES = frozenset(
    {
        "PipelineName",
        "PipelineArn",
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "StartDateTime",
        "CurrentDateTime",
    }
)
EXPRESSION_KEYS = frozenset({"Get", "Std:Join", "Std:JsonGet"})
_PROPERTY_PART = re.compile(r"\.?([A-Za-z0-9_]+)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where (step, JSON path) and what."""

    step: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.step}: {self.path}: {self.message}" if self.path else f"{self.step}: {self.message}"


@cache
def sagemaker_model() -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def _operation(name: str) -> OperationModel:
    return sagemaker_model().operation_model(name)


def is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSION_KEYS


# --- request shapes -------------------------------------------------------------------------------


def _check_scalar(shape: Shape, value: Any, path: str) -> list[tuple[str, str]]:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            return [(path, f"expected a string, got {type(value).__name__}")]
        problems = []
        if shape.enum and value not in shape.enum:
            problems.append((path, f"{value!r} is not one of {sorted(shape.enum)}"))
        metadata = shape.metadata
        if "min" in metadata and len(value) < metadata["min"]:
            problems.append((path, f"shorter than {metadata['min']} characters"))
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append((path, f"longer than {metadata['max']} characters"))
        pattern = metadata.get("pattern")
        if pattern and not problems:
            try:
                matches = re.fullmatch(pattern, value, flags=re.DOTALL) is not None
            except re.error:  # a Java-only construct; the service will check it
                matches = True
            if not matches:
                problems.append((path, f"{value!r} does not match the pattern {pattern}"))
        return problems
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [(path, f"expected an integer, got {type(value).__name__}")]
        metadata = shape.metadata
        if "min" in metadata and value < metadata["min"]:
            return [(path, f"{value} is below the minimum {metadata['min']}")]
        if "max" in metadata and value > metadata["max"]:
            return [(path, f"{value} is above the maximum {metadata['max']}")]
        return []
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [(path, f"expected a number, got {type(value).__name__}")]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [(path, f"expected true/false, got {type(value).__name__}")]
    if kind == "timestamp":
        return [] if isinstance(value, (str, int, float)) else [(path, "expected a timestamp")]
    if kind == "blob":
        return [] if isinstance(value, str) else [(path, "expected base64 text")]
    return []


def check_shape(
    shape: Shape,
    value: Any,
    path: str,
    exempt: frozenset[str] = frozenset(),
    lengths: RunTimeLength | None = None,
) -> list[tuple[str, str]]:
    """Type-check ``value`` against a botocore shape; ``exempt`` lists top-level required names to skip.
    An expression is checked only for the longest string it can become (``lengths``), where a limit
    applies and the definition fixes its parts."""
    if is_expression(value):
        return _check_run_time_length(shape, value, path, lengths)
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [(path, f"expected an object ({shape.name}), got {type(value).__name__}")]
        problems = []
        for key in shape.required_members:
            if key not in value and key not in exempt:
                problems.append((f"{path}.{key}" if path else key, "required field missing"))
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in shape.members:
                problems.append((where, f"unknown field for {shape.name}"))
            else:
                problems.extend(check_shape(shape.members[key], item, where, lengths=lengths))
        return problems
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [(path, f"expected a list, got {type(value).__name__}")]
        problems = []
        metadata = shape.metadata
        if "min" in metadata and len(value) < metadata["min"]:
            problems.append((path, f"fewer than {metadata['min']} items"))
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append((path, f"more than {metadata['max']} items"))
        for index, item in enumerate(value):
            problems.extend(check_shape(shape.member, item, f"{path}[{index}]", lengths=lengths))
        return problems
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return [(path, f"expected a map, got {type(value).__name__}")]
        problems = []
        for key, item in value.items():
            problems.extend(check_shape(shape.key, key, f"{path}[{key!r}]"))
            problems.extend(check_shape(shape.value, item, f"{path}[{key!r}]", lengths=lengths))
        return problems
    return _check_scalar(shape, value, path)


def _check_run_time_length(
    shape: Shape, value: Any, path: str, lengths: RunTimeLength | None
) -> list[tuple[str, str]]:
    limit = shape.metadata.get("max") if shape.type_name == "string" else None
    longest = lengths.of(value) if lengths is not None and limit is not None else None
    if longest is None or limit is None or longest <= limit:
        return []
    return [(path, f"can be {longest} characters at run time (parameters at their defaults), over the "
                   f"limit of {limit}: shorten project.prefix or data.s3_uri")]  # fmt: skip


def check_arguments(node: StepNode, lengths: RunTimeLength | None = None) -> list[Problem]:
    """The step's ``Arguments`` against the request shape of its create API."""
    create, _ = STEP_APIS[node.type]
    shape = _operation(create).input_shape
    base = f"{node.path}.Arguments"
    return [
        Problem(node.name, f"{base}.{path}" if path else base, f"{create}: {message}")
        for path, message in check_shape(shape, node.raw.get("Arguments"), "", RUNTIME_NAMES, lengths)
    ]


# --- property references --------------------------------------------------------------------------


def property_error(step_type: str, property_path: str) -> str | None:
    """Why ``property_path`` (after ``Steps.<name>.``) is not a property of ``step_type``, or None."""
    if step_type not in STEP_APIS:
        return f"a {step_type} step has no properties"
    shape: Shape = _operation(STEP_APIS[step_type][1]).output_shape
    position = 0
    while position < len(property_path):
        match = _PROPERTY_PART.match(property_path, position)
        if not match or match.end() == position:
            return f"cannot parse property path {property_path!r}"
        position = match.end()
        member, key, dkey, index = match.groups()
        if member is not None:
            if not isinstance(shape, StructureShape) or member not in shape.members:
                return f"{shape.name} has no property {member!r}"
            shape = shape.members[member]
        elif isinstance(shape, ListShape):
            shape = shape.member  # lists are indexed by position or, for named outputs, by name
        elif isinstance(shape, MapShape) and index is None:
            shape = shape.value
        else:
            return f"{shape.name} cannot be indexed with [{key or dkey or index}]"
    return None


def check_reference(reference: str, steps: dict[str, StepNode], parameters: set[str]) -> str | None:
    """Why a ``Get`` reference does not resolve, or None."""
    kind, _, rest = reference.partition(".")
    if kind == "Parameters":
        return None if rest in parameters else f"unknown parameter {rest!r}"
    if kind == "Execution":
        return None if rest in EXECUTION_VARIABLES else f"unknown execution variable {rest!r}"
    if kind != "Steps":
        return f"unknown reference kind {kind!r} in {reference!r}"
    name = step_of_reference(reference) or ""
    if name not in steps:
        return None  # an unknown step is the DAG check's (reader.dag_problems) to report
    prop = reference[len(f"Steps.{name}.") :]
    if prop.startswith("PropertyFiles."):
        file_name = prop[len("PropertyFiles.") :]
        files = steps[name].property_files()
        return None if file_name in files else f"step {name!r} has no property file {file_name!r}"
    error = property_error(steps[name].type, prop)
    return f"{reference!r}: {error}" if error else None


# --- train.py's hyperparameters ---------------------------------------------------------------------


def _hyperparameter_names(node: StepNode) -> tuple[str, dict[str, Any]]:
    """(JSON path, hyperparameters) a Training or Tuning step hands its script; tuned names included."""
    arguments = node.arguments
    if node.type == "Training":
        return f"{node.path}.Arguments.HyperParameters", dict(arguments.get("HyperParameters") or {})
    definition = arguments.get("TrainingJobDefinition") or {}
    ranges = (arguments.get("HyperParameterTuningJobConfig") or {}).get("ParameterRanges") or {}
    tuned = {str(item.get("Name")): None for kind in ranges.values() for item in kind or []}
    static = dict(definition.get("StaticHyperParameters") or {})
    return f"{node.path}.Arguments.TrainingJobDefinition.StaticHyperParameters", {**static, **tuned}


def check_hyperparameters(node: StepNode) -> list[Problem]:
    """Names ``train.py`` does not declare (``training_code/hyperparameters.py``) in a step that runs it:
    the job would stop at start, so ``validate`` says so before any job runs."""
    path, hyperparameters = _hyperparameter_names(node)
    program = str(hyperparameters.get("sagemaker_program", "")).strip('"')
    unknown = unknown_names(list(hyperparameters)) if program == "train.py" else []
    return [Problem(node.name, path, unknown_message(unknown))] if unknown else []


# --- the whole definition ---------------------------------------------------------------------------


def _dag_problems(definition: dict[str, Any], nodes: list[StepNode]) -> list[Problem]:
    """The DAG check every engine shares (``reader.dag_problems``), then each reference's target:
    parameters, execution variables and the properties a step of that type has."""
    problems = [Problem(p.step, p.path, p.message) for p in dag_problems(definition)]
    steps: dict[str, StepNode] = {}
    for node in nodes:
        steps.setdefault(node.name, node)
    parameters = {str(p.get("Name")) for p in definition.get("Parameters") or [] if isinstance(p, dict)}
    for node in nodes:
        own = {**node.raw, "Arguments": own_arguments(node.raw)}
        for path, reference in expressions(own, node.path):
            error = check_reference(reference, steps, parameters)
            if error:
                problems.append(Problem(node.name, path, error))
    return problems


def validate_definition(json_text: str) -> list[Problem]:
    """Every problem found in a pipeline definition; an empty list means it is sound."""
    try:
        definition = parse_definition(json_text)
    except DefinitionFormatError as error:
        return [Problem("(definition)", "", str(error))]
    nodes = steps_of(definition)
    problems = _dag_problems(definition, nodes)
    problems.extend(Problem(node.name, path, message) for node, path, message in schema_problems(nodes))
    lengths = RunTimeLength(definition, {node.name: node.raw for node in nodes})
    for node in nodes:
        if node.type in STEP_APIS:
            problems.extend(check_arguments(node, lengths))
        if node.type in ("Training", "Tuning"):
            problems.extend(check_hyperparameters(node))
    return problems
