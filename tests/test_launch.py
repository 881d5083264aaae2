"""launch.py: installs only when a requirement is unmet, then runs the script as __main__ with its argv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training_code import launch


def test_installed_requirements_are_satisfied_and_others_are_not(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment\nnumpy<99  # inline\n\n--extra-index-url x\nnumpy>99\ndogpipe-no-such-package==1\n"
    )
    assert launch.read_requirements(requirements) == ["numpy<99", "numpy>99", "dogpipe-no-such-package==1"]
    assert launch.missing_requirements(requirements) == ["numpy>99", "dogpipe-no-such-package==1"]


def test_shipped_requirements_are_met_here() -> None:
    """The local engine must not pip-install: this environment already satisfies requirements.txt."""
    assert launch.read_requirements(launch.REQUIREMENTS)
    assert launch.missing_requirements() == []


def test_runs_the_script_as_main_with_its_arguments_and_siblings(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("VALUE = 'sibling'\n")
    (tmp_path / "job.py").write_text(
        "import sys, helper\n"
        "if __name__ == '__main__':\n"
        "    print(helper.VALUE, sys.argv[1:])\n"
        "    sys.exit(3)\n"
    )
    launcher = Path(launch.__file__)
    result = subprocess.run(
        [sys.executable, str(launcher), str(tmp_path / "job.py"), "--flag", "x"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert "sibling ['--flag', 'x']" in result.stdout


def test_processing_installs_the_files_own_requirements_not_its_includes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-r tracking-requirements.txt`` is the training jobs' (MLflow): a processing job's pip run, when
    one is needed, installs the lines of requirements.txt itself and nothing it includes."""
    (tmp_path / "extra.txt").write_text("dogpipe-extra==1\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("dogpipe-no-such-package==1  # missing\n-r extra.txt\n")
    commands: list[list[str]] = []
    monkeypatch.setattr(launch.subprocess, "run", lambda command, check: commands.append(command) or
                        subprocess.CompletedProcess(command, 0))  # fmt: skip
    launch.install(requirements)
    (command,) = commands
    assert command[1:] == ["-m", "pip", "install", "--no-cache-dir", "dogpipe-no-such-package==1"]


def test_the_training_jobs_tracking_requirements_are_included_and_met_here() -> None:
    tracking = launch.REQUIREMENTS.parent / "tracking-requirements.txt"
    assert "-r tracking-requirements.txt" in launch.REQUIREMENTS.read_text().splitlines()
    assert {line.split(">")[0].split("<")[0] for line in launch.read_requirements(tracking)} == {
        "mlflow-skinny", "sagemaker-mlflow", "opentelemetry-proto"}  # fmt: skip
    assert launch.missing_requirements(tracking) == []
