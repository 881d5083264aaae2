"""Reading the step graph out of a pipeline definition (JSON), shared by ``validate`` and ``graph``.

A step depends on another when it lists it in ``DependsOn``, when any of its arguments reads
``{"Get": "Steps.<name>..."}`` (directly or through ``Std:Join``/``Std:JsonGet``), or when it sits in a
condition step's ``IfSteps``/``ElseSteps`` (it runs only after the condition was evaluated).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

STEP_REFERENCE = re.compile(r"^Steps\.([^.\[]+)")


class DefinitionFormatError(ValueError):
    """Text that is not a pipeline definition at all (not JSON, or no list of ``Steps``)."""


def parse_definition(json_text: str) -> dict[str, Any]:
    """The definition object, checked only for the shape every reader relies on, so each command
    (validate, graph, upsert, diff) refuses a wrong file with one message instead of a traceback."""
    try:
        definition = json.loads(json_text)
    except json.JSONDecodeError as error:
        raise DefinitionFormatError(f"not valid JSON: {error}") from None
    if not isinstance(definition, dict) or not isinstance(definition.get("Steps"), list):
        raise DefinitionFormatError("not a pipeline definition: expected a JSON object with a list of Steps")
    return definition


@dataclass(frozen=True)
class StepNode:
    """One step of the definition and where it sits."""

    name: str
    type: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    path: str  # JSON path of the step object, e.g. Steps[5].Arguments.IfSteps[0]
    parent: str | None = None  # the condition step it belongs to
    branch: str | None = None  # "IfSteps" or "ElseSteps"


def walk_steps(
    steps: list[Any], path: str = "Steps", parent: str | None = None, branch: str | None = None
) -> Iterator[StepNode]:
    """Every step, depth first, including those nested in condition branches."""
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict):
            continue
        here = f"{path}[{index}]"
        node = StepNode(str(step.get("Name")), str(step.get("Type")), step, here, parent, branch)
        yield node
        if node.type == "Condition":
            arguments = step.get("Arguments") or {}
            for key in ("IfSteps", "ElseSteps"):
                yield from walk_steps(arguments.get(key) or [], f"{here}.Arguments.{key}", node.name, key)


def expressions(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``{"Get": ...}`` reference inside ``value`` as (JSON path, reference)."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            yield path, value["Get"]
            return
        for key, item in value.items():
            yield from expressions(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from expressions(item, f"{path}[{index}]")


def referenced_steps(step: dict[str, Any]) -> set[str]:
    """Names of the steps whose properties ``step``'s own arguments read (not its branches')."""
    own = {
        key: item
        for key, item in (step.get("Arguments") or {}).items()
        if key not in ("IfSteps", "ElseSteps")
    }
    found = set()
    for _, reference in expressions([own, step.get("PropertyFiles")]):
        match = STEP_REFERENCE.match(reference)
        if match:
            found.add(match.group(1))
    return found


def dependencies(definition: dict[str, Any]) -> dict[str, set[str]]:
    """Step name → names of the steps it must wait for."""
    graph: dict[str, set[str]] = {}
    for node in walk_steps(definition.get("Steps") or []):
        needs = graph.setdefault(node.name, set())
        needs.update(str(name) for name in node.raw.get("DependsOn") or [])
        needs.update(referenced_steps(node.raw))
        if node.parent:
            needs.add(node.parent)
    return graph
