"""What ``dogpipe run``, ``dogpipe status`` and ``dogpipe executions list`` print for local executions."""

from __future__ import annotations

import graphlib
import json
from collections.abc import Mapping
from typing import Any

from pipeline.definition.reader import dependencies, steps_of
from pipeline.local.executions import Execution
from pipeline.local.expressions import ExpressionError, property_file_location
from pipeline.object_store import ObjectStore, StoreError
from pipeline.registry import accuracy_of
from pipeline.text import first_line

#: The columns of a local execution's steps, in ``dogpipe status``, its ``-o json`` and the report.
LOCAL_STEP_COLUMNS = ("step", "type", "status", "duration_s", "attempts", "note")


def local_step_rows(
    states: Mapping[str, Mapping[str, Any]], definition: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A local execution's steps in run order, then those that never started (NotExecuted) in the
    DAG's order; ``note`` is the cache source or the failure's first line."""
    position = {name: index for index, name in enumerate(dag_order(definition or {}))}

    def key(state: Mapping[str, Any]) -> tuple[float, int]:
        return (state.get("started_ts", float("inf")), position.get(state["name"], len(position)))

    ordered = sorted(states.values(), key=key)
    return [
        {
            "step": state["name"],
            "type": state.get("type"),
            "status": state["status"],
            "duration_s": None if state.get("duration_s") is None else round(state["duration_s"], 1),
            "attempts": attempts_text(state.get("attempts") or []),
            "note": first_line(state.get("failure_reason"))
            or (f"cached from {state['cache_hit']}" if state.get("cache_hit") else None),
        }
        for state in ordered
    ]


def attempts_text(attempts: list[Mapping[str, Any]]) -> str | None:
    """``1 Failed [JOB_INTERNAL_ERROR], 2 Succeeded``; None for a step done in one attempt (or cached)."""
    if len(attempts) < 2 and all(item.get("status") == "Succeeded" for item in attempts):
        return None
    return ", ".join(
        f"{item['attempt']} {item['status']}"
        + (f" [{str(item['exception_type']).split('.', 1)[-1]}]" if item.get("exception_type") else "")
        for item in attempts
    )


def dag_order(definition: Mapping[str, Any]) -> list[str]:
    """Step names, each after the steps it waits for (the definition's order where it has a cycle,
    which validate reports)."""
    graph = dependencies(definition)
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        return list(graph)


def steps_table(states: Mapping[str, Mapping[str, Any]], definition: Mapping[str, Any] | None = None) -> str:
    """What ``dogpipe run`` prints at the end: ``local_step_rows`` as fixed-width lines, the attempts,
    the failure's first line or the cache source as the note."""
    lines = [f"{'step':<20} {'type':<15} {'status':<12} {'duration':>9}  note"]
    for row in local_step_rows(states, definition):
        duration = "-" if row["duration_s"] is None else f"{row['duration_s']:.1f} s"
        note = "; ".join(part for part in (row["attempts"], (row["note"] or "")[:70]) if part)
        lines.append(f"{row['step']:<20} {row['type'] or '':<15} {row['status']:<12} {duration:>9}  {note}")
    return "\n".join(lines)


def read_property_files(execution: Execution, store: ObjectStore) -> dict[str, Any]:
    """Every property file of every succeeded step, by ``<step>.<file name>``."""
    states = execution.step_states()
    found: dict[str, Any] = {}
    for step in steps_of(execution.definition):
        state = states.get(step.name)
        if not state or state.get("status") != "Succeeded":
            continue
        for name in step.property_files():
            try:
                uri = property_file_location(step.raw, name, state["properties"])
                found[f"{step.name}.{name}"] = json.loads(store.read_text(uri))
            except (ExpressionError, StoreError, ValueError, KeyError):
                continue
    return found


def highlights(execution: Execution, store: ObjectStore) -> list[str]:
    """Best hyperparameters, test accuracy, registered version (or the version a cached re-run's model
    already is) and endpoint of an execution."""
    lines: list[str] = []
    for state in execution.step_states().values():
        properties = state.get("properties") or {}
        if state.get("status") != "Succeeded":
            continue
        if state.get("type") == "Tuning":
            best = properties["BestTrainingJob"]
            metric = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
            tuned = " ".join(f"{key}={value}" for key, value in sorted(best["TunedHyperParameters"].items()))
            lines.append(
                f"best hyperparameters: {tuned} "
                f"({metric.get('MetricName')}={metric.get('Value', float('nan')):.4f}, "
                f"trial {best['TrainingJobName']})"
            )
        elif state.get("type") == "RegisterModel":
            lines.append(
                f"registered: {properties['ModelPackageGroupName']} "
                f"version {properties['ModelPackageVersion']} "
                f"({properties['ModelApprovalStatus']})"
            )
    registered = any(line.startswith("registered: ") for line in lines)
    for name, document in read_property_files(execution, store).items():
        accuracy = accuracy_of(document) if isinstance(document, Mapping) else None
        if accuracy is not None:
            lines.append(f"test accuracy: {accuracy:.4f} ({name})")
        known = document.get("registered") if isinstance(document, Mapping) else None
        if isinstance(known, Mapping) and known.get("already") and not registered:  # CheckNewModel said no
            lines.append(
                f"registered: nothing new, the model is {known.get('message')} "
                "(--param RegisterDuplicate=true registers it again)"
            )
    return lines
