"""Preprocess on two instances and MergeStats, as SageMaker runs them, without the local engine.

The definition is built with ``processing.instance_count: 2``. Each instance is a container folder with
``/opt/ml/config/resourceconfig.json`` naming it (what SageMaker writes into processing containers), the
code input whole and its share of the data input's objects (``ShardedByS3Key``: here the sorted keys
dealt alternately, any split works); both instances' outputs are then put under one prefix as
SageMaker's uploads to the one ``S3Uri`` do, and MergeStats runs on that. The merged statistics equal
one container's run of the plain Preprocess, byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config, parse_config
from pipeline.definition.document import build_definition
from pipeline.local.container import Container
from tests.toolkit.jobs import REPO, step

CODE = REPO / "training_code"
IMAGE_SIZE = "32"


def sharded_steps() -> dict[str, dict[str, Any]]:
    raw = json.loads(json.dumps(load_config(DEFAULT_CONFIG).model_dump(mode="json")))
    raw["processing"]["instance_count"] = 2
    definition = json.loads(build_definition(parse_config(raw)))
    return {item["Name"]: item for item in definition["Steps"]}


Keys = list[tuple[Path, str]]


def run_container(
    arguments: dict[str, Any], job_dir: Path, inputs: dict[str, Keys], host: str, hosts: list[str]
) -> Container:
    """One container of a processing job: ``inputs`` are (file, key) lists per ProcessingInput name."""
    container = Container(job_dir)
    for item in arguments["ProcessingInputs"]:
        target = container.path(item["S3Input"]["LocalPath"])
        if item["InputName"] == "code":
            shutil.copytree(CODE, target, ignore=shutil.ignore_patterns("__pycache__"))
            continue
        for source, key in inputs[item["InputName"]]:
            (target / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / key)
    config = container.path("/opt/ml/config")
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
    for output in arguments["ProcessingOutputConfig"]["Outputs"]:
        container.path(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    app = arguments["AppSpecification"]
    argv = [IMAGE_SIZE if part == "224" else part for part in app.get("ContainerArguments", [])]
    result = subprocess.run(
        container.command([*app["ContainerEntrypoint"], *argv]),
        env=container.environment(arguments.get("Environment") or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{host}: {(result.stdout + result.stderr)[-4000:]}"
    return container


def files_of(root: Path) -> Keys:
    return [(path, path.relative_to(root).as_posix()) for path in sorted(root.rglob("*")) if path.is_file()]


def uploaded(containers: list[Container], local_path: str, prefix: Path) -> Path:
    """What every instance's upload of ``local_path`` to one S3 prefix leaves there (keys never collide)."""
    for container in containers:
        for source, key in files_of(container.path(local_path)):
            assert not (prefix / key).exists(), f"two instances upload {key}"
            (prefix / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, prefix / key)
    return prefix


@pytest.mark.slow
def test_two_sharded_instances_and_merge_stats_equal_one_instance(
    sample_dataset: Path, tmp_path: Path
) -> None:
    steps = sharded_steps()
    preprocess = steps["Preprocess"]["Arguments"]
    assert preprocess["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    hosts = ["algo-1", "algo-2"]
    keys = files_of(sample_dataset)
    shares = [keys[index :: len(hosts)] for index in range(len(hosts))]
    containers = [
        run_container(preprocess, tmp_path / host, {"data": share}, host, hosts)
        for host, share in zip(hosts, shares, strict=True)
    ]
    parts = uploaded(containers, "/opt/ml/processing/output/stats", tmp_path / "s3" / "stats")
    data = uploaded(containers, "/opt/ml/processing/output/data", tmp_path / "s3" / "data")
    assert sorted(path.name for path in (parts / "parts").iterdir()) == ["algo-1.json", "algo-2.json"]

    merge = steps["MergeStats"]["Arguments"]
    merged = run_container(merge, tmp_path / "merge", {"parts": files_of(parts)}, "algo-1", ["algo-1"])

    single = run_container(
        step("Preprocess")["Arguments"], tmp_path / "single", {"data": keys}, "algo-1", ["algo-1"]
    )
    one_stats = single.path("/opt/ml/processing/output/stats")
    merged_stats = merged.path("/opt/ml/processing/output/stats")
    for name in ("stats.json", "classes.json", "manifest.json", "quarantine.json"):
        assert (merged_stats / name).read_bytes() == (one_stats / name).read_bytes(), name
    one_data = single.path("/opt/ml/processing/output/data")
    assert [key for _, key in files_of(data)] == [key for _, key in files_of(one_data)]
