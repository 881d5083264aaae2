"""Condition and Fail steps: pure functions of already-resolved arguments.

SageMaker compares numbers as numbers and everything else as given; a comparison of a number with a
string that is not a number is an error there, so it is one here.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}


class ConditionError(ValueError):
    """A condition whose type is unknown or whose operands cannot be compared."""


class PipelineFailed(RuntimeError):
    """Raised by a Fail step: the execution fails with the step's error message."""


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    numbers = (int, float)
    if isinstance(left, numbers) and not isinstance(left, bool) and isinstance(right, str):
        right = _number(right)
    elif isinstance(right, numbers) and not isinstance(right, bool) and isinstance(left, str):
        left = _number(left)
    return left, right


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConditionError(f"cannot compare a number with the string {text!r}") from None


def evaluate(condition: Mapping[str, Any]) -> bool:
    """Evaluate one resolved condition (``Equals``, ``GreaterThan``…, ``In``, ``Not``, ``Or``)."""
    kind = condition.get("Type")
    if kind in _COMPARISONS:
        left, right = _comparable(condition.get("LeftValue"), condition.get("RightValue"))
        try:
            return bool(_COMPARISONS[kind](left, right))
        except TypeError:
            raise ConditionError(f"{kind}: cannot compare {left!r} with {right!r}") from None
    if kind == "In":
        query = condition.get("QueryValue")
        return any(
            _comparable(query, value)[0] == _comparable(query, value)[1] for value in condition["Values"]
        )
    if kind == "Not":
        return not evaluate(condition["Condition"])
    if kind == "Or":
        return any(evaluate(item) for item in condition["Conditions"])
    raise ConditionError(f"unknown condition type {kind!r}")


def evaluate_all(conditions: list[Mapping[str, Any]]) -> bool:
    """A ConditionStep's outcome: all of its conditions hold (an empty list holds)."""
    return all(evaluate(condition) for condition in conditions)


def fail(arguments: Mapping[str, Any]) -> None:
    """Fail the execution with the resolved ``ErrorMessage``."""
    message = arguments.get("ErrorMessage") or "Fail step reached"
    raise PipelineFailed(str(message))
