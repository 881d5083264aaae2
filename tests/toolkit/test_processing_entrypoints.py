"""Each Processing step's entrypoint as the definition declares it, with ``/opt/ml/processing/...`` paths.

Processing containers have no toolkit: SageMaker runs ``ContainerEntrypoint`` + ``ContainerArguments``
with each ``ProcessingInput`` at its ``LocalPath``. Here every ``/opt/ml`` is mapped to a job folder as
the local engine maps it (``pipeline.local.container.Container``), and the steps run in pipeline order
on tiny data: Preprocess, then the Train step under the training toolkit (Debugger on), then Evaluate on its
``model.tar.gz``, Compare on it against itself as production (a local registry folder standing in for the
registry API) and DebugRules on its ``output.tar.gz``. The entrypoints, arguments and paths are the
golden definition's (only Preprocess's image size is made tiny), so a renamed script, flag or channel
path fails here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from pipeline.local.container import Container
from tests.toolkit.jobs import (
    IMAGE_SIZE,
    REPO,
    assert_trained,
    run_toolkit,
    step,
    train_step_hyperparameters,
    write_job,
)

CODE = REPO / "training_code"


def run_processing(
    name: str,
    job_dir: Path,
    inputs: dict[str, Path],
    replace: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
):
    """Run the step ``name`` as SageMaker would; ``inputs`` by ProcessingInput name (``code`` is the
    source dir); ``replace`` swaps argument values; ``env`` adds to the job's environment. Returns the
    container and its log."""
    arguments = step(name)["Arguments"]
    container = Container(job_dir)
    for item in arguments["ProcessingInputs"]:
        source = CODE if item["InputName"] == "code" else inputs[item["InputName"]]
        target = container.path(item["S3Input"]["LocalPath"])
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.mkdir(parents=True)
            shutil.copy2(source, target / source.name)
    for output in arguments["ProcessingOutputConfig"]["Outputs"]:
        container.path(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    app = arguments["AppSpecification"]
    argv = [replace.get(part, part) if replace else part for part in app.get("ContainerArguments", [])]
    result = subprocess.run(
        container.command([*app["ContainerEntrypoint"], *argv]),
        env={**container.environment(arguments.get("Environment") or {}), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{name}: {(result.stdout + result.stderr)[-4000:]}"
    return container, result.stdout + result.stderr


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture(scope="module")
def preprocessed(sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Container:
    container, _ = run_processing(
        "Preprocess", tmp_path_factory.mktemp("jobs") / "preprocess", {"data": sample_dataset},
        {"224": str(IMAGE_SIZE)},
    )  # fmt: skip
    return container


@pytest.fixture(scope="module")
def trained(preprocessed: Container, source_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Train step under the training toolkit on Preprocess's outputs (its plain-string
    hyperparameters, Debugger on, the source dir's requirements.txt installed by the toolkit); returns
    the folder holding ``model.tar.gz`` and ``output.tar.gz`` as the platform uploads them."""
    data = preprocessed.path("/opt/ml/processing/output/data")
    channels = {
        "train": data / "train",
        "valid": data / "valid",
        "stats": preprocessed.path("/opt/ml/processing/output/stats"),
    }
    base = tmp_path_factory.mktemp("train") / "ml"
    hyperparameters = {
        **train_step_hyperparameters(str(source_archive)),
        "debug_hook": "true",
        "save_interval": "1",
    }
    write_job(base, hyperparameters, channels, "algo-1", ["algo-1"])
    code, log = run_toolkit(base)
    assert code == 0, log[-4000:]
    assert "requirements.txt" in log  # the toolkit installed the training requirements first
    assert_trained(base, log)
    uploads = base.parent / "uploads"
    uploads.mkdir()
    _tar(base / "model", uploads / "model.tar.gz")
    _tar(base / "output" / "data", uploads / "output.tar.gz")
    return uploads


@pytest.mark.slow
def test_the_train_step_runs_under_the_toolkit_on_preprocess_outputs(trained: Path) -> None:
    assert {path.name for path in trained.iterdir()} == {"model.tar.gz", "output.tar.gz"}


def test_preprocess_writes_the_channels_training_reads(preprocessed: Container) -> None:
    data = preprocessed.path("/opt/ml/processing/output/data")
    assert {path.name for path in data.iterdir()} >= {"train", "valid", "test"}
    assert any(preprocessed.path("/opt/ml/processing/output/stats").iterdir())


@pytest.mark.slow
def test_evaluate_scores_the_trained_model_archive(
    trained: Path, preprocessed: Container, tmp_path: Path
) -> None:
    test_split = preprocessed.path("/opt/ml/processing/output/data") / "test"
    container, _ = run_processing(
        "Evaluate", tmp_path / "evaluate", {"model": trained / "model.tar.gz", "test": test_split}
    )
    report = json.loads(
        (container.path("/opt/ml/processing/output/evaluation") / "evaluation.json").read_text()
    )
    assert 0.0 <= report["multiclass_classification_metrics"]["accuracy"]["value"] <= 1.0


@pytest.mark.slow
def test_debug_rules_read_the_training_jobs_trace(trained: Path, tmp_path: Path) -> None:
    empty_debug = tmp_path / "debug-output"  # the hook wrote into SM_OUTPUT_DATA_DIR: no platform path
    empty_debug.mkdir()
    container, _ = run_processing(
        "DebugRules", tmp_path / "rules", {"debug": empty_debug, "training_output": trained / "output.tar.gz"}
    )
    rules = json.loads((container.path("/opt/ml/processing/output/rules") / "rules.json").read_text())
    assert rules, "no rule verdicts"


@pytest.mark.slow
def test_compare_scores_the_archive_against_the_approved_production_model(
    trained: Path, preprocessed: Container, tmp_path: Path
) -> None:
    """The golden definition's Compare entrypoint and arguments; production is an Approved package of
    the group whose artifact is the same archive, so both score alike: delta 0, McNemar p 1."""
    from pipeline.registry import LocalRegistry

    arguments = step("Compare")["Arguments"]["AppSpecification"]["ContainerArguments"]
    group = arguments[arguments.index("--group") + 1]
    stored = tmp_path / "s3" / "bucket" / "models" / "model.tar.gz"
    stored.parent.mkdir(parents=True)
    shutil.copy2(trained / "model.tar.gz", stored)
    registry = LocalRegistry(tmp_path)
    registry.register(group, "s3://bucket/models/model.tar.gz", "image")
    registry.set_approval(group, 1, "Approved")
    env = {
        "DOGPIPE_LOCAL_REGISTRY": str(tmp_path / "registry"),
        "DOGPIPE_LOCAL_ENDPOINTS": str(tmp_path / "endpoints"),
        "DOGPIPE_LOCAL_S3": str(tmp_path / "s3"),
    }
    test_split = preprocessed.path("/opt/ml/processing/output/data") / "test"
    container, log = run_processing(
        "Compare", tmp_path / "compare", {"model": trained / "model.tar.gz", "test": test_split}, env=env
    )
    output = container.path("/opt/ml/processing/output/comparison") / "comparison.json"
    comparison = json.loads(output.read_text())
    assert comparison["status"] == "compared", log[-3000:]
    assert (
        comparison["production"]["source"] == "latest_approved" and comparison["production"]["version"] == 1
    )
    assert comparison["delta"] == {"accuracy": 0.0, "weighted_f1": 0.0}
    assert comparison["mcnemar"]["p_value"] == 1.0 and comparison["gate"]["passed"] is True
    assert "comparison=compared gate_passed=True" in log
