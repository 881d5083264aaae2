"""Jobs laid out as the platform lays them out, shared by the toolkit tests: the golden definition's
steps, a source archive of training_code/, a training job's ``SAGEMAKER_BASE_DIR`` and the ``train``
entry point of AWS's training toolkit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from training_code import package_serving_code
from training_code.launch import read_requirements

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "definition.json"
TOOLKIT_MODULE = "sagemaker_pytorch_container.training:main"
IMAGE_SIZE = 48
# Tiny sizes over the definition's values; everything else is passed as the definition has it.
TINY = {
    "architecture": "squeezenet1_1",
    "pretrained": "false",
    "image_size": str(IMAGE_SIZE),
    "epochs": "1",
    "max_steps_per_epoch": "2",
    "num_workers": "1",
    "debug_hook": "false",
    "profiler": "false",
}
# What a tuning trial gets for the tuned hyperparameters (one point of the definition's ranges).
TRIAL = {"batch_size": "8", "lr": "0.001", "optimizer": "adam"}


def step(name: str) -> dict[str, Any]:
    definition = json.loads(GOLDEN.read_text())
    return next(step for step in definition["Steps"] if step["Name"] == name)


def plain(value: Any) -> bool:
    return not isinstance(value, dict)  # a {"Get": ...} is resolved at run time


def make_source_archive(archive: Path, with_requirements: bool) -> Path:
    source = REPO / "training_code"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.glob("*")):
            if path.is_file() and (with_requirements or path.name != "requirements.txt"):
                tar.add(path, arcname=path.name)
    return archive


def write_job(
    base: Path, hyperparameters: dict[str, str], channels: dict[str, Path], host: str, hosts: list[str]
) -> None:
    """``SAGEMAKER_BASE_DIR`` as the platform lays it out before the toolkit starts."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
                for name in channels
            }
        )
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "lo"})
    )
    for name, folder in channels.items():
        shutil.copytree(folder, base / "input" / "data" / name)
    for folder in ("model", "output/data", "code"):
        (base / folder).mkdir(parents=True, exist_ok=True)


def start_toolkit(base: Path, **env: str) -> subprocess.Popen[str]:
    """The image's ``train`` entry point (a console script calling ``sagemaker_training.cli.train``)."""
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("SM_", "SAGEMAKER_"))},
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_TRAINING_MODULE": TOOLKIT_MODULE,
        "SM_STUDIO_LOCAL_MODE": "true",  # skips the toolkit's DNS wait for algo-N (15 min of retries)
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"],
        env=environment,
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_toolkit(base: Path, timeout: float = 300, **env: str) -> tuple[int, str]:
    process = start_toolkit(base, **env)
    log, _ = process.communicate(timeout=timeout)
    return process.returncode, log


def train_step_hyperparameters(code: str) -> dict[str, str]:
    """The Train step's hyperparameters, references resolved to a trial's values, sizes tiny."""
    given = step("Train")["Arguments"]["HyperParameters"]
    resolved = {key: value if plain(value) else TRIAL[key] for key, value in given.items()}
    return {**resolved, **TINY, "sagemaker_submit_directory": code}


def metric_regexes() -> dict[str, re.Pattern[str]]:
    definitions = step("Train")["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"]
    return {item["Name"]: re.compile(item["Regex"]) for item in definitions}


def assert_trained(base: Path, log: str) -> None:
    """What the pipeline's later steps read: the model dir with serving code, history, the metrics."""
    model = base / "model"
    assert (model / "model.pth").is_file() and (model / "model_info.json").is_file(), log[-3000:]
    assert read_requirements(model / "code" / "requirements.txt") == ["torchdata==0.11.0"]
    assert (model / "code" / package_serving_code.SERVING_ENTRY).is_file()
    assert json.loads((base / "output" / "data" / "history.json").read_text())["epochs"]
    for name, regex in metric_regexes().items():
        assert regex.search(log), f"no {name} line for the tuner: {log[-2000:]}"
