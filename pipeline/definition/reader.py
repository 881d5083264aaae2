"""Reading a pipeline definition (JSON): the one walker every command and both engines' readers share.

A definition's steps sit in ``Steps`` and, nested, in a condition step's ``IfSteps``/``ElseSteps``. A
step depends on another when it lists it in ``DependsOn``, when its own arguments read
``{"Get": "Steps.<name>..."}`` (directly or inside ``Std:Join``/``Std:JsonGet``, including a property file
``Steps.<name>.PropertyFiles.<file>``), or when it sits in a condition's branch (it runs only after the
condition was evaluated, and only on the side its outcome picks). ``validate``, ``graph``, ``diff``, the
local planner (``pipeline/local/engine.py``) and the execution summary all read steps through here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

STEP_REFERENCE = re.compile(r"^Steps\.([^.\[]+)")
PROPERTY_FILE_REFERENCE = re.compile(r"^Steps\.([^.\[]+)\.PropertyFiles\.(.+)$")
BRANCHES = ("IfSteps", "ElseSteps")
#: The step types dogpipe's definitions use: each job-like one is a SageMaker API call (validate checks
#: its request shape; the local engine has a runner for each), and the control steps both engines decide.
JOB_STEP_TYPES = frozenset(
    {"Processing", "Training", "Tuning", "RegisterModel", "Model", "EndpointConfig", "Endpoint"}
)
CONTROL_STEP_TYPES = frozenset({"Condition", "Fail"})
STEP_TYPES = JOB_STEP_TYPES | CONTROL_STEP_TYPES
#: The property of a processing step that holds the S3 prefix of output ``{output}``.
OUTPUT_URI_PROPERTY = "ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri"


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


def own_arguments(step: Mapping[str, Any]) -> dict[str, Any]:
    """A step's ``Arguments`` without the steps nested in its branches (a condition's own inputs)."""
    arguments = step.get("Arguments")
    if not isinstance(arguments, Mapping):
        return {}
    return {key: value for key, value in arguments.items() if key not in BRANCHES}


def property_files(step: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A step's property files: ``PropertyFileName`` → its spec (``OutputName``, ``FilePath``)."""
    specs = step.get("PropertyFiles") or []
    return {str(spec.get("PropertyFileName")): spec for spec in specs if isinstance(spec, Mapping)}


@dataclass(frozen=True)
class StepNode:
    """One step of the definition and where it sits."""

    name: str
    type: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    path: str  # JSON path of the step object, e.g. Steps[5].Arguments.IfSteps[0]
    parent: str | None = None  # the condition step it belongs to
    branch: str | None = None  # "IfSteps" or "ElseSteps"

    @property
    def arguments(self) -> dict[str, Any]:
        return own_arguments(self.raw)

    @property
    def needed_outcome(self) -> bool | None:
        """The outcome of :attr:`parent` this step runs on (``IfSteps``: true), or None at top level."""
        return None if self.branch is None else self.branch == "IfSteps"

    def needs(self) -> set[str]:
        """Names of the steps that must finish first: ``DependsOn``, data references, the condition."""
        found = {str(name) for name in self.raw.get("DependsOn") or []}
        found |= referenced_steps([self.arguments, self.raw.get("PropertyFiles")])
        if self.parent:
            found.add(self.parent)
        return found

    def property_files(self) -> dict[str, Mapping[str, Any]]:
        return property_files(self.raw)


def walk_steps(
    steps: Any, path: str = "Steps", parent: str | None = None, branch: str | None = None
) -> Iterator[StepNode]:
    """Every step, depth first (a condition, then its IfSteps, then its ElseSteps), skipping non-objects."""
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, Mapping):
            continue
        here = f"{path}[{index}]"
        node = StepNode(str(step.get("Name")), str(step.get("Type")), step, here, parent, branch)
        yield node
        if node.type == "Condition":
            arguments = step.get("Arguments") or {}
            for key in BRANCHES:
                yield from walk_steps(arguments.get(key) or [], f"{here}.Arguments.{key}", node.name, key)


