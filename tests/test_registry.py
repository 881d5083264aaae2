"""LocalRegistry: register → list → approve → latest approved, concurrent versioning, clear errors."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.cli.output import parse_table
from pipeline.config import LOCAL_CONFIG
from pipeline.names import InvalidName
from pipeline.registry import LocalRegistry, ModelRegistry, RegistryError, accuracy_of, parse_version

GROUP = "dog-breeds"


def _register(root: Path, accuracy: float = 0.8, status: str = "PendingManualApproval") -> int:
    package = LocalRegistry(root).register(
        GROUP,
        model_data_url=f"s3://bucket/models/{accuracy}/model.tar.gz",
        image="pytorch-inference:2.5",
        environment={"SAGEMAKER_PROGRAM": "inference.py"},
        metrics={"multiclass_classification_metrics": {"accuracy": {"value": accuracy}}},
        approval_status=status,
        description=f"accuracy {accuracy}",
    )
    return package.version


def test_register_list_approve_latest_approved(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path)
    assert isinstance(registry, ModelRegistry)
    assert registry.list_packages(GROUP) == []
    assert registry.latest_approved(GROUP) is None

    versions = [_register(tmp_path, accuracy) for accuracy in (0.7, 0.9, 0.8)]
    assert versions == [1, 2, 3]
    assert (tmp_path / "registry" / GROUP / "2.json").is_file()

    listed = registry.list_packages(GROUP)
    assert [package.version for package in listed] == [1, 2, 3]
    assert [package.accuracy for package in listed] == [0.7, 0.9, 0.8]
    assert listed[0].arn.endswith(f"model-package/{GROUP}/1")
    assert {package.approval_status for package in listed} == {"PendingManualApproval"}

    registry.set_approval(GROUP, 1, "Approved", note="first good one")
    registry.set_approval(GROUP, 2, "Approved")
    registry.set_approval(GROUP, 3, "Rejected", note="worse than v2")
    latest = registry.latest_approved(GROUP)
    assert latest is not None and latest.version == 2
    rejected = registry.get(GROUP, 3)
    assert (rejected.approval_status, rejected.approval_description) == ("Rejected", "worse than v2")
    assert rejected.model_data_url == "s3://bucket/models/0.8/model.tar.gz"
    assert rejected.environment == {"SAGEMAKER_PROGRAM": "inference.py"}

    registry.set_approval(GROUP, 2, "Rejected")
    latest = registry.latest_approved(GROUP)
    assert latest is not None and latest.version == 1


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        versions = list(pool.map(_register, [tmp_path] * 8, [0.5 + i / 100 for i in range(8)]))
    assert sorted(versions) == list(range(1, 9))
    files = sorted(path.name for path in (tmp_path / "registry" / GROUP).iterdir())
    assert files == sorted(f"{version}.json" for version in range(1, 9))
    for version in range(1, 9):
        assert (
            json.loads((tmp_path / "registry" / GROUP / f"{version}.json").read_text())["version"] == version
        )


def test_register_skips_a_version_taken_meanwhile(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path)
    _register(tmp_path)
    # Another process claimed version 2 between our directory scan and our create.
    registry._next_version = lambda directory: 1  # type: ignore[method-assign]
    assert registry.register(GROUP, "s3://b/m.tar.gz", "image").version == 2


def test_unknown_version_names_the_known_ones(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path)
    _register(tmp_path)
    _register(tmp_path)
    with pytest.raises(RegistryError, match=r"version 7 not found in group 'dog-breeds' \(versions: 1, 2\)"):
        registry.set_approval(GROUP, 7, "Approved")
    with pytest.raises(InvalidName, match="positive integer, got 'v2'"):
        parse_version("v2")
    with pytest.raises(InvalidName, match="positive integer"):
        registry.get(GROUP, 0)


def test_bad_status_and_corrupt_file_are_reported_and_lose_nothing(tmp_path: Path) -> None:
    registry = LocalRegistry(tmp_path)
    _register(tmp_path)
    with pytest.raises(RegistryError, match="approval status must be one of"):
        registry.set_approval(GROUP, 1, "Maybe")
    with pytest.raises(RegistryError, match="approval status"):
        registry.register(GROUP, "s3://b/m.tar.gz", "image", approval_status="approved")
    assert registry.get(GROUP, 1).approval_status == "PendingManualApproval"
    assert [package.version for package in registry.list_packages(GROUP)] == [1]

    (tmp_path / "registry" / GROUP / "2.json").write_text("{not json")
    with pytest.raises(RegistryError, match=r"unreadable model package file .*2\.json"):
        registry.list_packages(GROUP)


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"accuracy": 0.5}, 0.5),
        ({"accuracy": "0.25"}, 0.25),
        ({"multiclass_classification_metrics": {"accuracy": {"value": 0.75}}}, 0.75),
        ({"metrics": {"accuracy": 1}}, 1.0),
        ({"loss": 0.3}, None),
        ({"accuracy": True}, None),
        (None, None),
    ],
)
def test_accuracy_of_known_layouts(metrics: dict | None, expected: float | None) -> None:
    assert accuracy_of(metrics) == expected


@pytest.fixture
def local_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"]["root"] = str(tmp_path / "engine")
    raw["registry"]["model_package_group"] = GROUP
    raw["deploy"]["on_approval"] = "off"  # the manual flow; approval-driven deploys: test_pipeline_run.py
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_models_and_deploy_act_on_the_local_registry(local_config: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    config = ("--config", str(local_config))
    assert "no model packages in group dog-breeds" in runner.invoke(cli, ["models", "list", *config]).output

    _register(tmp_path / "engine", 0.75)
    _register(tmp_path / "engine", 0.5)
    listed = runner.invoke(cli, ["models", "list", *config])
    assert listed.exit_code == 0, listed.output
    assert [(row["version"], row["accuracy"]) for row in parse_table(listed.output)] == [
        ("1", "0.7500"),
        ("2", "0.5000"),
    ]

    refused = runner.invoke(cli, ["deploy", "--stage", "prod", *config])
    assert refused.exit_code == 1
    assert "refusing to deploy: no Approved model package in group 'dog-breeds'" in refused.output

    approved = runner.invoke(cli, ["models", "approve", "1", "--note", "ok", *config])
    assert approved.exit_code == 0 and "dog-breeds version 1: Approved" in approved.output
    assert LocalRegistry(tmp_path / "engine").get(GROUP, 1).approval_description == "ok"
    assert runner.invoke(cli, ["models", "reject", "2", "--note", "overfits", *config]).exit_code == 0
    for extra in ([], ["--force"], ["--note", "fine after all"]):
        over = runner.invoke(cli, ["models", "approve", "2", *extra, *config])
        assert over.exit_code == 1 and len(over.output.strip().splitlines()) == 1, over.output
        assert "version 2 was Rejected (overfits): approving it needs --force and a --note" in over.output
    assert LocalRegistry(tmp_path / "engine").get(GROUP, 2).approval_status == "Rejected"
    args = ["models", "approve", "2", "--force", "--note", "fine after all", *config]
    worse = runner.invoke(cli, args)  # 0.5 against production's (the newest approval's) 0.75
    assert worse.exit_code == 1, worse.output
    assert "version 2 against production version 1: accuracy 0.5000 vs 0.7500 (-0.2500)" in worse.output
    assert "version 2 is worse than production version 1 on accuracy: approve with --yes" in worse.output
    assert LocalRegistry(tmp_path / "engine").get(GROUP, 2).approval_status == "Rejected"
    forced = runner.invoke(cli, [*args, "--yes"])
    assert forced.exit_code == 0, forced.output
    two = LocalRegistry(tmp_path / "engine").get(GROUP, 2)
    assert (two.approval_status, two.approval_description) == (
        "Approved",
        "approved over a rejection: fine after all",
    )
    assert two.approved_by and two.approval_time
    runner.invoke(cli, ["models", "reject", "2", *config])
    bad = runner.invoke(cli, ["models", "reject", "two", *config])
    assert bad.exit_code == 2 and "'two' is not a valid model package version" in bad.output

    # The approved package's model data was never written to the local store: a clear refusal.
    missing = runner.invoke(cli, ["deploy", "--stage", "prod", *config])
    assert missing.exit_code == 1
    assert "model data of arn:aws:sagemaker:local:000000000000:model-package/dog-breeds/1 is missing" in (
        missing.output
    )


def _evaluated(root: Path, accuracy: float, f1: dict[str, float], rules_uri: str | None = None) -> int:
    """A version as the Register step leaves it: the evaluation merged, the lineage as metadata."""
    metrics: dict = {
        "multiclass_classification_metrics": {
            "accuracy": {"value": accuracy},
            "weighted_f1": {"value": sum(f1.values()) / len(f1)},
        },
        "per_class": {name: {"f1": value, "support": 10} for name, value in f1.items()},
        "num_samples": 10 * len(f1),
        "source_execution": "arn:aws:sagemaker:local:000000000000:pipeline/p/execution/20260101-000000-a",
        "data_uri": "s3://dogpipe-local/datasets/by-content/c21a0c5409622bd3/dogImages/",
        "hp_lr": "0.01",
        "hp_batch_size": "16",
    }
    if rules_uri:
        metrics["rules_report"] = rules_uri
    return (
        LocalRegistry(root).register(GROUP, f"s3://b/{accuracy}/model.tar.gz", "i", metrics=metrics).version
    )


def test_models_show_and_compare_read_what_register_recorded(local_config: Path, tmp_path: Path) -> None:
    from pipeline.object_store import ObjectStore

    root = tmp_path / "engine"
    rules = {
        "rules": [{"rule": "overfit", "status": "IssuesFound", "fail_pipeline": False}],
        "blocking_issues": 0,
    }
    ObjectStore(root).put_bytes("s3://dogpipe-local/x/rules/rules.json", json.dumps(rules).encode())
    _evaluated(root, 0.8, {"a": 0.9, "b": 0.7}, "s3://dogpipe-local/x/rules/rules.json")
    _evaluated(root, 0.85, {"a": 0.6, "b": 1.0})
    config = ["--config", str(local_config)]
    runner = CliRunner()

    shown = json.loads(runner.invoke(cli, ["models", "show", "1", "-o", "json", *config]).output)
    assert shown["accuracy"] == 0.8 and shown["weighted_f1"] == 0.8 and shown["test_images"] == 20
    assert shown["data_digest"] == "c21a0c5409622bd3" and shown["hyperparameters"] == "batch_size=16 lr=0.01"
    assert shown["rules"] == [
        {"rule": "overfit", "status": "IssuesFound", "fail_pipeline": False, "first_step": None}
    ]
    assert shown["weakest_breeds"] == "b (f1 0.70), a (f1 0.90)"
    no_report = json.loads(runner.invoke(cli, ["models", "show", "2", "-o", "json", *config]).output)
    assert no_report["rules"] == [] and no_report["rules_blocking"] is None

    compared = runner.invoke(cli, ["models", "compare", "1", "2", "-o", "json", *config])
    assert compared.exit_code == 0, compared.output
    rows = {row["metric"]: row for row in json.loads(compared.stdout)}
    assert (rows["accuracy"]["v1"], rows["accuracy"]["v2"], rows["accuracy"]["delta"]) == (0.8, 0.85, 0.05)
    metrics = [row["metric"] for row in json.loads(compared.stdout)]
    assert "not scored on the same images: neither version recorded the test split" in compared.stderr
    assert metrics[-2:] == ["f1 a", "f1 b"] and rows["f1 a"]["delta"] == -0.3  # worse breeds first
    missing = runner.invoke(cli, ["models", "compare", "1", "7", *config])
    assert missing.exit_code == 1 and "version 7 not found" in missing.output
