"""The hyperparameter contract: one declaration, and train.py refusing what it does not declare.

The values are fed to ``train.py`` the way AWS's sagemaker-training toolkit feeds them: every
hyperparameter of the definition JSON-decoded when it parses, then passed as ``--name str(value)``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config, parse_config
from pipeline.definition.reader import steps_of
from tests.golden.regenerate import GOLDEN
from training_code import hyperparameters, train_arguments
from training_code.hyperparameters import HYPERPARAMETERS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_sm_hps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SM_HPS", raising=False)


def toolkit_argv(hps: dict[str, str]) -> list[str]:
    """sagemaker-training 5.x: ``json.loads`` each value when it parses, drop ``sagemaker_*``, then
    ``--key str(value)`` in sorted order (so true -> True, a JSON list -> Python's repr)."""

    def decode(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    kept = {key: decode(value) for key, value in hps.items() if not key.startswith("sagemaker_")}
    return [part for key in sorted(kept) for part in (f"--{key}", str(kept[key]))]


def golden_steps() -> dict[str, dict[str, Any]]:
    return {node.name: dict(node.raw) for node in steps_of(json.loads(GOLDEN.read_text()))}


def test_readme_table_is_the_declaration() -> None:
    readme = (REPO / "training_code" / "README.md").read_text()
    table = readme.split("<!-- hyperparameters:start -->\n")[1].split("<!-- hyperparameters:end -->")[0]
    assert table == hyperparameters.markdown_table(), "run: python training_code/hyperparameters.py"


def test_every_declared_config_key_exists_with_the_declared_default() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    defaults = parse_config({"project": {"bucket": "b"}, "data": {"s3_uri": "s3://bucket/data"}})
    for hp in HYPERPARAMETERS.values():
        default = defaults.value_at(hp.config)
        assert default == (list(hp.default) if isinstance(hp.default, tuple) else hp.default), hp.name
        value = cfg.value_at(hp.config)
        assert hp.parse(value) == (tuple(value) if hp.kind == "list" else value), hp.name
    with pytest.raises(KeyError, match="learning_rate"):
        cfg.value_at("training.hyperparameters.learning_rate")


def test_the_training_steps_hyperparameters_pass_the_toolkit_round_trip() -> None:
    """What SageMaker hands train.py for Train (with the tuned values as the tuner passes them)."""
    cfg = load_config(DEFAULT_CONFIG)
    train = golden_steps()["Train"]["Arguments"]["HyperParameters"]
    static = {key: value for key, value in train.items() if isinstance(value, str)}
    tuned = {"lr": "0.00123", "batch_size": '"32"', "optimizer": '"adam"'}  # JSON-quoted, as tuning does
    args = train_arguments.parse_args(toolkit_argv({**static, **tuned}))
    assert (args.lr, args.batch_size, args.optimizer) == (0.00123, 32, "adam")
    assert args.pretrained is True and args.debug_hook is True
    assert args.collections == tuple(cfg.debugger.hook_config.collections)
    assert args.epochs == cfg.training.hyperparameters.epochs and args.image_size == cfg.data.image_size
    declared_static = set(HYPERPARAMETERS) - {"lr", "batch_size", "optimizer"}
    assert {key for key in static if not key.startswith("sagemaker_")} <= declared_static
    trial = golden_steps()["Tune"]["Arguments"]["TrainingJobDefinition"]["StaticHyperParameters"]
    args = train_arguments.parse_args(toolkit_argv({**trial, **tuned, "_tuning_objective_metric": "x"}))
    assert args.debug_hook is False and args.profiler is False and args.epochs == cfg.tuning.epochs


@pytest.mark.parametrize(
    ("given", "name", "expected"),
    [
        ("True", "pretrained", True),
        ("false", "debug_hook", False),
        ("['losses', 'gradients']", "collections", ("losses", "gradients")),
        ('["losses", "weights"]', "collections", ("losses", "weights")),
        ("losses,biases", "collections", ("losses", "biases")),
        ("None", "max_steps_per_epoch", None),
        ("0", "max_steps_per_epoch", None),
        ("16", "batch_size", 16),
        ("None", "weights_path", None),
    ],
)
def test_each_spelling_the_toolkit_produces_is_accepted(given: str, name: str, expected: Any) -> None:
    assert getattr(train_arguments.parse_args([f"--{name}", given]), name) == expected


def test_an_unknown_hyperparameter_fails_at_start_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    hps = dict(golden_steps()["Train"]["Arguments"]["HyperParameters"])
    hps = {key: value for key, value in hps.items() if isinstance(value, str)}
    hps["learning_rate"] = hps.pop("epochs")  # a builder that misspells one name
    with pytest.raises(SystemExit) as stopped:
        train_arguments.parse_args(toolkit_argv(hps))
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "learning_rate" in error
    assert "unknown hyperparameter" in error and ", ".join(HYPERPARAMETERS) in error


def test_launcher_settings_are_not_hyperparameters_but_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    args = train_arguments.parse_args(
        ["--sagemaker_program", "train.py", "--_tuning_objective_metric", "valid_accuracy", "--lr", "0.5"]
    )
    assert args.lr == 0.5
    monkeypatch.setenv("SM_HPS", json.dumps({"epoch": 3}))  # a typo in SM_HPS fails as well
    with pytest.raises(SystemExit):
        train_arguments.parse_args([])


def test_an_abbreviated_name_is_not_silently_taken_for_another(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train_arguments.parse_args(["--epoch", "3"])
    assert "epoch" in capsys.readouterr().err


def test_a_value_out_of_the_declared_range_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train_arguments.parse_args(["--image_size", "8"])
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--image_size" in error and "must be ≥ 16, got 8" in error


@pytest.mark.parametrize("step", ["Train", "Tune"])
def test_validate_names_a_hyperparameter_train_py_does_not_declare(step: str) -> None:
    from pipeline.definition.validate import validate_definition

    definition = json.loads(GOLDEN.read_text())
    assert validate_definition(json.dumps(definition)) == []
    node = next(item for item in definition["Steps"] if item["Name"] == step)
    if step == "Train":
        hps = node["Arguments"]["HyperParameters"]
        hps["learning_rate"] = hps.pop("epochs")
    else:
        node["Arguments"]["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0][
            "Name"
        ] = "learning_rate"
    problems = [str(problem) for problem in validate_definition(json.dumps(definition))]
    assert len(problems) == 1 and problems[0].startswith(f"{step}: Steps[")
    assert "unknown hyperparameter(s): learning_rate (train.py knows: epochs, lr," in problems[0]


def test_renaming_a_hyperparameter_in_the_declaration_only_fails_the_build_naming_it(tmp_path: Path) -> None:
    """A copy of training_code/ whose declaration calls ``lr`` ``learning_rate``: building the config
    (and so any definition) stops and names ``lr``; nothing else had to change for the rename to show."""
    copy = tmp_path / "training_code"
    shutil.copytree(REPO / "training_code", copy, ignore=shutil.ignore_patterns("__pycache__"))
    declaration = copy / "hyperparameters.py"
    text = declaration.read_text()
    assert text.count('Hyperparameter("lr",') == 1
    declaration.write_text(text.replace('Hyperparameter("lr",', 'Hyperparameter("learning_rate",'))
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from pipeline.config import DEFAULT_CONFIG, load_config, parse_config\n"
        "load_config(DEFAULT_CONFIG)\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    assert "does not declare (it declares:" in result.stderr and "'lr'" in result.stderr
    assert "learning_rate" in result.stderr
