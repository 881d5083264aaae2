"""The one rule for which config a command reads (--config, else DOGPIPE_CONFIG, else ./config/local.yaml),
and the engine coming from that config alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pipeline.cli.main import cli
from pipeline.config import DEFAULT_CONFIG, LOCAL_CONFIG
from tests.moto_server import hide_aws_config


def write_config(path: Path, group: str, engine: str = "local") -> Path:
    """A config whose registry group names it, so `models list` shows which config was read."""
    raw = yaml.safe_load((LOCAL_CONFIG if engine == "local" else DEFAULT_CONFIG).read_text())
    raw["registry"]["model_package_group"] = group
    raw["local"] = {"root": str(path.parent / f"store-{group}")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with its own config/local.yaml, no DOGPIPE_CONFIG and no AWS account."""
    monkeypatch.delenv("DOGPIPE_CONFIG", raising=False)
    hide_aws_config(monkeypatch, tmp_path)
    write_config(tmp_path / "config" / "local.yaml", "from-default")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def dogpipe(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_flag_then_environment_then_the_local_default(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "group from-default" in dogpipe("models", "list").output
    monkeypatch.setenv("DOGPIPE_CONFIG", str(write_config(workdir / "env.yaml", "from-env")))
    assert "group from-env" in dogpipe("models", "list").output
    flag = write_config(workdir / "flag.yaml", "from-flag")
    assert "group from-flag" in dogpipe("models", "list", "--config", str(flag)).output


def test_the_rule_is_stated_in_the_top_level_help() -> None:
    text = " ".join(dogpipe("--help").output.split())
    assert "--config FILE, else $DOGPIPE_CONFIG, else config/local.yaml" in text


def test_without_a_config_in_the_working_directory_the_error_says_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOGPIPE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = dogpipe("status")
    assert result.exit_code == 1
    assert f"no config/local.yaml in {tmp_path}" in result.output and "DOGPIPE_CONFIG" in result.output


@pytest.mark.parametrize("command", [["status"], ["models", "list"], ["deploy"]])
def test_the_removed_local_flag_is_a_usage_error_naming_the_rule(workdir: Path, command: list[str]) -> None:
    result = dogpipe(*command, "--local")
    assert result.exit_code == 2
    assert "--local was removed: the engine comes from the config alone" in result.output


@pytest.mark.parametrize("command", ["upsert", "start", "diff"])
def test_sagemaker_only_commands_refuse_a_local_config_naming_the_fix(workdir: Path, command: str) -> None:
    result = dogpipe(command)
    assert result.exit_code == 1
    assert f"`dogpipe {command}` acts on engine: sagemaker, but config/local.yaml has engine: local" in (
        result.output
    )
    assert "--config config/pipeline.yaml" in result.output


def test_run_refuses_a_sagemaker_config(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOGPIPE_CONFIG", str(write_config(workdir / "sm.yaml", "sm", engine="sagemaker")))
    result = dogpipe("run")
    assert result.exit_code == 1
    assert "`dogpipe run` acts on engine: local" in result.output and "has engine: sagemaker" in result.output
