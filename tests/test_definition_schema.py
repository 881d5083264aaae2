"""Both shipped definitions hold to what CreatePipeline accepts around each step (the pipeline-definition
schema, restated in ``pipeline/definition/schema.py``), not only to botocore's API shapes."""

from __future__ import annotations

import json

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.definition.deploy_pipeline import build_deploy_definition
from pipeline.definition.document import build_definition
from pipeline.definition.reader import parse_definition, steps_of
from pipeline.definition.schema import ARGUMENT_FIELDS, STEP_KEYS, schema_problems
from pipeline.definition.validate import validate_definition


@pytest.fixture(scope="module", params=["build", "deploy"])
def definition(request: pytest.FixtureRequest) -> str:
    cfg = load_config(DEFAULT_CONFIG)
    return build_definition(cfg) if request.param == "build" else build_deploy_definition(cfg)


def test_every_step_of_both_definitions_is_one_the_schema_accepts(definition: str) -> None:
    nodes = steps_of(parse_definition(definition))
    assert {node.type for node in nodes} <= set(STEP_KEYS)
    assert schema_problems(nodes) == []
    assert validate_definition(definition) == []


def test_the_endpoint_step_that_carried_deployment_config_is_refused() -> None:
    """The Deploy step as it was before it became a job: botocore's CreateEndpoint takes DeploymentConfig,
    Pipelines' Endpoint step does not; RetryPolicies on an EndpointConfig step is refused too."""
    guard = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"}}}
    old = {
        "Version": "2020-12-01",
        "Steps": [
            {
                "Name": "EndpointConfig",
                "Type": "EndpointConfig",
                "Arguments": {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m"}]},
                "RetryPolicies": [{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 2}],
            },
            {
                "Name": "Deploy",
                "Type": "Endpoint",
                "Arguments": {"EndpointName": "e", "EndpointConfigName": "c", "DeploymentConfig": guard},
            },
        ],
    }
    problems = [str(problem) for problem in validate_definition(json.dumps(old))]
    assert any("Deploy: Steps[1].Arguments.DeploymentConfig: Pipelines' Endpoint step" in p for p in problems)
    assert any("EndpointConfig: Steps[0].RetryPolicies: a EndpointConfig step may not" in p for p in problems)
    assert ARGUMENT_FIELDS["Endpoint"] == {"EndpointConfigName", "EndpointName", "Tags"}
