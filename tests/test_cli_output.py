"""``-o json`` of each listing command parses and carries the table's fields and values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.cli.output import cell, parse_table
from pipeline.config import LOCAL_CONFIG
from pipeline.local.executions import ExecutionStore
from pipeline.registry import LocalRegistry

GOLDEN = Path(__file__).parent / "golden" / "definition.json"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"] = {"root": str(tmp_path / "engine")}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def both(*args: str) -> tuple[str, Any]:
    """The command's table output and its parsed ``-o json`` output."""
    runner = CliRunner()
    table = runner.invoke(cli, list(args))
    assert table.exit_code == 0, table.output
    as_json = runner.invoke(cli, [*args, "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    return table.output, json.loads(as_json.output)


def same_rows(table: str, rows: list[dict[str, Any]]) -> None:
    """Every table row equals the JSON row rendered as table cells, column by column (JSON may add
    fields the table leaves out, never lose one)."""
    parsed = parse_table(table)
    columns = list(parsed[0]) if parsed else []
    assert all(set(columns) <= set(row) for row in rows)
    assert parsed == [{key: cell(row[key], key) for key in columns} for row in rows]


def test_models_list(config: Path, tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path / "engine")
    for accuracy in (0.75, 0.5):
        registry.register(
            "dogpipe-dog-breeds",
            model_data_url="s3://b/m.tar.gz",
            image="pytorch-inference:2.5",
            metrics={"multiclass_classification_metrics": {"accuracy": {"value": accuracy}}},
        )
    table, rows = both("models", "list", "--config", str(config))
    assert [(row["version"], row["accuracy"], row["status"]) for row in rows] == [
        (1, 0.75, "PendingManualApproval"),
        (2, 0.5, "PendingManualApproval"),
    ]
    same_rows(table, rows)


def test_empty_listings_are_an_empty_json_list(config: Path) -> None:
    for command in (["models", "list"], ["executions", "list"]):
        table, rows = both(*command, "--config", str(config))
        assert rows == [] and table.startswith("no ")


def _execution(root: Path, status: str, failure: str | None = None, pipeline: str = "dogpipe-local") -> str:
    execution = ExecutionStore(root).create(pipeline, {"Steps": []}, {})
    execution.update(status=status, ended_at="2026-12-02T08:00:00+00:00", failure_reason=failure)
    execution.write_step_state(
        "Preprocess",
        {"name": "Preprocess", "type": "Processing", "status": status, "duration_s": 5.83, "started_ts": 1.0},
    )
    return execution.id


def test_executions_list_and_status(config: Path, tmp_path: Path) -> None:
    first = _execution(tmp_path / "engine", "Succeeded")
    second = _execution(tmp_path / "engine", "Failed", "Preprocess: exit 1\nTraceback ...")
    table, rows = both("executions", "list", "--config", str(config))
    listed = [execution.id for execution in ExecutionStore(tmp_path / "engine").list()]
    assert [row["execution"] for row in rows] == listed[::-1] and set(listed) == {first, second}
    assert {row["execution"]: row["failure"] for row in rows}[second] == "Preprocess: exit 1"
    same_rows(table, rows)

    table, record = both("status", first, "--config", str(config))
    assert record["execution"] == first and record["status"] == "Succeeded"
    assert record["steps"] == [
        {
            "step": "Preprocess",
            "type": "Processing",
            "status": "Succeeded",
            "duration_s": 5.8,
            "attempts": None,
            "note": None,
        }
    ]
    head, steps = table.split("\nSTEP", 1)
    fields = dict(line.split(": ", 1) for line in head.splitlines())
    assert {key.strip() for key in fields} == set(record) - {"steps"}
    assert {key: value.strip() for key, value in fields.items()} == {
        key: cell(value) for key, value in record.items() if key != "steps"
    }
    same_rows("STEP" + steps, record["steps"])


def test_validate(tmp_path: Path) -> None:
    table, report = both("validate", "--definition", str(GOLDEN))
    checked = [{"pipeline": "file", "name": str(GOLDEN), "valid": True, "problems": 0}]
    assert report == {"valid": True, "pipelines": checked, "problems": []} and "valid" in table
    assert table.splitlines()[0] == f"definition {GOLDEN}: ok"
    broken = json.loads(GOLDEN.read_text())
    broken["Steps"][0]["Arguments"].pop("AppSpecification")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = CliRunner().invoke(cli, ["validate", "--definition", str(path), "-o", "json"])
    assert result.exit_code == 1
    parsed = json.loads(result.output[: result.output.rindex("}") + 1])
    assert parsed["valid"] is False
    assert any("AppSpecification" in problem["path"] + problem["message"] for problem in parsed["problems"])
    assert set(parsed["problems"][0]) == {"step", "path", "message"}


def test_endpoints_list(config: Path, tmp_path: Path) -> None:
    from pipeline.local.endpoint_records import write_endpoint

    write_endpoint(tmp_path / "engine", {"name": "dogpipe-staging", "url": "http://127.0.0.1:9", "pid": 0})
    table, rows = both("endpoints", "list", "--config", str(config))
    assert [(row["name"], row["alive"]) for row in rows] == [("dogpipe-staging", False)]
    same_rows(table, rows)


def test_without_an_id_status_and_report_take_the_build_pipelines_latest(
    config: Path, tmp_path: Path
) -> None:
    """As on SageMaker, where ``dogpipe status`` asks for the build pipeline's latest execution: an
    approval's deploy execution, started later, is listed (with its pipeline) but is not the default."""
    build = _execution(tmp_path / "engine", "Succeeded")
    deploy = _execution(tmp_path / "engine", "Succeeded", pipeline="dogpipe-local-deploy")
    table, rows = both("executions", "list", "--config", str(config))
    assert [(row["execution"], row["pipeline"]) for row in rows] == [
        (deploy, "dogpipe-local-deploy"),
        (build, "dogpipe-local"),
    ]
    same_rows(table, rows)
    assert both("status", "--config", str(config))[1]["execution"] == build
    assert both("status", deploy, "--config", str(config))[1]["execution"] == deploy
    report = CliRunner().invoke(cli, ["report", "--config", str(config)])
    assert report.exit_code == 0 and report.output.strip() == str(
        ExecutionStore(tmp_path / "engine").get(build).folder / "report.html"
    )
    only_deploy = tmp_path / "only-deploy"
    _execution(only_deploy / "engine", "Succeeded", pipeline="dogpipe-local-deploy")
    raw = yaml.safe_load(config.read_text())
    raw["local"] = {"root": str(only_deploy / "engine")}
    (only_deploy / "local.yaml").write_text(yaml.safe_dump(raw))
    missing = CliRunner().invoke(cli, ["status", "--config", str(only_deploy / "local.yaml")])
    assert missing.exit_code == 1 and "no executions of dogpipe-local under" in missing.output