def steps_of(definition: Mapping[str, Any]) -> list[StepNode]:
    """Every step of ``definition``, nested ones included, in :func:`walk_steps` order."""
    return list(walk_steps(definition.get("Steps") or []))


def expressions(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``{"Get": ...}`` reference inside ``value`` as (JSON path, reference)."""
    if isinstance(value, Mapping):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            yield path, value["Get"]
            return
        for key, item in value.items():
            yield from expressions(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from expressions(item, f"{path}[{index}]")


def step_of_reference(reference: str) -> str | None:
    """``Steps.Train.ModelArtifacts…`` → ``Train``; None for parameters and execution variables."""
    match = STEP_REFERENCE.match(reference)
    return match.group(1) if match else None


def referenced_steps(value: Any) -> set[str]:
    """Names of the steps whose properties or property files ``value`` (any JSON) reads."""
    names = (step_of_reference(reference) for _, reference in expressions(value))
    return {name for name in names if name}


def dependencies(definition: Mapping[str, Any]) -> dict[str, set[str]]:
    """Step name → names of the steps it must wait for."""
    graph: dict[str, set[str]] = {}
    for node in steps_of(definition):
        graph.setdefault(node.name, set()).update(node.needs())
    return graph


def property_file_spec(step: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The spec of property file ``name`` of ``step``; KeyError naming the files it has."""
    files = property_files(step)
    if name not in files:
        raise KeyError(
            f"step {step.get('Name')!r} has no property file {name!r} (it has: {', '.join(files) or 'none'})"
        )
    return files[name]


def property_file_uri(output_uri: str, spec: Mapping[str, Any]) -> str:
    """Where a property file lies: its ``FilePath`` under the S3 prefix of its ``OutputName``."""
    return f"{str(output_uri).rstrip('/')}/{str(spec['FilePath']).lstrip('/')}"


@dataclass(frozen=True)
class DagProblem:
    """Why a definition is not a runnable DAG: the step, the JSON path and what is wrong."""

    step: str
    path: str
    message: str


def dag_problems(definition: Mapping[str, Any]) -> list[DagProblem]:
    """The one DAG check (``validate`` and the local planner both use it): every step named once, of a
    known type, needing only steps that exist (``DependsOn`` and data references), and no cycle."""
    from graphlib import CycleError, TopologicalSorter

    nodes = steps_of(definition)
    names = {node.name for node in nodes}
    problems: list[DagProblem] = []
    seen: set[str] = set()
    for node in nodes:
        if not node.raw.get("Name"):
            problems.append(DagProblem("(definition)", node.path, "a step has no Name"))
            continue
        if node.name in seen:
            problems.append(DagProblem(node.name, f"{node.path}.Name", "duplicate step name"))
        seen.add(node.name)
        if node.type not in STEP_TYPES:
            problems.append(DagProblem(node.name, f"{node.path}.Type", f"unknown step type {node.type!r}"))
        for index, target in enumerate(node.raw.get("DependsOn") or []):
            if target not in names:
                problems.append(
                    DagProblem(node.name, f"{node.path}.DependsOn[{index}]", f"unknown step {target!r}")
                )
        own = {**node.raw, "Arguments": own_arguments(node.raw)}
        for path, reference in expressions(own, node.path):
            target = step_of_reference(reference)
            if target is not None and target not in names:
                problems.append(DagProblem(node.name, path, f"unknown step {target!r} in {reference!r}"))
    try:
        TopologicalSorter(dependencies(definition)).prepare()
    except CycleError as error:
        cycle = [str(name) for name in error.args[1]]
        problems.append(DagProblem(cycle[0], "", f"dependency cycle: {' -> '.join(cycle)}"))
    return problems


def execution_order(definition: Mapping[str, Any]) -> list[StepNode]:
    """The steps in an order that respects every dependency, definition order breaking ties (what a
    person reading the definition expects to run first). The definition must have no ``dag_problems``."""
    pending = steps_of(definition)
    done: set[str] = set()
    ordered: list[StepNode] = []
    while pending:
        ready = next(node for node in pending if node.needs() <= done)  # StopIteration: a cycle
        ordered.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    return ordered
