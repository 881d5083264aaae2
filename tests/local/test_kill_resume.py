"""Real faults on the real pipeline: the engine SIGKILLed during Preprocess and again during Train, then
resumed, ends as an uninterrupted run does (same outputs, same Debugger trace steps); two runs started
together with different data each train on their own."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import LOCAL_CONFIG
from pipeline.local.executions import Execution, ExecutionStore
from pipeline.object_store import ObjectStore

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def small_config(tmp_path: Path, root: Path) -> Path:
    """No tuning and no endpoint: Preprocess, Train (1 epoch of 4 steps, every step saved), the rest."""
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["data"]["image_size"] = 48
    config["tuning"]["enabled"] = False
    config["deploy"]["enabled"] = False
    config["training"]["hyperparameters"].update(epochs=1, max_steps_per_epoch=4, batch_size=8, num_workers=0)
    config["debugger"]["hook_config"] = {"save_interval": 1, "eval_save_interval": 1}
    config["evaluation"]["accuracy_threshold"] = 0.0
    config["local"] = {"root": str(root)}
    path = tmp_path / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def dogpipe(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL the engine alone (not its job) as soon as ``ready()``; its job must die with it."""
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, f"the run ended before {what}:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def attempt_files(root: Path, step: str, pattern: str) -> list[Path]:
    latest = ExecutionStore(root).latest()
    return list(latest.step_dir(step).glob(f"attempt-1/job/**/{pattern}")) if latest else []


def trace_steps(root: Path, execution: Execution) -> list[str]:
    """The saved steps of Train's Debugger trace, as uploaded: one event folder per step."""
    train = execution.step_state("Train")["properties"]
    uri = f"{train['DebugHookConfig']['S3OutputPath']}/{train['TrainingJobName']}/debug-output/events"
    return sorted(path.name for path in ObjectStore(root).path_for(uri).iterdir())


def model_members(root: Path, execution: Execution) -> dict[str, bytes]:
    uri = execution.step_state("Train")["properties"]["ModelArtifacts"]["S3ModelArtifacts"]
    with tarfile.open(ObjectStore(root).path_for(uri)) as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers() if member.isfile()}


def run_to_end(*args: str) -> str:
    process = dogpipe(*args)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def class_names(root: Path, execution: Execution) -> list[str]:
    outputs = execution.step_state("Preprocess")["properties"]["ProcessingOutputConfig"]["Outputs"]
    stats = next(item for item in outputs if item["OutputName"] == "stats")["S3Output"]["S3Uri"]
    return json.loads(ObjectStore(root).read_text(f"{stats.rstrip('/')}/classes.json"))


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory, sample_dataset: Path) -> dict[str, Any]:
    """Two ``dogpipe run`` started together in one folder: the sample data (4 breeds) and 3 of its breeds."""
    tmp_path = tmp_path_factory.mktemp("side_by_side")
    root = tmp_path / "shared"
    config = str(small_config(tmp_path, root))
    three = shutil.copytree(sample_dataset, tmp_path / "three")
    dropped = sorted(path.name for path in (three / "train").iterdir())[-1]
    for split in ("train", "valid", "test"):
        shutil.rmtree(three / split / dropped)
    runs = [dogpipe("run", "--config", config, "--data", str(data)) for data in (sample_dataset, three)]
    outputs = [process.communicate(timeout=900)[0] for process in runs]
    return {"root": root, "codes": [process.returncode for process in runs], "outputs": outputs}


def test_two_runs_started_together_with_different_data_each_train_on_their_own(
    side_by_side: dict[str, Any],
) -> None:
    assert side_by_side["codes"] == [0, 0], side_by_side["outputs"]
    root = side_by_side["root"]
    executions = ExecutionStore(root).list()
    assert len(executions) == 2
    data = {execution.load().parameters["InputDataUrl"] for execution in executions}
    assert len(data) == 2  # each its own content-addressed data
    assert sorted(len(class_names(root, execution)) for execution in executions) == [3, 4]
    versions = sorted(
        execution.step_state("Register")["properties"]["ModelPackageVersion"] for execution in executions
    )
    assert versions == [1, 2]


def test_killed_during_preprocess_and_train_then_resumed_ends_as_an_uninterrupted_run(
    tmp_path: Path, sample_dataset: Path, side_by_side: dict[str, Any]
) -> None:
    """The reference is the side-by-side run on the same data, same config, never interrupted."""
    reference_root, root = side_by_side["root"], tmp_path / "killed"
    reference = next(
        execution
        for execution in ExecutionStore(reference_root).list()
        if len(class_names(reference_root, execution)) == 4
    )

    config = str(small_config(tmp_path, root))
    engine = dogpipe("run", "--config", config, "--data", str(sample_dataset))
    kill_when(engine, lambda: bool(attempt_files(root, "Preprocess", "*.jpg")), "Preprocess writing images")
    execution = ExecutionStore(root).latest()
    assert (
        execution.load().status == "Failed" and "ended without finishing" in execution.load().failure_reason
    )

    engine = dogpipe("run", "--config", config, "--resume", execution.id)
    kill_when(engine, lambda: bool(attempt_files(root, "Train", "*.tfevents")), "Train saving a step")
    assert execution.step_state("Preprocess")["status"] == "Succeeded"
    assert execution.step_state("Train")["status"] == "Executing"  # as written by the dead engine

    run_to_end("run", "--config", config, "--resume", execution.id)
    states = execution.step_states()
    assert {name: state["status"] for name, state in states.items()} == {
        name: state["status"] for name, state in reference.step_states().items()
    }
    for step in ("Preprocess", "Train"):
        assert [item["status"] for item in states[step]["attempts"]] == ["Failed", "Succeeded"], step
    assert trace_steps(root, execution) == trace_steps(reference_root, reference)
    assert model_members(root, execution).keys() == model_members(reference_root, reference).keys()
    assert model_members(root, execution) == model_members(reference_root, reference)
