"""Training, tuning and registration steps on a fake script-mode job (no torch training)."""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine
from pipeline.registry import LocalRegistry

from .definitions import BUCKET, definition, get, stage_sourcedir, training_request

FAKE_TRAIN = """
    import argparse, json, math, os, pathlib, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--optimizer", default="adam")
    args, _ = parser.parse_known_args()
    images = sorted(p.name for p in pathlib.Path(os.environ["SM_CHANNEL_TRAIN"]).rglob("*") if p.is_file())
    for epoch in range(1, args.epochs + 1):
        # Peaks at lr = 0.01; sgd is a little worse, so the best trial is predictable from its values.
        accuracy = max(0.0, 1 - abs(math.log10(args.lr) + 2) / 3) - (0.1 if args.optimizer == "sgd" else 0)
        reported = accuracy * epoch / args.epochs
        print(f"epoch={epoch} train_loss=0.5 valid_loss=0.4 valid_accuracy={reported:.6f}", flush=True)
    hook_file = os.environ.get("SMDEBUG_CONFIG_FILE_PATH")
    if hook_file and os.path.exists(hook_file):
        hook = json.loads(pathlib.Path(hook_file).read_text())
        pathlib.Path(hook["LocalPath"]).mkdir(parents=True, exist_ok=True)
        pathlib.Path(hook["LocalPath"], "trace.json").write_text(json.dumps(hook))
    model = pathlib.Path(os.environ["SM_MODEL_DIR"])
    (model / "model.json").write_text(json.dumps({
        "argv": sys.argv[1:], "hps": json.loads(os.environ["SM_HPS"]), "images": images,
        "channels": json.loads(os.environ["SM_CHANNELS"]), "host": os.environ["SM_CURRENT_HOST"],
    }))
    pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"], "history.json").write_text("[]")
"""
FAKE_DDP = """
    import os, pathlib, torch, torch.distributed as dist
    dist.init_process_group("gloo")
    value = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(value)
    host = os.environ["SM_CURRENT_HOST"]
    print(f"rank={dist.get_rank()} world={dist.get_world_size()} host={host} sum={value.item()}", flush=True)
    if dist.get_rank() == 0:
        pathlib.Path(os.environ["SM_MODEL_DIR"], "sum.txt").write_text(str(value.item()))
    dist.destroy_process_group()
"""
METRICS = {"valid_accuracy": r"valid_accuracy=([0-9.]+)", "train_loss": r"train_loss=([0-9.]+)"}


@pytest.fixture
def engine(tmp_path: Path) -> LocalEngine:
    engine = LocalEngine(
        EngineSettings(root=tmp_path / "root", max_parallel_trials=2), echo=lambda line: None
    )
    for name in ("a.jpg", "b.jpg"):
        engine.store.put_bytes(f"{BUCKET}/data/train/{name}", b"jpeg")
    engine.store.put_bytes(f"{BUCKET}/data/valid/c.jpg", b"jpeg")
    return engine


def read_tar_member(path: Path, member: str) -> str:
    with tarfile.open(path) as archive:
        return archive.extractfile(member).read().decode()  # type: ignore[union-attr]


def test_training_follows_the_script_mode_contract(engine: LocalEngine) -> None:
    source = stage_sourcedir(engine.store, {"train.py": FAKE_TRAIN})
    request = training_request(
        source,
        "train.py",
        {"lr": 0.01, "optimizer": "adam", "debug_hook": True},
        channels={"train": f"{BUCKET}/data/train", "valid": f"{BUCKET}/data/valid"},
        metrics=METRICS,
        debug_hook=True,
    )
    result = engine.start(definition({"Name": "Train", "Type": "Training", "Arguments": request}), "test")
    assert result.status == "Succeeded", result.failure_reason
    properties = result.steps["Train"]["properties"]
    job = properties["TrainingJobName"]
    model_uri = f"{BUCKET}/models/{job}/output/model.tar.gz"
    assert properties["ModelArtifacts"]["S3ModelArtifacts"] == model_uri
    model = json.loads(read_tar_member(engine.store.path_for(model_uri), "model.json"))
    # Hyperparameters arrive JSON-decoded in SM_HPS and as sorted --name value arguments,
    # sagemaker_* excluded.
    assert model["hps"] == {"lr": 0.01, "optimizer": "adam", "debug_hook": True}
    assert model["argv"] == ["--debug_hook", "True", "--lr", "0.01", "--optimizer", "adam"]
    assert (model["images"], model["channels"], model["host"]) == (
        ["a.jpg", "b.jpg"],
        ["train", "valid"],
        "algo-1",
    )
    assert (
        read_tar_member(engine.store.path_for(f"{BUCKET}/models/{job}/output/output.tar.gz"), "history.json")
        == "[]"
    )
    metrics = {item["MetricName"]: item["Value"] for item in properties["FinalMetricDataList"]}
    assert metrics == {"valid_accuracy": 1.0, "train_loss": 0.5}
    trace = json.loads(engine.store.read_text(f"{BUCKET}/debug/{job}/debug-output/trace.json"))
    assert (
        trace["HookParameters"] == {"save_interval": "5"}
        and trace["CollectionConfigurations"][0]["CollectionName"] == "losses"
    )
    assert trace["LocalPath"] == str(
        result.execution.step_dir("Train") / "attempt-1" / "job" / "algo-1" / "opt/ml/output/tensors"
    )


