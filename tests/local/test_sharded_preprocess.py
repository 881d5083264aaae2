"""A 2-instance Preprocess on the local engine: the built definition's Preprocess (data input
``ShardedByS3Key``) and MergeStats steps, run as real processes, give the outputs of 1 instance, bit
for bit."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import LOCAL_CONFIG, PipelineConfig, load_config, parse_config
from pipeline.definition.document import build_definition
from pipeline.local.context import EngineSettings
from pipeline.local.engine import LocalEngine
from pipeline.local.run import stage_code_in_store
from pipeline.sample_data import write_sample_data

STATS_FILES = ("stats.json", "classes.json", "manifest.json", "quarantine.json")


def tree(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def config(instances: int) -> PipelineConfig:
    raw = json.loads(json.dumps(load_config(LOCAL_CONFIG).model_dump(mode="json")))
    raw["processing"]["instance_count"] = instances
    raw["data"]["image_size"] = 32
    raw["steps"]["cache"] = False
    return parse_config(raw)


def run_preprocess(root: Path, images: Path, instances: int) -> tuple[LocalEngine, Any]:
    """Only the steps that prepare the data, from the definition ``dogpipe run`` would execute."""
    cfg = config(instances)
    engine = LocalEngine(EngineSettings(root=root), echo=lambda line: None)
    code = stage_code_in_store(cfg, engine.store)
    full = json.loads(build_definition(cfg, role_arn=cfg.project.role_arn, code=code))
    keep = {"Preprocess", "MergeStats"}
    definition = {**full, "Steps": [step for step in full["Steps"] if step["Name"] in keep]}
    data_uri = "s3://dogpipe-local/datasets/dirty/"
    for path in sorted(images.rglob("*")):
        if path.is_file():
            engine.store.put_file(path, data_uri + path.relative_to(images).as_posix())
    result = engine.start(definition, "test", {"InputDataUrl": data_uri})
    assert result.status == "Succeeded", result.failure_reason
    return engine, result


def output(engine: LocalEngine, result: Any, step: str, name: str) -> Path:
    outputs = result.steps[step]["properties"]["ProcessingOutputConfig"]["Outputs"]
    (uri,) = [item["S3Output"]["S3Uri"] for item in outputs if item["OutputName"] == name]
    return engine.store.path_for(uri)


@pytest.fixture(scope="module")
def dirty_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dirty") / "images"
    write_sample_data(root, classes=3, per_class=5, seed=3, with_bad_files=True, sides=(40, 64))
    return root


@pytest.fixture(scope="module")
def runs(dirty_images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[LocalEngine, Any]]:
    root = tmp_path_factory.mktemp("engines")
    return {count: run_preprocess(root / str(count), dirty_images, count) for count in (1, 2)}


def test_two_instances_give_the_one_instance_outputs_bit_for_bit(runs: dict[int, Any]) -> None:
    (one, single), (two, sharded) = runs[1], runs[2]
    assert "MergeStats" not in single.steps and sharded.steps["MergeStats"]["status"] == "Succeeded"

    single_stats = output(one, single, "Preprocess", "stats")
    merged_stats = output(two, sharded, "MergeStats", "stats")
    for name in STATS_FILES:
        assert (merged_stats / name).read_bytes() == (single_stats / name).read_bytes(), name
    assert tree(output(two, sharded, "Preprocess", "data")) == tree(output(one, single, "Preprocess", "data"))
    quarantined = json.loads((merged_stats / "quarantine.json").read_text())
    assert len(quarantined) == 3  # the sample's three unusable files, whichever instance saw them

    # Each instance really processed a share: its part lists about half the files, none twice.
    part_files = sorted(output(two, sharded, "Preprocess", "stats").glob("parts/*.json"))
    parts = [json.loads(path.read_text()) for path in part_files]
    assert [part["host"] for part in parts] == ["algo-1", "algo-2"]
    kept = [[item["source"] for item in part["kept"]] for part in parts]
    total = json.loads((merged_stats / "manifest.json").read_text())
    every = sorted(item["source"] for split in total["splits"].values() for item in split["files"])
    assert sorted(kept[0] + kept[1]) == every and kept[0] and kept[1]
    assert abs(len(kept[0]) - len(kept[1])) <= 3
    logs = sorted(path.name for path in two.settings.root.rglob("preprocess-*-algo-*.log"))
    assert len(logs) == 2, logs


def test_a_missing_part_fails_the_merge_naming_the_host(runs: dict[int, Any], tmp_path: Path) -> None:
    """The merge never publishes statistics of part of the data."""
    from training_code import preprocess_merge

    engine, sharded = runs[2]
    parts = tmp_path / "parts"
    shutil.copytree(output(engine, sharded, "Preprocess", "stats"), parts)
    (parts / "parts" / "algo-2.json").unlink()
    with pytest.raises(preprocess_merge.DataError, match=r"missing algo-2"):
        preprocess_merge.read_parts(parts)
