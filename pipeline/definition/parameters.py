"""Pipeline parameters: the one rule for ``--param`` and for the values a definition's Parameters take.

Both engines run the same definition, so a value one would refuse the other must refuse too, with
the same words: ``dogpipe run`` (the local engine, :func:`parameter_values`) and ``dogpipe start``
(SageMaker's StartPipelineExecution, :func:`pipeline_parameters_request`) both read ``--param``
through :func:`parse_param_pairs` and check every value with :func:`coerce_parameter`, which honours
the declared Type (a Float must be finite: SageMaker's API takes JSON numbers, and ``nan`` compares
false with everything, so a gate on it would decide nothing) and EnumValues. Every refusal is a
:class:`ParameterError` whose message is one line naming the parameter and the value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any


class ParameterError(ValueError):
    """A ``--param`` pair or parameter value the pipeline would refuse; the message names it."""


def parse_param_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["Name=Value", …]`` as ``{"Name": "Value"}``. A pair without ``=``, with an empty name or a
    name given twice is refused: with two values for one name, either choice would surprise someone."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            raise ParameterError(f"--param expects NAME=VALUE, got {pair!r} (no '=')")
        if not name:
            raise ParameterError(f"--param expects NAME=VALUE, got {pair!r} (no name before '=')")
        if name in values:
            raise ParameterError(
                f"--param {name} given twice ({values[name]!r} and {value!r}); pass each parameter once"
            )
        values[name] = value
    return values


def coerce_parameter(spec: Mapping[str, Any], value: Any) -> Any:
    """``value`` (a CLI string or a JSON value) as the parameter's declared Type, and one of its
    EnumValues when it lists some."""
    kind, name = spec.get("Type", "String"), spec["Name"]
    try:
        coerced = _coerce(kind, value)
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(f"parameter {name!r} is {kind}; {value!r} is not a valid {kind}") from None
    allowed = spec.get("EnumValues")
    if allowed and coerced not in [_coerce(kind, item) for item in allowed]:
        raise ParameterError(
            f"parameter {name!r} must be one of {', '.join(map(str, allowed))}; got {value!r}"
        )
    return coerced


def _coerce(kind: str, value: Any) -> Any:
    if kind == "Integer":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    if kind == "Float":
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise ValueError
        return text == "true"
    return str(value)


def _specs(definition: Mapping[str, Any] | str) -> dict[str, Mapping[str, Any]]:
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as error:
            raise ParameterError(f"the pipeline definition is not valid JSON: {error}") from None
    if not isinstance(definition, Mapping):
        raise ParameterError("the pipeline definition is not a JSON object")
    return {
        str(spec["Name"]): spec
        for spec in definition.get("Parameters") or []
        if isinstance(spec, Mapping) and "Name" in spec
    }


def _checked(specs: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value (the override, else the default), each checked by ``coerce_parameter``."""
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise ParameterError(
            f"unknown pipeline parameter(s): {', '.join(unknown)}; "
            f"the pipeline declares: {', '.join(sorted(specs)) or 'none'}"
        )
    values = {}
    for name, spec in specs.items():
        if name in overrides:
            values[name] = coerce_parameter(spec, overrides[name])
        elif "DefaultValue" in spec:
            values[name] = coerce_parameter(spec, spec["DefaultValue"])
        else:
            raise ParameterError(f"parameter {name!r} has no default value: pass --param {name}=VALUE")
    return values


def parameter_values(definition: Mapping[str, Any] | str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of the definition, typed: its default with ``overrides`` applied and checked
    (what the local engine records and resolves ``Parameters.X`` against)."""
    return _checked(_specs(definition), overrides)


def render_value(value: Any) -> str:
    """A typed value as the string StartPipelineExecution takes (booleans as ``true``/``false``, as
    the SDK writes them; numbers in Python's shortest exact form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def pipeline_parameters_request(
    definition: Mapping[str, Any] | str, overrides: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The ``PipelineParameters`` of StartPipelineExecution for ``overrides``, after the same checks as
    the local engine's (defaults included); parameters not overridden are left to SageMaker's defaults."""
    values = _checked(_specs(definition), overrides)
    return [{"Name": name, "Value": render_value(values[name])} for name in overrides]


__all__ = [
    "ParameterError",
    "coerce_parameter",
    "parameter_values",
    "parse_param_pairs",
    "pipeline_parameters_request",
    "render_value",
]
