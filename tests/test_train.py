"""train.py on the tiny sample data: outputs, the smdebug trace, frozen backbones, early stopping, DDP.

Runs are CPU-sized (4 breeds, 48-64 px, a few steps); each asserts what a later pipeline step reads.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training_code import distributed, dogdata, pixel_stats, train
from training_code.debugger_hook import DebuggerError
from training_code.models import build_model, load_trained_model

REPO = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPO / "training_code" / "train.py"
IMAGE_SIZE = 48
# The tuning objective's regex reads exactly this line (training_code/README.md).
METRIC_LINE = re.compile(r"^epoch=(\d+) train_loss=([0-9.]+) valid_loss=([0-9.]+) valid_accuracy=([0-9.]+)$")
# The defaults the rules read plus relu_output, which is opt-in (hundreds of MB per save at 224 px).
COLLECTIONS = ("losses", "gradients", "weights", "biases", "relu_output")
SM_VARIABLES = ("SM_HPS", "SM_HOSTS", "SM_CURRENT_HOST", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def _no_container_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SM_VARIABLES:
        monkeypatch.setenv(name, "")  # records the original value, so what a test sets is undone
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def stats_dir(sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stats.json and classes.json for the sample data, as preprocess.py writes them."""
    folder = tmp_path_factory.mktemp("stats")
    classes, samples = dogdata.scan_split(sample_dataset / "train")
    mean, std, _ = pixel_stats.compute_stats([path for path, _ in samples], IMAGE_SIZE, num_workers=1)
    (folder / dogdata.STATS_FILE).write_text(json.dumps({"mean": mean, "std": std}))
    (folder / dogdata.CLASSES_FILE).write_text(json.dumps(classes))
    return folder


def train_argv(data: Path, stats: Path, out: Path, **overrides: object) -> list[str]:
    options: dict[str, object] = {
        "train": data / "train",
        "valid": data / "valid",
        "stats": stats,
        "model_dir": out / "model",
        "output_data_dir": out / "output",
        "architecture": "squeezenet1_1",
        "pretrained": "false",
        "image_size": IMAGE_SIZE,
        "epochs": 1,
        "max_steps_per_epoch": 2,
        "batch_size": 8,
        "lr": 3e-4,
        "num_workers": 1,
        "debug_hook": "false",
        "profiler": "false",
        "debug_hook_config": out / "no-platform-hook-config.json",
    }
    options.update(overrides)
    # None leaves a hyperparameter off the command line (e.g. to come from SM_HPS).
    given = {name: value for name, value in options.items() if value is not None}
    return [part for name, value in given.items() for part in (f"--{name}", str(value))]


