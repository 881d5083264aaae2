"""The one definition reader, and what each of its users derives from it on the shipped definition."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.config import ConfigError, parse_config
from pipeline.definition.diff import diff_definitions
from pipeline.definition.graph import mermaid
from pipeline.definition.reader import dependencies, steps_of
from pipeline.iso_duration import parse_iso_duration
from pipeline.local.cache import parse_duration
from pipeline.local.expressions import ExpressionError, property_file_location
from tests.golden.regenerate import GOLDEN

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def _edges(chart: str) -> set[tuple[str, str]]:
    found = set()
    for line in chart.splitlines():
        if "-->" in line:
            left, right = line.split("-->")
            found.add((left.strip(), right.split("|")[-1].strip()))
    return found


def test_a_condition_branch_step_depends_on_the_property_file_it_reads(golden: dict) -> None:
    graph = dependencies(golden)
    assert graph["CheckAccuracy"] == {"CheckRules", "Evaluate"}
    assert graph["AccuracyTooLow"] == {"CheckAccuracy", "Evaluate"}
    assert graph["DebugRulesFailed"] == {"CheckRules", "DebugRules"}
    assert graph["WorseThanProduction"] == {"CheckProduction", "Compare"}
    nested = {node.name: (node.parent, node.needed_outcome) for node in steps_of(golden) if node.parent}
    assert nested["AccuracyTooLow"] == ("CheckAccuracy", False)
    assert nested["CheckProduction"] == ("CheckAccuracy", True)
    assert nested["Register"] == ("CheckProduction", True)


def test_the_graph_draws_every_dependency(golden: dict) -> None:
    expected = {(upstream, name) for name, needs in dependencies(golden).items() for upstream in needs}
    assert _edges(mermaid(GOLDEN.read_text())) == expected
    assert ("Evaluate", "CheckAccuracy") in expected and ("Evaluate", "AccuracyTooLow") in expected


def test_the_readme_shows_the_shipped_dag() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- dag:start -->\n```mermaid\n")[1].split("```\n")[0]
    assert block == mermaid(GOLDEN.read_text()), "regenerate the README's DAG from dogpipe graph"


def test_the_local_planner_waits_for_what_the_reader_names(golden: dict) -> None:
    from pipeline.local.engine import plan

    planned = plan(golden)
    assert {step.name: step.depends_on for step in planned} == dependencies(golden)
    order = [step.name for step in planned]
    assert order.index("Evaluate") < order.index("CheckAccuracy")
    branches = {step.name: step.branch for step in planned if step.branch}
    assert branches["AccuracyTooLow"] == ("CheckAccuracy", False)


def test_the_diff_reports_a_nested_step_on_its_own(golden: dict) -> None:
    changed = json.loads(json.dumps(golden))
    check_rules = next(step for step in changed["Steps"] if step["Name"] == "CheckRules")
    check_accuracy = check_rules["Arguments"]["IfSteps"][0]
    check_production = check_accuracy["Arguments"]["IfSteps"][0]
    assert check_production["Name"] == "CheckProduction"
    check_production["Arguments"]["IfSteps"][0]["Arguments"]["ModelApprovalStatus"] = "Approved"
    lines = diff_definitions(golden, changed).lines()
    assert lines[0] == "step Register: changed" and len(lines) == 2


def test_a_property_file_is_found_under_its_output_and_a_missing_one_is_named() -> None:
    step = {
        "Name": "Evaluate",
        "PropertyFiles": [{"PropertyFileName": "Report", "OutputName": "evaluation", "FilePath": "/e.json"}],
    }
    properties = {
        "ProcessingOutputConfig": {
            "Outputs": [{"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/run/evaluation/"}}]
        }
    }
    assert property_file_location(step, "Report", properties) == "s3://b/run/evaluation/e.json"
    with pytest.raises(ExpressionError, match=r"no property file 'Other' \(it has: Report\)"):
        property_file_location(step, "Other", properties)


@pytest.mark.parametrize("text", ["P", "PT", "P1D1D", "30", "P1H", ""])
def test_a_cache_expiry_is_refused_by_the_config_and_by_the_engine_alike(text: str) -> None:
    with pytest.raises(ConfigError, match="steps -> cache_expire_after"):
        parse_config(
            {
                "project": {"bucket": "b"},
                "data": {"s3_uri": "s3://bucket/d"},
                "steps": {"cache_expire_after": text},
            }
        )
    with pytest.raises(ValueError, match="not an ISO-8601 duration"):
        parse_duration(text)


def test_a_cache_expiry_both_accept() -> None:
    assert parse_iso_duration("P1Y2M3W4DT5H6M7S") == timedelta(
        days=365 + 60 + 21 + 4, hours=5, minutes=6, seconds=7
    )
    cfg = parse_config(
        {
            "project": {"bucket": "b"},
            "data": {"s3_uri": "s3://bucket/d"},
            "steps": {"cache_expire_after": "PT12H"},
        }
    )
    assert parse_duration(cfg.steps.cache_expire_after) == timedelta(hours=12)
