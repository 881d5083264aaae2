"""--help documents every command (an example each, help on every option), the exit codes hold for a real
interrupted process, and shell completion offers execution ids, model versions and endpoint names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import yaml
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import LOCAL_CONFIG
from pipeline.local.endpoint_records import write_endpoint
from pipeline.local.executions import ExecutionStore
from pipeline.registry import LocalRegistry


def every_command(
    group: click.Group = cli, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += every_command(command, (*prefix, name))
    return found


@pytest.mark.parametrize(
    ("path", "command"),
    every_command(),
    ids=lambda item: "-".join(item) if isinstance(item, tuple) else "cmd",
)
def test_every_command_has_an_example_and_every_option_has_help(
    path: tuple[str, ...], command: click.Command
) -> None:
    shown = CliRunner().invoke(cli, [*path, "--help"])
    assert shown.exit_code == 0
    assert "Examples:\n    dogpipe " in shown.output, f"{' '.join(path)} has no example"
    missing = [
        param.name
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    ]
    assert not missing, f"{' '.join(path)}: options without help: {missing}"


def test_top_level_help_states_exit_codes_and_completion() -> None:
    text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    assert "1 error" in text and "2 usage error" in text and "130 interrupted" in text
    assert "_DOGPIPE_COMPLETE=bash_source dogpipe" in text


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(cli, ["status", "--no-such-option"]).exit_code == 2
    assert CliRunner().invoke(cli, ["models", "list", "-o", "yaml"]).exit_code == 2


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    """A real process blocked reading a FIFO gets SIGINT: one line, exit status 130 (not click's 1)."""
    fifo = tmp_path / "definition.json"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "graph", "--definition", str(fifo)],
        cwd=Path(__file__).resolve().parent.parent,  # the checkout: its config/local.yaml is the default
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal's foreground job: a suite started in the background by a non-interactive shell
        # inherits SIGINT ignored (POSIX, for `cmd &`), and Python keeps an ignored SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while True:  # opening the write end succeeds only once the command has the FIFO open for reading
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.05)
    try:
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        os.close(writer)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr


@pytest.fixture
def local_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config (named by DOGPIPE_CONFIG) whose store holds two executions, two versions, one endpoint."""
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    root = tmp_path / "engine"
    raw["local"] = {"root": str(root)}
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("DOGPIPE_CONFIG", str(config))
    for _ in range(2):
        ExecutionStore(root).create("dogpipe-local", {"Steps": []}, {})
        LocalRegistry(root).register(raw["registry"]["model_package_group"], "s3://b/m.tar.gz", "img")
    write_endpoint(root, {"name": "dogpipe-staging", "url": "http://127.0.0.1:1", "pid": 0})
    return root


def completions(args: list[str], incomplete: str) -> list[str]:
    """What the shell would offer after ``dogpipe ARGS INCOMPLETE<TAB>`` (click's completion API)."""
    complete = ShellComplete(cli, {}, "dogpipe", "_DOGPIPE_COMPLETE")
    return [item.value for item in complete.get_completions(args, incomplete)]


def test_completion_of_execution_ids_versions_and_endpoints(local_state: Path) -> None:
    ids = [execution.id for execution in ExecutionStore(local_state).list()]
    assert completions(["status"], "") == ids[::-1]  # newest first
    assert completions(["report"], ids[0][:-1]) == [ids[0]]
    assert completions(["run", "--resume"], "") == ids[::-1]
    assert completions(["models", "approve"], "") == ["1", "2"]
    assert completions(["models", "reject"], "2") == ["2"]
    assert completions(["predict", "dog.jpg", "--endpoint"], "dogpipe-") == ["dogpipe-staging"]
    assert completions(["endpoints", "stop"], "") == ["dogpipe-staging"]


def test_completion_reads_the_config_typed_on_the_line(local_state: Path, tmp_path: Path) -> None:
    other = yaml.safe_load(LOCAL_CONFIG.read_text())
    other["local"] = {"root": str(tmp_path / "empty")}
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    assert completions(["status", "--config", str(path)], "") == []
    assert completions(["status", "--config", str(tmp_path / "missing.yaml")], "") == []  # never a traceback