def read_trial(path: Path):
    from smdebug.trials import create_trial

    return create_trial(str(path))


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_run_writes_model_history_profile_and_a_readable_trace(
    sample_dataset: Path, stats_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from smdebug.core.modes import ModeKeys

    argv = train_argv(
        sample_dataset, stats_dir, tmp_path, epochs=2, debug_hook="true", profiler="true",
        save_interval=1, eval_save_interval=1, collections=",".join(COLLECTIONS),
    )  # fmt: skip
    history = train.main(argv)

    metric_lines = [METRIC_LINE.match(line) for line in capsys.readouterr().out.splitlines()]
    assert [int(match.group(1)) for match in metric_lines if match] == [1, 2]

    model, info = load_trained_model(tmp_path / "model")
    classes = json.loads((stats_dir / dogdata.CLASSES_FILE).read_text())
    assert info["classes"] == classes and info["num_classes"] == 4
    assert info["image_size"] == IMAGE_SIZE and len(info["mean"]) == len(info["std"]) == 3
    assert (
        info["hyperparameters"]["batch_size"] == 8
        and info["hyperparameters"]["architecture"] == "squeezenet1_1"
    )
    assert info["best_epoch"] == history.best_epoch
    with torch.no_grad():
        assert model(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)).shape == (1, 4)
    if (REPO / "training_code" / "inference.py").is_file():
        assert (tmp_path / "model" / "code" / "inference.py").is_file()
        assert (tmp_path / "model" / "code" / "models.py").is_file()

    saved = json.loads((tmp_path / "output" / train.HISTORY_FILE).read_text())
    assert [epoch["epoch"] for epoch in saved["epochs"]] == [1, 2]
    assert saved["epochs"][0]["train_samples"] == 16 and saved["epochs"][0]["valid_samples"] == 16
    assert saved["best_epoch"] in (1, 2) and saved["stopped_early"] is False
    assert {"train_loss", "valid_loss", "train_accuracy", "valid_accuracy", "seconds"} <= set(
        saved["epochs"][1]
    )

    steps = (tmp_path / "output" / "profiler" / "steps.jsonl").read_text().splitlines()
    modes = [json.loads(line)["mode"] for line in steps]
    assert modes.count("train") == 4 and modes.count("eval") == 2 * 2  # 16 valid images in batches of 8

    trial = read_trial(tmp_path / "output" / "tensors")
    for collection in COLLECTIONS:
        names = trial.tensor_names(collection=collection)
        assert names, f"collection {collection} is empty"
        tensor = trial.tensor(names[0])
        assert tensor.steps(mode=ModeKeys.TRAIN), f"{collection} has no TRAIN steps"
        if collection != "gradients":  # no backward pass in evaluation
            assert tensor.steps(mode=ModeKeys.EVAL), f"{collection} has no EVAL steps"
    # squeezenet's ReLUs are named features.N.M: found by type, not by a "relu" name regex.
    assert len(trial.tensor_names(collection="relu_output")) == 26


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_frozen_backbone_with_hook_trains_only_the_head(
    sample_dataset: Path, stats_dir: Path, tmp_path: Path
) -> None:
    argv = train_argv(
        sample_dataset, stats_dir, tmp_path, architecture="mobilenet_v2", freeze="features", seed=5,
        lr=0.05, debug_hook="true", save_interval=1, eval_save_interval=1, collections=",".join(COLLECTIONS),
    )  # fmt: skip
    train.main(argv)

    train.seed_everything(5)
    initial = build_model("mobilenet_v2", 4, freeze="features").state_dict()
    trained, _ = load_trained_model(tmp_path / "model")
    final = trained.state_dict()
    backbone = [name for name in initial if not name.startswith("classifier.")]
    assert all(torch.equal(initial[name], final[name]) for name in backbone)  # BN running stats included
    assert not torch.equal(initial["classifier.1.weight"], final["classifier.1.weight"])

    trial = read_trial(tmp_path / "output" / "tensors")
    gradients = trial.tensor_names(collection="gradients")
    assert gradients and all("classifier.1" in name for name in gradients)
    # Frozen weights are the pretrained file's at every step: only the trained head's are recorded.
    assert trial.tensor_names(collection="weights") == ["MobileNetV2_classifier.1.weight"]
    assert trial.tensor_names(collection="relu_output")  # ReLU6, found by type


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_platform_hook_config_file_wins_over_hyperparameters(
    sample_dataset: Path, stats_dir: Path, tmp_path: Path
) -> None:
    """SageMaker writes debughookconfig.json from the job's DebugHookConfig; its LocalPath and
    collections apply, and relu_output is still found by module type despite the name regex."""
    from smdebug.core.modes import ModeKeys

    platform_trace = tmp_path / "opt-ml-output-tensors"
    config = tmp_path / "debughookconfig.json"
    config.write_text(
        json.dumps(
            {
                "LocalPath": str(platform_trace),
                "HookParameters": {"save_interval": "1", "eval.save_interval": "1"},
                "CollectionConfigurations": [
                    {"CollectionName": "losses"},
                    {"CollectionName": "relu_output", "CollectionParameters": {"include_regex": ".*relu"}},
                ],
            }
        )
    )
    argv = train_argv(
        sample_dataset, stats_dir, tmp_path, debug_hook="true", debug_hook_config=config, collections="biases"
    )
    train.main(argv)
    assert not (tmp_path / "output" / "tensors").exists()
    trial = read_trial(platform_trace)
    loss = trial.tensor(trial.tensor_names(collection="losses")[0])
    assert loss.steps(mode=ModeKeys.TRAIN) == [0, 1] and loss.steps(mode=ModeKeys.EVAL) == [0, 1]
    assert len(trial.tensor_names(collection="relu_output")) == 26
    assert not trial.tensor_names(collection="gradients")  # not asked for by the platform config


