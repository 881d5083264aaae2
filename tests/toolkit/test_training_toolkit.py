"""``train.py`` under AWS's training toolkit, as the PyTorch 2.5 training image runs it.

The ``train`` entry point (``sagemaker_training.cli.train``) with
``SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main`` reads
``input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`` under ``SAGEMAKER_BASE_DIR``,
copies ``sagemaker_submit_directory``, pip-installs its ``requirements.txt``, and runs
``sagemaker_program`` with the hyperparameters decoded and re-encoded its own way. The hyperparameters
are the Train step's and the tuning job's from the golden definition (tests/golden/definition.json,
kept equal to the built one by test_definition), so a name or spelling the script does not accept
fails here; only the sizes are made tiny.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.toolkit.jobs import (
    IMAGE_SIZE,
    TINY,
    TRIAL,
    assert_trained,
    run_toolkit,
    start_toolkit,
    step,
    train_step_hyperparameters,
    write_job,
)
from training_code import dogdata, pixel_stats


def tuning_trial_hyperparameters(code: str) -> dict[str, str]:
    """A tuning trial's: the static ones plus the tuned ones JSON-quoted (as the SDK quotes them) and
    the objective metric the tuner adds."""
    definition = step("Tune")["Arguments"]
    static = definition["TrainingJobDefinition"]["StaticHyperParameters"]
    ranges = definition["HyperParameterTuningJobConfig"]["ParameterRanges"]
    tuned = {item["Name"] for kind in ranges.values() for item in kind}
    assert tuned == set(TRIAL), "the definition tunes other hyperparameters than this test knows"
    objective = definition["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    return {
        **static,
        **TINY,
        **{name: json.dumps(value) for name, value in TRIAL.items()},
        "_tuning_objective_metric": objective,
        "sagemaker_submit_directory": json.dumps(code),
    }


@pytest.fixture(scope="module")
def channels(sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Train step's channels: the sample ImageFolder's train/valid and preprocess's stats files."""
    stats = tmp_path_factory.mktemp("stats")
    classes, samples = dogdata.scan_split(sample_dataset / "train")
    mean, std, _ = pixel_stats.compute_stats([path for path, _ in samples], IMAGE_SIZE, num_workers=1)
    (stats / dogdata.STATS_FILE).write_text(json.dumps({"mean": mean, "std": std}))
    (stats / dogdata.CLASSES_FILE).write_text(json.dumps(classes))
    return {"train": sample_dataset / "train", "valid": sample_dataset / "valid", "stats": stats}


@pytest.mark.slow
def test_a_tuning_trial_runs_under_the_toolkit(
    tmp_path: Path, channels: dict[str, Path], quick_archive: Path
) -> None:
    """JSON-quoted values and the tuner's ``_tuning_objective_metric``; the toolkit decodes them."""
    base = tmp_path / "ml"
    write_job(base, tuning_trial_hyperparameters(str(quick_archive)), channels, "algo-1", ["algo-1"])
    code, log = run_toolkit(base)
    assert code == 0, log[-4000:]
    assert "--optimizer adam" in log and "_tuning_objective_metric" not in log.split("Invoking script", 1)[-1]
    assert_trained(base, log)


@pytest.mark.slow
def test_a_hyperparameter_the_script_does_not_know_fails_the_job(
    tmp_path: Path, channels: dict[str, Path], quick_archive: Path
) -> None:
    """The contract's other side: a renamed hyperparameter is a failed job naming it, not a default."""
    hyperparameters = train_step_hyperparameters(str(quick_archive))
    hyperparameters["learning_rate"] = hyperparameters.pop("lr")
    base = tmp_path / "ml"
    write_job(base, hyperparameters, channels, "algo-1", ["algo-1"])
    code, log = run_toolkit(base)
    assert code != 0 and "learning_rate" in log
    assert (base / "output" / "failure").is_file()  # the toolkit's report to the platform


HOSTS = ["algo-1", "algo-2"]
HOSTS_LINE = "127.0.0.1 algo-1 algo-2  # dogpipe tests/toolkit, removed after the test"


def _resolves(host: str) -> bool:
    try:
        socket.gethostbyname(host)
    except OSError:
        return False
    return True


@pytest.fixture
def algo_hosts() -> Iterator[None]:
    """``algo-1``/``algo-2`` resolve to this machine, as the platform's DNS makes them resolve to the
    instances: the toolkit sets ``MASTER_ADDR=algo-1`` and torch.distributed connects to it. Added to
    /etc/hosts for the test (CI runs as root) and removed after."""
    if all(_resolves(host) for host in HOSTS):
        yield
        return
    hosts_file = Path("/etc/hosts")
    if not os.access(hosts_file, os.W_OK):
        message = "algo-1/algo-2 do not resolve and /etc/hosts is not writable"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    original = hosts_file.read_text()
    hosts_file.write_text(original.rstrip("\n") + "\n" + HOSTS_LINE + "\n")
    try:
        yield
    finally:
        hosts_file.write_text(original)


@pytest.mark.slow
@pytest.mark.usefixtures("algo_hosts")
def test_two_hosts_train_together_under_the_toolkit(
    tmp_path: Path, channels: dict[str, Path], quick_archive: Path
) -> None:
    """One toolkit process per host, each with its own base dir; the toolkit sets MASTER_ADDR=algo-1
    and MASTER_PORT=7777 (training_code/README.md); only algo-1 writes the model."""
    bases = {host: tmp_path / host for host in HOSTS}
    for host, base in bases.items():
        write_job(base, train_step_hyperparameters(str(quick_archive)), channels, host, HOSTS)
    processes = {host: start_toolkit(base) for host, base in bases.items()}
    logs = {host: process.communicate(timeout=300)[0] for host, process in processes.items()}
    for host, process in processes.items():
        assert process.returncode == 0, f"{host}: {logs[host][-4000:]}"
    assert_trained(bases["algo-1"], logs["algo-1"])
    history = json.loads((bases["algo-1"] / "output" / "data" / "history.json").read_text())
    assert history["world_size"] == 2
    assert not any((bases["algo-2"] / "model").iterdir())
