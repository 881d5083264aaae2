"""The Compare job: McNemar's exact test, the comparison document and its gate, finding production in a
local registry, and ``compare.py`` as a process on real model archives (constant predictors, so every
figure is known in advance)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch

from pipeline.registry import LocalRegistry
from training_code import compare, dogdata, model_comparison, models, production_model
from training_code.model_comparison import ScoredModel

REPO = Path(__file__).resolve().parents[1]
GROUP = "dogs"
ENDPOINT = "dogs-prod"
#: CustomerMetadataProperties values (botocore: ``[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,256}``).
METADATA_VALUE = re.compile(r"^[\w .:/=+\-@]{1,256}$")


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (3, 0), (0, 11), (5, 7), (2, 9), (20, 35)])
def test_mcnemar_exact_p_is_the_two_sided_binomial_test(b: int, c: int) -> None:
    from scipy.stats import binomtest

    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert model_comparison.mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-9)
    assert model_comparison.mcnemar_exact_p(b, c) == model_comparison.mcnemar_exact_p(c, b)


def scored(predictions: list[int], classes: tuple[str, ...] = ("a", "b", "c")) -> ScoredModel:
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    return ScoredModel(list(classes), labels, predictions, model_bytes=1000, latency_ms=2.5)


PRODUCTION = {"version": 1, "package_arn": "arn:x/1", "source": "latest_approved"}


def test_a_paired_comparison_counts_discordant_images_and_sorts_breeds_worst_first() -> None:
    production = scored([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0])  # 11 of 12
    candidate = scored([0, 0, 0, 0, 1, 0, 0, 0, 2, 2, 2, 2])  # 9 of 12: breed b lost 3, c gained 1
    document = model_comparison.compare(candidate, production, PRODUCTION, alpha=0.05)
    assert document["status"] == "compared" and document["reason"] is None
    assert document["test_images"] == 12
    assert document["delta"]["accuracy"] == round(9 / 12 - 11 / 12, 6)
    assert document["mcnemar"] == {
        "candidate_only_right": 1,
        "production_only_right": 3,
        "p_value": pytest.approx(0.625),
        "significant": False,
        "alpha": 0.05,
    }
    assert [(row["breed"], row["delta"], row["n"]) for row in document["per_breed"]] == [
        ("b", -0.75, 4),
        ("a", 0.0, 4),
        ("c", 0.25, 4),
    ]
    assert document["baseline"] == {"accuracy": 11 / 12, "weighted_f1": pytest.approx(
        production.metrics["multiclass_classification_metrics"]["weighted_f1"]["value"]
    ), "model_bytes": 1000, "latency_ms": 2.5}  # fmt: skip


def _gate(candidate: list[int], production: list[int], **options: Any) -> dict[str, Any]:
    document = model_comparison.compare(scored(candidate), scored(production), PRODUCTION, alpha=0.05)
    return model_comparison.gate_verdict(
        document, **{"enabled": True, "tolerance": 0.01, "alpha": 0.05, **options}
    )


PERFECT = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
ALL_A = [0] * 12


def test_the_gate_blocks_only_a_significant_drop_beyond_the_tolerance() -> None:
    blocked = _gate(ALL_A, PERFECT)  # 4 of 12 vs 12 of 12: 8 discordant pairs one way, p = 2/256
    assert blocked["passed"] is False
    assert blocked["message"] == (
        "candidate is worse than production: test accuracy 0.3333 vs production v1 1.0000 "
        "(delta -0.6667, tolerance 0.01; McNemar p=0.007812, alpha 0.05) on 12 images"
    )
    assert _gate(ALL_A, PERFECT, tolerance=0.7)["passed"] is True  # within the tolerance
    assert _gate(ALL_A, PERFECT, alpha=0.005)["passed"] is True  # not significant at that level
    off = _gate(ALL_A, PERFECT, enabled=False)
    assert off["passed"] is True and off["message"].startswith("candidate is worse than production")
    assert _gate(PERFECT, ALL_A)["passed"] is True  # better never blocks


def test_other_classes_or_no_production_say_so_and_never_block() -> None:
    other = scored(PERFECT, classes=("a", "b", "d"))
    document = model_comparison.compare(scored(ALL_A), other, PRODUCTION)
    assert document["status"] == "not_comparable"
    assert document["reason"] == "the classes differ (candidate only: c; production only: d)"
    assert document["delta"] is None and document["mcnemar"] is None and document["per_breed"] == []
    gate = model_comparison.gate_verdict(document, enabled=True, tolerance=0.0, alpha=0.05)
    assert gate["passed"] is True and "does not block" in gate["message"]

    first = model_comparison.compare(scored(ALL_A), None, None, reason="first run")
    assert (first["status"], first["reason"], first["production"], first["baseline"]) == (
        "no_production",
        "first run",
        None,
        None,
    )
    unreadable = model_comparison.compare(scored(ALL_A), None, PRODUCTION, reason="artifact gone")
    assert unreadable["status"] == "not_comparable" and unreadable["production"] == PRODUCTION


def _registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalRegistry:
    monkeypatch.setenv(production_model.LOCAL_REGISTRY, str(tmp_path / "registry"))
    monkeypatch.setenv(production_model.LOCAL_ENDPOINTS, str(tmp_path / "endpoints"))
    monkeypatch.setenv(production_model.LOCAL_S3, str(tmp_path / "s3"))
    return LocalRegistry(tmp_path)


def test_production_is_the_stage_s_package_else_the_newest_approval_else_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _registry(tmp_path, monkeypatch)
    assert production_model.resolve_production(ENDPOINT, GROUP) is None  # a first run
    for version in (1, 2, 3):
        registry.register(GROUP, f"s3://b/m/{version}.tar.gz", "image")
    assert production_model.resolve_production(ENDPOINT, GROUP) is None  # nothing approved
    registry.set_approval(GROUP, 1, "Approved")
    registry.set_approval(GROUP, 2, "Approved")
    newest = production_model.resolve_production(ENDPOINT, GROUP)
    assert newest == {
        "version": 2,
        "package_arn": registry.arn(GROUP, 2),
        "source": "latest_approved",
        "endpoint": None,
        "model_data_url": "s3://b/m/2.tar.gz",
    }
    (tmp_path / "endpoints").mkdir()
    record = {"name": ENDPOINT, "model_package_arn": registry.arn(GROUP, 1)}
    (tmp_path / "endpoints" / f"{ENDPOINT}.json").write_text(json.dumps(record))
    served = production_model.resolve_production(ENDPOINT, GROUP)
    assert served is not None and (served["version"], served["source"], served["endpoint"]) == (
        1,
        "stage",
        ENDPOINT,
    )


def constant_model(folder: Path, classes: list[str], stats: Path, predicted: int) -> Path:
    """A squeezenet whose head answers ``predicted`` for every image, packed as a training job packs."""
    model = models.build_model("squeezenet1_1", len(classes))
    _, head = models.find_head(model)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(predicted), len(classes)).float())
    model_dir = folder / "model"
    model_dir.mkdir(parents=True)
    torch.save(model.state_dict(), model_dir / models.MODEL_WEIGHTS_FILE)
    mean, std = dogdata.read_stats(stats)
    info = {"architecture": "squeezenet1_1", "num_classes": len(classes), "classes": classes}
    info.update(image_size=32, mean=mean, std=std, hyperparameters={})
    (model_dir / models.MODEL_INFO_FILE).write_text(json.dumps(info))
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return folder


def run_job(
    candidate: Path, test_dir: Path, output: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(REPO / "training_code" / "compare.py"), "--candidate-dir", str(candidate)]
    argv += ["--test-dir", str(test_dir), "--output-dir", str(output), "--group", GROUP]
    argv += ["--production-endpoint", ENDPOINT, "--gate", "true", "--tolerance", "0.01", "--num-workers", "0"]
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(argv, env={**environment, **env}, capture_output=True, text=True, timeout=300)


def test_the_job_scores_candidate_and_production_on_the_same_images(
    preprocessed_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats, test_dir = preprocessed_dataset / "stats", preprocessed_dataset / "data" / "test"
    classes = dogdata.read_classes(stats)
    registry = _registry(tmp_path, monkeypatch)
    env = {
        name: os.environ[name] for name in (production_model.LOCAL_REGISTRY, production_model.LOCAL_ENDPOINTS)
    }
    env[production_model.LOCAL_S3] = str(tmp_path / "s3")
    candidate = constant_model(tmp_path / "candidate", classes, stats, predicted=0)

    first = run_job(candidate, test_dir, tmp_path / "first", env)
    assert first.returncode == 0, first.stderr[-3000:]
    document = json.loads((tmp_path / "first" / compare.COMPARISON_FILE).read_text())
    assert document["status"] == "no_production" and document["gate"]["passed"] is True
    assert document["candidate"]["accuracy"] == 0.25 and document["test_images"] == 16
    assert document["candidate"]["model_bytes"] > 100_000 and document["candidate"]["latency_ms"] > 0
    assert "comparison=no_production gate_passed=True" in first.stdout

    production = constant_model(tmp_path / "production", classes, stats, predicted=1)
    stored = tmp_path / "s3" / "bucket" / "models" / "1.tar.gz"
    stored.parent.mkdir(parents=True)
    stored.write_bytes((production / "model.tar.gz").read_bytes())
    registry.register(GROUP, "s3://bucket/models/1.tar.gz", "image")
    registry.set_approval(GROUP, 1, "Approved")
    second = run_job(candidate, test_dir, tmp_path / "second", env)
    assert second.returncode == 0, second.stderr[-3000:]
    document = json.loads((tmp_path / "second" / compare.COMPARISON_FILE).read_text())
    assert document["status"] == "compared" and document["production"]["version"] == 1
    assert document["delta"] == {"accuracy": 0.0, "weighted_f1": 0.0}
    assert document["mcnemar"]["candidate_only_right"] == document["mcnemar"]["production_only_right"] == 4
    assert [(row["breed"], row["delta"]) for row in document["per_breed"]] == [
        (classes[1], -1.0),
        (classes[2], 0.0),
        (classes[3], 0.0),
        (classes[0], 1.0),
    ]
    metadata = document["registry_metadata"]
    assert tuple(metadata) == compare.REGISTRY_METADATA_KEYS
    assert metadata["comparison_status"] == "compared" and metadata["production_version"] == "1"
    assert all(METADATA_VALUE.match(value) for value in metadata.values()), metadata

    stored.unlink()  # the package is there, its artifact is not
    third = run_job(candidate, test_dir, tmp_path / "third", env)
    assert third.returncode == 0, third.stderr[-3000:]
    document = json.loads((tmp_path / "third" / compare.COMPARISON_FILE).read_text())
    assert document["status"] == "not_comparable" and "not in the local store" in document["reason"]
    assert document["gate"]["passed"] is True


def test_a_candidate_that_cannot_be_scored_fails_the_job_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_job(
        tmp_path / "empty", tmp_path, tmp_path / "out", {production_model.LOCAL_REGISTRY: str(tmp_path)}
    )
    assert result.returncode == 2
    assert "comparison failed:" in result.stdout + result.stderr and "model.tar.gz" in result.stdout
    assert not (tmp_path / "out").exists()


def test_models_compare_scores_both_versions_on_the_recorded_test_split(
    preprocessed_dataset: Path, tmp_path: Path
) -> None:
    """``dogpipe models compare 1 2`` on the local engine: both artifacts and the test split that v2's
    Compare recorded are in the store, so both models are scored again on the same images."""
    import yaml
    from click.testing import CliRunner

    from pipeline.cli.main import cli
    from pipeline.config import LOCAL_CONFIG
    from pipeline.object_store import ObjectStore

    stats, test_dir = preprocessed_dataset / "stats", preprocessed_dataset / "data" / "test"
    classes = dogdata.read_classes(stats)
    root = tmp_path / "engine"
    store, registry = ObjectStore(root), LocalRegistry(root)
    store.put_tree(test_dir, "s3://bucket/executions/e2/data/test")
    for version, predicted in ((1, 1), (2, 0)):
        archive = constant_model(tmp_path / f"v{version}", classes, stats, predicted)
        store.put_file(archive / "model.tar.gz", f"s3://bucket/m/{version}/model.tar.gz")
        metrics = {"test_data": "s3://bucket/executions/e2/data/test"} if version == 2 else {}
        registry.register(GROUP, f"s3://bucket/m/{version}/model.tar.gz", "image", metrics=metrics)
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"]["root"] = str(root)
    raw["registry"]["model_package_group"] = GROUP
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(raw))

    result = CliRunner().invoke(cli, ["models", "compare", "1", "2", "-o", "json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    rows = {row["metric"]: row for row in json.loads(result.stdout)}
    assert (rows["same images: accuracy"]["v1"], rows["same images: accuracy"]["v2"]) == (0.25, 0.25)
    assert rows["same images: only right"]["v1"] == rows["same images: only right"]["v2"] == 4
    assert rows["same images: mcnemar_p"]["delta"] == 1.0
    assert rows["same images: test_images"]["v2"] == 16
    assert rows[f"accuracy {classes[1]}"]["delta"] == -1.0 and rows[f"accuracy {classes[0]}"]["delta"] == 1.0
    assert rows["same images: latency_ms"]["v1"] > 0 and rows["same images: model_bytes"]["delta"] == 0

    store.path_for("s3://bucket/m/1/model.tar.gz").unlink()
    gone = CliRunner().invoke(cli, ["models", "compare", "1", "2", "--config", str(config)])
    assert gone.exit_code == 0 and "same images" not in gone.stdout
    assert "not scored on the same images: version 1's model s3://bucket/m/1/model.tar.gz" in gone.stderr


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        (
            "production_tolerance",
            1.5,
            "evaluation -> production_tolerance: Input should be less than or equal to 1",
        ),
        ("significance_alpha", 0, "evaluation -> significance_alpha: Input should be greater than 0"),
        ("must_not_be_worse", True, "evaluation -> must_not_be_worse: unknown key"),
    ],
)
def test_bad_gate_settings_are_named_before_anything_runs(key: str, value: Any, words: str) -> None:
    import yaml

    from pipeline.config import LOCAL_CONFIG, ConfigError, parse_config

    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["evaluation"][key] = value
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_config(raw)
