"""How long a value the definition computes at run time can be, for the request fields that have a limit.

A field given as an expression (``Std:Join`` of a step's output URI and a file name, a parameter) passes
the shape check as written and is measured by the service only when the step starts, after the steps
before it have run. A long ``project.s3_root`` makes the registry entry's ``comparison_report`` URI, or
the Compare job's ``--test-data-uri`` argument, longer than the 256 characters CreateModelPackage and
CreateProcessingJob accept: the run would fail at its last steps. This module gives the longest length
such a value can have, from what the definition itself fixes: literals, parameters' defaults, the
execution id's length, and the output URIs the definition sets for the steps it refers to. Anything it
cannot know (a job's name, a value read from a property file) makes the answer ``None``: not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: A SageMaker pipeline execution id's length (also the suffix of each per-execution endpoint config name).
EXECUTION_ID_LENGTH = 12
_PROCESSING_OUTPUT = re.compile(
    r"^Steps\.([^.]+)\.ProcessingOutputConfig\.Outputs\['([^']+)'\]\.S3Output\.S3Uri$"
)


class RunTimeLength:
    """The longest run-time length of the definition's values (see the module doc)."""

    def __init__(self, definition: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]]) -> None:
        self._defaults = {
            str(parameter.get("Name")): parameter.get("DefaultValue")
            for parameter in definition.get("Parameters") or []
            if isinstance(parameter, Mapping)
        }
        self._steps = steps

    def of(self, value: Any, seen: frozenset[str] = frozenset()) -> int | None:
        """Characters ``value`` can have at run time, or ``None`` when the definition does not fix it."""
        if isinstance(value, str):
            return len(value)
        if isinstance(value, bool) or not isinstance(value, (Mapping, int, float)):
            return None
        if isinstance(value, (int, float)):
            return len(str(value))
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            parts = [self.of(item, seen) for item in join.get("Values") or []]
            if any(part is None for part in parts):
                return None
            return sum(part or 0 for part in parts) + len(str(join.get("On", ""))) * max(len(parts) - 1, 0)
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            return self._reference(value["Get"], seen)
        return None

    def _reference(self, reference: str, seen: frozenset[str]) -> int | None:
        if reference == "Execution.PipelineExecutionId":
            return EXECUTION_ID_LENGTH
        if reference.startswith("Parameters."):
            default = self._defaults.get(reference.removeprefix("Parameters."))
            return len(default) if isinstance(default, str) else None
        match = _PROCESSING_OUTPUT.match(reference)
        if match is None or reference in seen:
            return None
        step, output = match.groups()
        outputs = (
            ((self._steps.get(step) or {}).get("Arguments") or {})
            .get("ProcessingOutputConfig", {})
            .get("Outputs", [])
        )
        for item in outputs:
            if isinstance(item, Mapping) and item.get("OutputName") == output:
                return self.of((item.get("S3Output") or {}).get("S3Uri"), seen | {reference})
        return None