def test_no_improvement_stops_early_and_keeps_the_best_epoch(
    sample_dataset: Path, stats_dir: Path, tmp_path: Path
) -> None:
    # lr 0: the weights never change, so the valid loss never improves after epoch 1.
    argv = train_argv(
        sample_dataset, stats_dir, tmp_path, epochs=4, patience=1, lr=0.0, max_steps_per_epoch=1
    )
    history = train.main(argv)
    assert [epoch.epoch for epoch in history.epochs] == [1, 2]
    assert history.stopped_early and history.best_epoch == 1
    saved = json.loads((tmp_path / "output" / train.HISTORY_FILE).read_text())
    assert saved["stopped_early"] is True and saved["best_epoch"] == 1


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_same_seed_same_weights(sample_dataset: Path, stats_dir: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        train.main(train_argv(sample_dataset, stats_dir, tmp_path / name, max_steps_per_epoch=1, seed=3))
        runs.append(torch.load(tmp_path / name / "model" / "model.pth", weights_only=True))
    assert all(torch.equal(runs[0][name], runs[1][name]) for name in runs[0])


def test_hyperparameters_from_sm_hps_with_command_line_winning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_HPS", json.dumps({"lr": 0.5, "batch_size": 16, "pretrained": False, "epochs": 9}))
    args = train.parse_args(["--batch-size", "4", "--lr", "0.01", "--sagemaker_program", "train.py"])
    assert (args.lr, args.batch_size, args.pretrained, args.epochs) == (0.01, 4, False, 9)
    assert args.collections == ("losses", "gradients", "weights", "biases", "relu_input")
    assert train.parse_args(["--collections", '["losses"]', "--max_steps_per_epoch", "none"]).collections == (
        "losses",
    )


def test_bad_hyperparameter_values_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train.parse_args(["--pretrained", "maybe"])
    error = capsys.readouterr().err
    assert "--pretrained" in error and "not a boolean: 'maybe'" in error
    with pytest.raises(SystemExit):
        train.parse_args(["--optimizer", "rmsprop"])
    assert "invalid choice: 'rmsprop'" in capsys.readouterr().err


def test_missing_stats_fail_before_anything_is_written(sample_dataset: Path, tmp_path: Path) -> None:
    empty = tmp_path / "stats"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"classes\.json"):
        train.main(train_argv(sample_dataset, empty, tmp_path))
    assert not (tmp_path / "model").exists() and not (tmp_path / "output").exists()


def test_an_earlier_finished_trace_is_not_overwritten(
    sample_dataset: Path, stats_dir: Path, tmp_path: Path
) -> None:
    tensors = tmp_path / "output" / "tensors"
    tensors.mkdir(parents=True)
    (tensors / "training_job_end.ts").write_text("1")
    with pytest.raises(DebuggerError, match="already holds a finished run"):
        train.main(train_argv(sample_dataset, stats_dir, tmp_path, debug_hook="true"))
    assert (tensors / "training_job_end.ts").read_text() == "1"
    assert not (tmp_path / "model").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_train_with_ddp_on_cpu_and_only_rank_0_writes(
    sample_dataset: Path, stats_dir: Path, tmp_path: Path
) -> None:
    """The local engine's multi-instance form: one process per host, SM_HOSTS/SM_CURRENT_HOST each,
    MASTER_ADDR/MASTER_PORT shared (training_code/README.md). train.py runs as a script, as in a container."""
    hosts = ["algo-1", "algo-2"]
    port = str(_free_port())
    processes = []
    for host in hosts:
        out = tmp_path / host
        env = {
            **{name: value for name, value in os.environ.items() if name not in SM_VARIABLES},
            "SM_HOSTS": json.dumps(hosts),
            "SM_CURRENT_HOST": host,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "SM_HPS": json.dumps({"epochs": 1, "batch_size": 4}),
        }
        argv = train_argv(
            sample_dataset, stats_dir, out, debug_hook="true", profiler="true", epochs=None, batch_size=None
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, str(TRAIN_SCRIPT), *argv],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]

    main, other = tmp_path / "algo-1", tmp_path / "algo-2"
    history = json.loads((main / "output" / train.HISTORY_FILE).read_text())
    assert history["world_size"] == 2
    epoch = history["epochs"][0]
    assert epoch["train_samples"] == 2 * 2 * 4  # 2 ranks x 2 steps x batch 4, all-reduced
    assert epoch["valid_samples"] == 16  # disjoint valid shards cover every image once
    assert (main / "model" / "model.pth").is_file()
    trial = read_trial(main / "output" / "tensors")  # rank 0's hook, readable by the rules
    assert trial.workers() == ["worker_0"] and trial.tensor_names(collection="losses")
    assert (main / "output" / "profiler" / "steps.jsonl").is_file()
    assert not other.exists() or not any(other.rglob("*")), sorted(other.rglob("*"))
    assert any(METRIC_LINE.match(line) for line in outputs[0].splitlines())
    assert not any(METRIC_LINE.match(line) for line in outputs[1].splitlines())


def test_plan_world_for_local_processes_and_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributed.plan_world(1) is None
    assert distributed.plan_world(2) == (0, 1, 2)
    assert os.environ["MASTER_ADDR"] == "127.0.0.1" and int(os.environ["MASTER_PORT"]) > 0
    monkeypatch.delenv("MASTER_ADDR")
    monkeypatch.delenv("MASTER_PORT")
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    assert distributed.plan_world(1) == (1, 2, 1)
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("algo-1", "29500")
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-9")
    with pytest.raises(ValueError, match="algo-9"):
        distributed.plan_world(1)
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun already set everything up
    assert distributed.plan_world(2) is None
