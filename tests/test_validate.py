"""validate_definition: the shipped definition is sound; seeded mistakes are each reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.definition.validate import validate_definition
from tests.golden.regenerate import GOLDEN


def _golden() -> dict:
    return json.loads(GOLDEN.read_text())


def _step(definition: dict, name: str) -> dict:
    stack = list(definition["Steps"])
    while stack:
        step = stack.pop()
        if step["Name"] == name:
            return step
        if step["Type"] == "Condition":
            stack += step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]
    raise KeyError(name)


def test_golden_definition_is_valid() -> None:
    assert validate_definition(GOLDEN.read_text()) == []


def _duplicate(d: dict) -> None:
    _step(d, "Evaluate")["Name"] = "Train"


def _unknown_field(d: dict) -> None:
    _step(d, "Train")["Arguments"]["ResourceConfig"]["GpuCount"] = 1


def _missing_required(d: dict) -> None:
    del _step(d, "Preprocess")["Arguments"]["AppSpecification"]["ImageUri"]


def _wrong_type(d: dict) -> None:
    _step(d, "Train")["Arguments"]["ResourceConfig"]["InstanceCount"] = "one"


def _bad_enum(d: dict) -> None:
    _step(d, "Tune")["Arguments"]["HyperParameterTuningJobConfig"]["Strategy"] = "Genetic"


def _bad_property(d: dict) -> None:
    _step(d, "Evaluate")["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] = {
        "Get": "Steps.Train.ModelArtifacts.S3ModelArtifactz"
    }


def _unknown_step(d: dict) -> None:
    _step(d, "Deploy")["DependsOn"] = ["Promote"]


def _unknown_parameter(d: dict) -> None:
    _step(d, "Preprocess")["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] = {
        "Get": "Parameters.DataUrl"
    }


def _unknown_property_file(d: dict) -> None:
    condition = _step(d, "CheckAccuracy")["Arguments"]["Conditions"][0]
    condition["LeftValue"]["Std:JsonGet"]["PropertyFile"] = {"Get": "Steps.Evaluate.PropertyFiles.Report"}


def _cycle(d: dict) -> None:
    _step(d, "Preprocess")["DependsOn"] = ["Evaluate"]


def _too_long(d: dict) -> None:
    _step(d, "DebugRules")["Arguments"]["AppSpecification"]["ContainerArguments"][1] = "x" * 300


CORRUPTIONS: dict[str, tuple[Callable[[dict], None], str, str]] = {
    "duplicate name": (_duplicate, "Train", "duplicate step name"),
    "unknown field": (_unknown_field, "Train", "ResourceConfig.GpuCount: CreateTrainingJob: unknown field"),
    "missing required": (
        _missing_required,
        "Preprocess",
        "AppSpecification.ImageUri: CreateProcessingJob: required",
    ),
    "wrong type": (_wrong_type, "Train", "InstanceCount: CreateTrainingJob: expected an integer"),
    "bad enum": (_bad_enum, "Tune", "'Genetic' is not one of"),
    "bad property": (_bad_property, "Evaluate", "has no property 'S3ModelArtifactz'"),
    "unknown DependsOn": (_unknown_step, "Deploy", "DependsOn[0]: unknown step 'Promote'"),
    "unknown parameter": (_unknown_parameter, "Preprocess", "unknown parameter 'DataUrl'"),
    "unknown property file": (_unknown_property_file, "CheckAccuracy", "has no property file 'Report'"),
    "cycle": (_cycle, "", "dependency cycle"),
    "too long": (_too_long, "DebugRules", "longer than 256 characters"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_reported(name: str) -> None:
    corrupt, step, message = CORRUPTIONS[name]
    definition = _golden()
    corrupt(definition)
    problems = validate_definition(json.dumps(definition))
    assert any(message in str(p) and (not step or p.step == step) for p in problems), problems


def test_invalid_json_is_one_clear_problem() -> None:
    [problem] = validate_definition("{not json")
    assert "not valid JSON" in problem.message


@pytest.mark.parametrize("command", ["validate", "graph", "diff", "upsert"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}', "not a pipeline definition"),
        (b"[1, 2]", "not a pipeline definition"),
        (b"hello", "not valid JSON"),
        (b"\xff\xd8\xff\xe0 binary", "can't decode"),
    ],
)
def test_a_definition_file_that_is_not_one_is_refused_by_every_command(
    tmp_path: Path, command: str, content: bytes, message: str
) -> None:
    """Every ``--definition`` reader refuses a wrong file with one line, before any AWS call."""
    path = tmp_path / "definition.json"
    path.write_bytes(content)
    from pipeline.config import DEFAULT_CONFIG  # diff/upsert act on SageMaker: name its config

    result = CliRunner().invoke(cli, [command, "--definition", str(path), "--config", str(DEFAULT_CONFIG)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"definition {path}" in result.output and message in result.output


@pytest.mark.parametrize("command", ["validate", "upsert"])
def test_an_unknown_architecture_is_refused_naming_the_closest_ones(tmp_path: Path, command: str) -> None:
    """A typo in model.architecture stops the command before any job (or AWS call) could start."""
    import yaml

    from pipeline.config import DEFAULT_CONFIG

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["model"]["architecture"] = "squeezenet1_l"
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, [command, "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "model.architecture 'squeezenet1_l' is not a torchvision classification model" in result.output
    assert "did you mean squeezenet1_1" in result.output


def test_every_shipped_config_names_a_known_architecture() -> None:
    from pipeline.config import DEFAULT_CONFIG, LOCAL_CONFIG, load_config
    from pipeline.definition.model_check import architecture_problem

    for path in (DEFAULT_CONFIG, LOCAL_CONFIG):
        assert architecture_problem(load_config(path).model) is None, path


def test_validate_names_every_derived_name_over_its_aws_limit(tmp_path: Path) -> None:
    """A 50-character project passes its own pattern but makes a 69-character rule name (limit 64); an
    endpoint name of 55 makes endpoint config names over 63."""
    import yaml

    from pipeline.config import DEFAULT_CONFIG

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["project"]["name"] = "p" * 50
    raw["schedule"] = "rate(7 days)"
    raw["deploy"]["production_endpoint"] = "e" * 55
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["validate", "--config", str(config), "-o", "json"])
    assert result.exit_code == 1
    messages = [problem["message"] for problem in json.loads(result.stdout)["problems"]]
    assert (
        f"EventBridge rule name '{'p' * 50}-deploy-on-approval' is 69 characters, over AWS's 64"
        in " ".join(messages)
    )
    assert any(m.startswith("Scheduler schedule name") and "is 66 characters" in m for m in messages)
    assert any(m.startswith("production endpoint config name") and "is 68 characters" in m for m in messages)
    assert CliRunner().invoke(cli, ["validate", "--config", str(DEFAULT_CONFIG)]).exit_code == 0


def test_validate_names_run_time_uris_that_would_outgrow_their_fields(tmp_path: Path) -> None:
    """A long ``project.prefix`` passes every pattern, but the Compare job's ``--test-data-uri`` and the
    registry entry's report URIs (256 characters each) would be refused only at the run's last steps."""
    import yaml

    from pipeline.config import DEFAULT_CONFIG

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["project"]["prefix"] = "/".join(["a" * 52] * 4)  # 211 characters: S3 takes keys of 1,024
    config = tmp_path / "long-prefix.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["validate", "--config", str(config), "-o", "json"])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    paths = {(problem["step"], problem["path"].rsplit(".Arguments.", 1)[-1]) for problem in problems}
    arguments = _step(_golden(), "Compare")["Arguments"]["AppSpecification"]["ContainerArguments"]
    test_data = arguments.index("--test-data-uri") + 1
    assert ("Compare", f"AppSpecification.ContainerArguments[{test_data}]") in paths, problems
    assert {"comparison_report", "rules_report", "drift_baseline"} <= {
        path.split("'")[1] for step, path in paths if "CustomerMetadataProperties" in path
    }, problems
    message = next(p["message"] for p in problems if p["step"] == "Compare")
    assert "characters at run time" in message and "over the limit of 256" in message
    assert "project.prefix" in message
    raw["project"]["prefix"] = "/".join(["a" * 60] * 2)  # 121: every URI fits
    config.write_text(yaml.safe_dump(raw))
    assert CliRunner().invoke(cli, ["validate", "--config", str(config)]).exit_code == 0


def test_validate_says_when_the_approval_rule_would_assume_the_execution_role(tmp_path: Path) -> None:
    import yaml

    from pipeline.config import DEFAULT_CONFIG

    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    del raw["deploy"]["events_role_arn"]
    config = tmp_path / "no-events-role.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 1
    assert "(config): deploy.events_role_arn is unset, so EventBridge and the Scheduler would assume" in (
        result.output
    )
    raw["deploy"]["on_approval"] = "off"
    config.write_text(yaml.safe_dump(raw))
    assert CliRunner().invoke(cli, ["validate", "--config", str(config)]).exit_code == 0


def test_validate_names_both_pipelines_it_checked(tmp_path: Path) -> None:
    """Without --definition it checks the build and the deploy pipeline and says so for each, in every
    format; a --definition file is checked alone, named by its path, with its problems counted."""
    from pipeline.config import DEFAULT_CONFIG

    runner = CliRunner()
    table = runner.invoke(cli, ["validate", "--config", str(DEFAULT_CONFIG)])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == [
        "build pipeline dogpipe: ok",
        "deploy pipeline dogpipe-deploy: ok",
        "config and definition are valid",
    ]
    text = runner.invoke(cli, ["validate", "--config", str(DEFAULT_CONFIG), "-o", "text"])
    assert text.stdout.splitlines() == ["build\tdogpipe\tok", "deploy\tdogpipe-deploy\tok"]
    report = json.loads(
        runner.invoke(cli, ["validate", "--config", str(DEFAULT_CONFIG), "-o", "json"]).stdout
    )
    assert report["pipelines"] == [
        {"pipeline": "build", "name": "dogpipe", "valid": True, "problems": 0},
        {"pipeline": "deploy", "name": "dogpipe-deploy", "valid": True, "problems": 0},
    ]

    broken = _golden()
    _step(broken, "Evaluate")["Name"] = "Train"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    found = len(validate_definition(path.read_text()))
    assert found > 0
    one = runner.invoke(cli, ["validate", "--config", str(DEFAULT_CONFIG), "--definition", str(path)])
    assert one.exit_code == 1
    assert one.stdout == f"definition {path}: {found} problem(s)\n"
    assert "deploy pipeline" not in one.output  # a file is checked alone: it may hold either pipeline
    as_json = runner.invoke(
        cli, ["validate", "--config", str(DEFAULT_CONFIG), "--definition", str(path), "-o", "json"]
    )
    report = json.loads(as_json.stdout)
    assert report["pipelines"] == [{"pipeline": "file", "name": str(path), "valid": False, "problems": found}]
    assert report["valid"] is False and len(report["problems"]) == found


def test_one_list_of_step_types_names_what_validate_checks_and_what_the_local_engine_runs() -> None:
    """The reader's STEP_TYPES is the one list: every job type has a request shape to check and a
    local runner, and the control steps are the rest."""
    from pipeline.definition.reader import CONTROL_STEP_TYPES, JOB_STEP_TYPES
    from pipeline.definition.validate import STEP_APIS
    from pipeline.local.engine import _runners

    assert set(STEP_APIS) == JOB_STEP_TYPES == set(_runners())
    assert not CONTROL_STEP_TYPES & JOB_STEP_TYPES


def test_the_local_engine_refuses_what_validate_finds_with_the_same_message() -> None:
    """One DAG check: a duplicate name, an unknown step type, an unknown DependsOn and a cycle read the
    same in `dogpipe validate` and when the local engine is asked to run the definition."""
    import json

    from pipeline.definition.validate import validate_definition
    from pipeline.local.engine import plan
    from pipeline.local.errors import DefinitionError

    cases = {
        "duplicate": [{"Name": "A", "Type": "Fail"}, {"Name": "A", "Type": "Fail"}],
        "type": [{"Name": "A", "Type": "Lambda"}],
        "depends": [{"Name": "A", "Type": "Fail", "DependsOn": ["Z"]}],
        "cycle": [
            {"Name": "A", "Type": "Fail", "DependsOn": ["B"]},
            {"Name": "B", "Type": "Fail", "DependsOn": ["A"]},
        ],
    }
    for steps in cases.values():
        definition = {"Version": "2020-12-01", "Parameters": [], "Steps": steps}
        found = validate_definition(json.dumps(definition))
        assert found
        with pytest.raises(DefinitionError) as refused:
            plan(definition)
        assert f"step {found[0].step!r}: {found[0].message}" in str(refused.value)
