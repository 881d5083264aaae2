"""Resolve the expressions of a pipeline definition the way SageMaker does at run time.

A definition holds literal JSON plus four kinds of expression objects: ``{"Get": "Parameters.X"}``,
``{"Get": "Execution.PipelineExecutionId"}``, ``{"Get": "Steps.S.Prop.Path['key'][0]"}``,
``{"Std:Join": {"On": "/", "Values": [...]}}`` and ``{"Std:JsonGet": {"PropertyFile": ..., "Path": ...}}``.
Step properties are looked up in the Describe* response a step produced, so a property the real API
does not return is an error here too, naming the step and the property.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.definition.reader import (
    OUTPUT_URI_PROPERTY,
    PROPERTY_FILE_REFERENCE,
    property_file_spec,
    property_file_uri,
)

EXECUTION_VARIABLES = (
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "PipelineName",
    "PipelineArn",
    "StartDateTime",
    "CurrentDateTime",
)
_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class ExpressionError(ValueError):
    """An expression that cannot be resolved: unknown parameter, step, property or JSON path."""


@dataclass
class Scope:
    """What expressions can see: parameter values, execution variables, and finished steps.

    ``step_properties(name)`` returns the Describe* response of a finished step, and
    ``property_file(step, name)`` the parsed JSON of one of its property files; both raise
    :class:`ExpressionError` when the step has not produced them.
    """

    parameters: Mapping[str, Any]
    execution: Mapping[str, Any]
    step_properties: Callable[[str], Mapping[str, Any]]
    property_file: Callable[[str, str], Any]


def parse_path(path: str) -> list[str | int]:
    """``A.B['x'][0].C`` → ``["A", "B", "x", 0, "C"]``; a malformed path raises."""
    tokens: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            raise ExpressionError(f"malformed property path {path!r} at character {position}")
        name, index, quoted, double_quoted = match.groups()
        if index is not None:
            tokens.append(int(index))
        else:
            tokens.append(name if name is not None else quoted if quoted is not None else double_quoted)
        position = match.end()
    return tokens


def _member_by_name(items: list[Any], key: str) -> Any:
    """SageMaker indexes lists of named structures by name (``Outputs['train']``, metric names)."""
    for item in items:
        if isinstance(item, Mapping) and any(
            field.endswith("Name") and value == key for field, value in item.items()
        ):
            return item
    raise KeyError(key)


def walk(value: Any, tokens: list[str | int]) -> Any:
    """Follow ``tokens`` into nested dicts/lists; raises KeyError/IndexError/TypeError on a miss."""
    for token in tokens:
        if isinstance(value, list):
            value = value[token] if isinstance(token, int) else _member_by_name(value, token)
        elif isinstance(value, Mapping) and isinstance(token, str):
            value = value[token]
        else:
            raise KeyError(token)
    return value


def get_step_property(properties: Mapping[str, Any], step: str, path: str) -> Any:
    """The property ``path`` of ``step``; raises :class:`ExpressionError` naming both when missing."""
    try:
        return walk(properties, parse_path(path))
    except (KeyError, IndexError, TypeError):
        available = ", ".join(sorted(properties)) or "none"
        raise ExpressionError(
            f"step {step!r} has no property {path!r} (its top-level properties: {available})"
        ) from None


def json_path(document: Any, path: str, where: str) -> Any:
    """JsonGet's path (``metrics.accuracy.value``, ``a[0].b``) into a parsed JSON document."""
    try:
        return walk(document, parse_path(path))
    except (KeyError, IndexError, TypeError):
        raise ExpressionError(f"JsonGet: path {path!r} not found in {where}") from None


def property_file_location(step: Mapping[str, Any], name: str, properties: Mapping[str, Any]) -> str:
    """The URI of property file ``name`` of a finished ``step`` (its definition), from the S3 prefix
    of the output the file's spec names; :class:`ExpressionError` naming what is missing."""
    try:
        spec = property_file_spec(step, name)
    except KeyError as error:
        raise ExpressionError(error.args[0]) from None
    output = get_step_property(
        properties, str(step.get("Name")), OUTPUT_URI_PROPERTY.format(output=spec.get("OutputName"))
    )
    return property_file_uri(output, spec)


def _get(reference: str, scope: Scope) -> Any:
    kind, _, rest = reference.partition(".")
    if kind == "Parameters":
        if rest not in scope.parameters:
            known = ", ".join(sorted(scope.parameters)) or "none"
            raise ExpressionError(f"unknown pipeline parameter {rest!r} (defined: {known})")
        return scope.parameters[rest]
    if kind == "Execution":
        if rest not in scope.execution:
            raise ExpressionError(
                f"unknown execution variable {rest!r} (known: {', '.join(EXECUTION_VARIABLES)})"
            )
        return scope.execution[rest]
    if kind == "Steps":
        step, _, path = rest.partition(".")
        if not step or not path:
            raise ExpressionError(f"Get {reference!r} must name a step and a property")
        if path.startswith("PropertyFiles."):
            raise ExpressionError(f"{reference!r}: a property file can only be read with Std:JsonGet")
        return get_step_property(scope.step_properties(step), step, path)
    raise ExpressionError(f"Get {reference!r}: expected Parameters., Execution. or Steps.")


def _join(arguments: Mapping[str, Any], scope: Scope) -> str:
    separator = arguments.get("On", "")
    values = resolve(arguments.get("Values", []), scope)
    return str(separator).join(_to_text(value) for value in values)


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _json_get(arguments: Mapping[str, Any], scope: Scope) -> Any:
    path = arguments.get("Path")
    if not isinstance(path, str):
        raise ExpressionError(f"Std:JsonGet needs a Path string, got {path!r}")
    source = arguments.get("PropertyFile")
    if isinstance(source, Mapping) and "Get" in source:
        reference = str(source["Get"])
        match = PROPERTY_FILE_REFERENCE.match(reference)
        if not match:
            raise ExpressionError(
                f"Std:JsonGet PropertyFile must be Steps.<step>.PropertyFiles.<name>, got {reference!r}"
            )
        step, name = match.groups()
        return json_path(scope.property_file(step, name), path, f"property file {name!r} of step {step!r}")
    raise ExpressionError(f"Std:JsonGet needs a PropertyFile reference, got {arguments!r}")


def resolve(value: Any, scope: Scope) -> Any:
    """Replace every expression inside ``value`` (any JSON) by its value."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Get":
                return _get(str(inner), scope)
            if key == "Std:Join":
                return _join(inner, scope)
            if key == "Std:JsonGet":
                return _json_get(inner, scope)
        return {key: resolve(inner, scope) for key, inner in value.items()}
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    return value