def test_two_instance_training_runs_one_process_per_host_joined_by_ddp(engine: LocalEngine) -> None:
    source = stage_sourcedir(engine.store, {"ddp.py": FAKE_DDP})
    request = training_request(
        source,
        "ddp.py",
        {},
        channels={"train": f"{BUCKET}/data/train"},
        instance_count=2,
        metrics={"sum": r"sum=([0-9.]+)"},
    )
    result = engine.start(definition({"Name": "Train", "Type": "Training", "Arguments": request}), "test")
    assert result.status == "Succeeded", result.failure_reason
    properties = result.steps["Train"]["properties"]
    model = engine.store.path_for(properties["ModelArtifacts"]["S3ModelArtifacts"])
    assert read_tar_member(model, "sum.txt") == "3.0"  # ranks 0 and 1 contributed 1 + 2
    logs = sorted(path.name for path in (result.execution.step_dir("Train") / "attempt-1" / "logs").iterdir())
    assert [name.rsplit("-", 1)[1] for name in logs] == ["1.log", "2.log"]


def tuning_step(source: str, strategy: str = "Random", max_jobs: int = 4) -> dict[str, Any]:
    request = training_request(
        source, "train.py", {"epochs": 2}, channels={"train": f"{BUCKET}/data/train"}, metrics=METRICS
    )
    static = request.pop("HyperParameters")
    return {
        "Name": "Tune",
        "Type": "Tuning",
        "Arguments": {
            "HyperParameterTuningJobConfig": {
                "Strategy": strategy,
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "valid_accuracy"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": {
                    "ContinuousParameterRanges": [
                        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "1.0", "ScalingType": "Logarithmic"}
                    ],
                    "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "sgd"]}],
                    "IntegerParameterRanges": [],
                },
                "TrainingJobEarlyStoppingType": "Off",
            },
            "TrainingJobDefinition": {**request, "StaticHyperParameters": static},
        },
    }


def expected_accuracy(tuned: dict[str, str]) -> float:
    penalty = 0.1 if tuned["optimizer"] == "sgd" else 0.0
    return max(0.0, 1 - abs(math.log10(float(tuned["lr"])) + 2) / 3) - penalty


def test_tuning_picks_the_best_trial_and_feeds_its_hyperparameters_on(engine: LocalEngine) -> None:
    source = stage_sourcedir(engine.store, {"train.py": FAKE_TRAIN})
    refit = training_request(
        source, "train.py", {}, channels={"train": f"{BUCKET}/data/train"}, metrics=METRICS
    )
    refit["HyperParameters"]["lr"] = get("Steps.Tune.BestTrainingJob.TunedHyperParameters['lr']")
    refit["HyperParameters"]["optimizer"] = get(
        "Steps.Tune.BestTrainingJob.TunedHyperParameters['optimizer']"
    )
    result = engine.start(
        definition(tuning_step(source), {"Name": "Refit", "Type": "Training", "Arguments": refit}), "test"
    )
    assert result.status == "Succeeded", result.failure_reason
    tune = result.steps["Tune"]["properties"]
    summaries = tune["TrainingJobSummaries"]
    assert len(summaries) == 4 and tune["TrainingJobStatusCounters"]["Completed"] == 4
    values = [item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for item in summaries]
    for item, value in zip(summaries, values, strict=True):
        assert value == pytest.approx(expected_accuracy(item["TunedHyperParameters"]), abs=1e-5)
    best = tune["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values) == values[0]
    assert engine.store.exists(best["ModelArtifacts"]["S3ModelArtifacts"])
    assert result.steps["Refit"]["arguments"]["HyperParameters"]["lr"] == best["TunedHyperParameters"]["lr"]
    assert len({item["TunedHyperParameters"]["lr"] for item in summaries}) == 4


def test_grid_strategy_rejects_continuous_ranges(engine: LocalEngine) -> None:
    source = stage_sourcedir(engine.store, {"train.py": FAKE_TRAIN})
    result = engine.start(definition(tuning_step(source, strategy="Grid")), "test")
    assert result.status == "Failed"
    assert "Grid strategy does not support continuous ranges (lr)" in result.failure_reason


def test_register_model_writes_a_package_that_can_be_approved(engine: LocalEngine) -> None:
    source = stage_sourcedir(engine.store, {"train.py": FAKE_TRAIN})
    train = training_request(
        source, "train.py", {"lr": 0.01}, channels={"train": f"{BUCKET}/data/train"}, metrics=METRICS
    )
    engine.store.put_bytes(
        f"{BUCKET}/eval/evaluation.json", json.dumps({"metrics": {"accuracy": {"value": 0.875}}}).encode()
    )
    register = {
        "Name": "Register",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "dogs",
            "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": "pytorch-inference",
                        "ModelDataUrl": get("Steps.Train.ModelArtifacts.S3ModelArtifacts"),
                    }
                ],
                "SupportedContentTypes": ["application/x-image"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"{BUCKET}/eval/evaluation.json",
                    }
                }
            },
        },
    }
    result = engine.start(
        definition({"Name": "Train", "Type": "Training", "Arguments": train}, register), "test"
    )
    assert result.status == "Succeeded", result.failure_reason
    properties = result.steps["Register"]["properties"]
    assert (
        properties["ModelPackageVersion"] == 1
        and properties["ModelApprovalStatus"] == "PendingManualApproval"
    )
    registry = LocalRegistry(engine.settings.root)
    package = registry.get("dogs", 1)
    assert package.arn == properties["ModelPackageArn"] and package.accuracy == 0.875
    assert package.model_data_url == result.steps["Train"]["properties"]["ModelArtifacts"]["S3ModelArtifacts"]
    assert registry.set_approval("dogs", 1, "Approved").approval_status == "Approved"
    assert registry.latest_approved("dogs").version == 1
