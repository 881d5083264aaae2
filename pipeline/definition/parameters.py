"""Pipeline parameters of a definition: defaults, ``--param`` overrides, type and EnumValues checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pipeline.local.errors import DefinitionError


def coerce_parameter(spec: Mapping[str, Any], value: Any) -> Any:
    """A parameter value of the definition's declared Type (and one of its EnumValues, when it lists
    some), from a CLI string or a JSON value. A Float must be finite: SageMaker's API takes JSON numbers."""
    kind, name = spec.get("Type", "String"), spec["Name"]
    try:
        coerced = _coerce(kind, value)
    except (TypeError, ValueError, OverflowError):
        raise DefinitionError(f"parameter {name!r} is {kind}; {value!r} is not a valid {kind}") from None
    allowed = spec.get("EnumValues")
    if allowed and coerced not in [_coerce(kind, item) for item in allowed]:
        raise DefinitionError(
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


def parameter_values(definition: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults of the definition's Parameters with ``overrides`` applied and type-checked."""
    specs = {spec["Name"]: spec for spec in definition.get("Parameters") or []}
    unknown = set(overrides) - set(specs)
    if unknown:
        raise DefinitionError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}; "
            f"the pipeline defines: {', '.join(sorted(specs)) or 'none'}"
        )
    values = {}
    for name, spec in specs.items():
        if name in overrides:
            values[name] = coerce_parameter(spec, overrides[name])
        elif "DefaultValue" in spec:
            values[name] = coerce_parameter(spec, spec["DefaultValue"])
        else:
            raise DefinitionError(f"parameter {name!r} has no default value: pass --param {name}=VALUE")
    return values
