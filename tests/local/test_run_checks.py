"""The small promises of ``dogpipe run``: ids only for --resume, a Succeeded execution left alone.
(Its ``--param`` checks, shared with ``dogpipe start``, are in ``tests/test_parameters.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine

from .definitions import definition
from .test_engine import local_config


@pytest.mark.parametrize("execution", ["../../x", "a/b", ".hidden", ""])
def test_resume_takes_execution_ids_only(tmp_path: Path, execution: str) -> None:
    config = local_config(tmp_path, tmp_path / "root")
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--resume", execution])
    assert result.exit_code == 2
    assert f"{execution!r} is not a valid execution id" in result.output, result.output


def test_resume_of_a_succeeded_execution_says_so_and_rewrites_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fail_free = {"Name": "Nothing", "Type": "Condition", "Arguments": {"Conditions": []}}
    done = LocalEngine(EngineSettings(root=root), echo=lambda line: None).start(definition(fail_free), "t")
    assert done.status == "Succeeded"
    before = {path: path.read_bytes() for path in done.execution.folder.rglob("*") if path.is_file()}
    config = local_config(tmp_path, root)
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--resume", done.execution.id])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"execution {done.execution.id} already succeeded; nothing to resume"
    after = {path: path.read_bytes() for path in done.execution.folder.rglob("*") if path.is_file()}
    assert after == before
