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
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


SERVER_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/dogpipe"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite store) on 127.0.0.1, standing where the managed server's
    endpoint stands: the ``sagemaker-mlflow`` plugin is pointed at it by its
    ``SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT``, signs its requests with the (fake) credentials as it would sign
    them for SageMaker, and this server ignores the signature."""
    port = _unused_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_training_job_logs_its_run_through_the_managed_servers_arn(
    tmp_path: Path, channels: dict[str, Path], source_archive: Path, mlflow_server: str
) -> None:
    """On SageMaker the image has no MLflow client: the toolkit's pip run of ``requirements.txt`` (with
    its ``-r tracking-requirements.txt``) must bring one that works beside smdebug's protobuf 3.20,
    and the job must log through the plugin's ARN scheme (SigV4 over HTTP to the server's REST API)."""
    hyperparameters = {**train_step_hyperparameters(str(source_archive)), "epochs": "2"}
    base = tmp_path / "ml"
    write_job(base, hyperparameters, channels, "algo-1", ["algo-1"])
    code, log = run_toolkit(
        base,
        TRAINING_JOB_NAME="train-tracked-1",
        DOGPIPE_TRACKING_EXPERIMENT="dogpipe-toolkit",
        DOGPIPE_TRACKING_KIND="train",
        MLFLOW_TRACKING_URI=SERVER_ARN,
        SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT=mlflow_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    assert code == 0, log[-4000:]
    assert "tracking:" in log and "untracked" not in log, log[-4000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("dogpipe-toolkit")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "train-tracked-1" and run.info.status == "FINISHED"
    assert run.data.tags["dogpipe.job_name"] == "train-tracked-1" and run.data.tags["dogpipe.kind"] == "train"
    assert run.data.params["lr"] == TRIAL["lr"] and run.data.params["epochs"] == "2"
    curve = client.get_metric_history(run.info.run_id, "valid_loss")
    assert sorted(point.step for point in curve) == [1, 2]


@pytest.mark.slow
def test_a_managed_server_that_does_not_answer_costs_the_job_one_warning(
    tmp_path: Path, channels: dict[str, Path], quick_archive: Path
) -> None:
    """The same ARN with nothing listening behind it: one warning line, the job trains and succeeds."""
    base = tmp_path / "ml"
    write_job(base, train_step_hyperparameters(str(quick_archive)), channels, "algo-1", ["algo-1"])
    code, log = run_toolkit(
        base,
        TRAINING_JOB_NAME="train-untracked-1",
        DOGPIPE_TRACKING_EXPERIMENT="dogpipe-toolkit",
        MLFLOW_TRACKING_URI=SERVER_ARN,
        SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT=f"http://127.0.0.1:{_unused_port()}",
        MLFLOW_HTTP_REQUEST_TIMEOUT="3",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    assert code == 0, log[-4000:]
    warnings = [line for line in log.splitlines() if "goes on untracked" in line]
    assert len(warnings) == 1, log[-4000:]
    assert_trained(base, log)
