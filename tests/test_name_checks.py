"""Every command that takes a name refuses one that is not of its kind, in one line, before it opens a
file: ``dogpipe endpoints stop ../registry/<group>/1`` used to delete that registry record."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.names import ENDPOINT, EXECUTION_REF, InvalidName, path_under
from pipeline.registry import LocalRegistry

from .local.test_engine import local_config

GROUP = "dogpipe-dog-breeds"

#: (command words, where the name goes) for every command with a name-like parameter; NAME is replaced.
NAME_COMMANDS: dict[tuple[str, str], list[str]] = {
    ("endpoints stop", "name"): ["endpoints", "stop", "NAME"],
    ("endpoints delete", "name"): ["endpoints", "delete", "NAME", "--yes"],
    ("predict", "endpoint"): ["predict", "IMAGE", "--endpoint", "NAME"],
    ("models approve", "version"): ["models", "approve", "NAME"],
    ("models reject", "version"): ["models", "reject", "NAME"],
    ("status", "execution_arn"): ["status", "NAME"],
    ("report", "execution_id"): ["report", "NAME"],
    ("executions stop", "execution"): ["executions", "stop", "NAME"],
    ("executions retry", "execution"): ["executions", "retry", "NAME"],
    ("run", "resume"): ["run", "--resume", "NAME"],
    ("logs", "execution"): ["logs", "NAME"],
    ("models show", "version"): ["models", "show", "NAME"],
    ("models compare", "first"): ["models", "compare", "NAME", "1"],
    ("models compare", "second"): ["models", "compare", "1", "NAME"],
    ("logs", "step"): ["logs", "20260101-000000-abcdef", "NAME"],
    ("monitor run", "endpoint"): ["monitor", "run", "--endpoint", "NAME"],
    ("monitor status", "endpoint"): ["monitor", "status", "--endpoint", "NAME"],
}
#: Parameter names that carry a name of a store object or AWS resource.
NAME_PARAMETERS = {
    "name",
    "endpoint",
    "version",
    "first",
    "second",
    "execution",
    "execution_id",
    "execution_arn",
    "resume",
    "step",
}
BAD_NAMES = ["../x", "/etc/passwd", "a/b", "", "x" * 300, "../registry/dogpipe-dog-breeds/1"]


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{path} "))
        else:
            found[path] = command
    return found


def test_the_walk_below_covers_every_command_that_takes_a_name() -> None:
    taking = {
        (path, param.name)
        for path, command in _commands(cli).items()
        for param in command.params
        if param.name in NAME_PARAMETERS
    }
    assert taking == set(NAME_COMMANDS)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    """A local store with a registry record and a file beside the store, as targets to escape to."""
    root = tmp_path / "root"
    LocalRegistry(root).register(GROUP, "s3://bucket/model.tar.gz", "image")
    (root / "endpoints").mkdir()
    (tmp_path / "passwd").write_text("outside the store\n")
    (tmp_path / "image.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.mark.parametrize("command", sorted(NAME_COMMANDS), ids=lambda key: f"{key[0]}:{key[1]}")
@pytest.mark.parametrize("bad", BAD_NAMES, ids=["dotdot", "absolute", "slash", "empty", "long", "registry"])
def test_a_bad_name_is_one_line_exit_2_and_changes_no_file(
    tmp_path: Path, store: Path, command: tuple[str, str], bad: str
) -> None:
    config = local_config(tmp_path, store)
    before = _snapshot(tmp_path)
    words = [
        bad if word == "NAME" else str(tmp_path / "image.jpg") if word == "IMAGE" else word
        for word in NAME_COMMANDS[command]
    ]
    result = CliRunner().invoke(cli, [*words, "--config", str(config)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert _snapshot(tmp_path) == before
    assert LocalRegistry(store).get(GROUP, 1).version == 1


def test_stop_of_a_registry_path_keeps_the_record_and_leaves_no_lock(tmp_path: Path, store: Path) -> None:
    """The reported case, through the installed command in its own process."""
    import subprocess
    import sys

    config = local_config(tmp_path, store)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "endpoints",
            "stop",
            f"../registry/{GROUP}/1",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a valid endpoint name" in result.stderr
    assert (store / "registry" / GROUP / "1.json").is_file()
    assert not list((store / "registry").rglob("*.lock"))


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    """The second line of defence: a name of the right form whose file is a link leaving the folder."""
    folder = tmp_path / "endpoints"
    folder.mkdir()
    (tmp_path / "secret.json").write_text("{}")
    (folder / "prod.json").symlink_to(tmp_path / "secret.json")
    assert path_under(folder, "staging.json") == folder / "staging.json"
    with pytest.raises(InvalidName, match="would leave"):
        path_under(folder, ENDPOINT.check("prod") + ".json")


def test_names_of_the_right_form_pass() -> None:
    assert ENDPOINT.check("dogpipe-prod") == "dogpipe-prod"
    assert ENDPOINT.check("a--b") == "a--b"  # SageMaker's pattern allows runs of hyphens
    for bad in ["-a", "a-", "a_b", "a" * 64, "a\n"]:
        with pytest.raises(InvalidName):
            ENDPOINT.check(bad)
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/dogpipe/execution/abc123def456"
    assert EXECUTION_REF.check(arn) == arn
