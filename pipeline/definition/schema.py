"""What SageMaker Pipelines accepts around a step, beyond the API request botocore describes.

botocore's shapes say what ``CreateEndpoint`` takes (``DeploymentConfig`` included); they do not say
what a pipeline *step* may carry. CreatePipeline checks that against the pipeline-definition schema
(``aws-sagemaker-mlops/sagemaker-model-building-pipeline-definition-JSON-schema``) and refuses an
unknown member ("Unknown Argument member"). The rules below restate, for the step types dogpipe uses,
the schema's two kinds of limits: which keys a step object may have, and where the schema lists a
step's ``Arguments`` more narrowly than the API (the Endpoint step: no ``DeploymentConfig``).

The schema is stale in places; where the SDK emits, and the service accepts, what the schema lacks,
the gap is named here and allowed:

- ``PropertyFiles`` on Processing steps (the SDK's ``property_files``; the schema has no such key);
- ``DataCaptureConfig`` on EndpointConfig arguments and the Training arguments added since
  (``ProfilerConfig``, ``ProfilerRuleConfigurations``, ``Environment``, ``RetryStrategy``): their
  fields are checked against botocore instead (``pipeline.definition.validate``);
- the schema's EndpointConfig step declares ``Type: "Endpoint"``, a copy slip; ``EndpointConfig`` is
  what the SDK emits and the service runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.definition.reader import StepNode

_COMMON = frozenset({"Name", "Type", "DependsOn", "DisplayName", "Description", "Arguments"})
_JOB = _COMMON | {"CacheConfig", "RetryPolicies"}

#: Step type → the keys the schema allows on the step object (plus the named gaps).
STEP_KEYS: dict[str, frozenset[str]] = {
    "Processing": _JOB | {"PropertyFiles"},  # PropertyFiles: a named gap
    "Training": _JOB,
    "Tuning": _JOB,
    "Model": _COMMON | {"RetryPolicies"},
    "RegisterModel": _COMMON | {"RetryPolicies"},
    "EndpointConfig": _COMMON,
    "Endpoint": _COMMON,
    "Condition": _COMMON,
    "Fail": _COMMON,
}
#: Step type → the only ``Arguments`` fields the schema allows, where it is narrower than the API.
ARGUMENT_FIELDS: dict[str, frozenset[str]] = {
    "Endpoint": frozenset({"EndpointConfigName", "EndpointName", "Tags"}),
}


def schema_problems(nodes: Iterable[StepNode]) -> list[tuple[StepNode, str, str]]:
    """(step, JSON path, message) for every key the pipeline-definition schema would refuse."""
    found: list[tuple[StepNode, str, str]] = []
    for node in nodes:
        allowed = STEP_KEYS.get(node.type)
        if allowed is None:
            continue  # an unknown type is reported by the DAG checks
        for key in sorted(set(node.raw) - allowed):
            found.append(
                (node, f"{node.path}.{key}", f"a {node.type} step may not carry {key} (pipeline schema)")
            )
        fields = ARGUMENT_FIELDS.get(node.type)
        arguments = node.raw.get("Arguments")
        if fields is not None and isinstance(arguments, dict):
            for key in sorted(set(arguments) - fields):
                found.append(
                    (
                        node,
                        f"{node.path}.Arguments.{key}",
                        f"Pipelines' {node.type} step takes only {', '.join(sorted(fields))}; "
                        f"{key} is an 'Unknown Argument member' at CreatePipeline",
                    )
                )
    return found
