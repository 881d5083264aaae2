"""Builders of small hand-written pipeline definitions in the SageMaker format, for engine tests.

They follow what the SDK writes (``Arguments`` = the Create*Job request, expressions as
``{"Get": ...}``), so the engine is tested on the format, not on our own definition builder.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path
from typing import Any

from pipeline.object_store import ObjectStore

BUCKET = "s3://test-bucket"


def get(reference: str) -> dict[str, str]:
    return {"Get": reference}


def join(*values: Any, on: str = "/") -> dict[str, Any]:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def stage_script(store: ObjectStore, name: str, source: str) -> str:
    """Put a Python script in the store; returns its URI."""
    uri = f"{BUCKET}/code/{name}"
    store.put_bytes(uri, textwrap.dedent(source).encode())
    return uri


def stage_sourcedir(store: ObjectStore, files: dict[str, str]) -> str:
    """A sourcedir.tar.gz holding ``files`` (script mode), staged in the store."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, source in files.items():
            data = textwrap.dedent(source).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    uri = f"{BUCKET}/code/sourcedir.tar.gz"
    store.put_bytes(uri, buffer.getvalue())
    return uri


def processing_step(
    name: str,
    script_uri: str,
    *,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    arguments: list[Any] | None = None,
    environment: dict[str, Any] | None = None,
    cache: bool = False,
    property_files: list[dict[str, str]] | None = None,
    depends_on: list[str] | None = None,
) -> dict[str, Any]:
    """A Processing step running ``script_uri`` with inputs/outputs under /opt/ml/processing."""
    processing_inputs = [
        {
            "InputName": "code",
            "S3Input": {
                "S3Uri": script_uri,
                "LocalPath": "/opt/ml/processing/input/code",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }
    ]
    for input_name, uri in (inputs or {}).items():
        processing_inputs.append(
            {
                "InputName": input_name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": f"/opt/ml/processing/input/{input_name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        )
    step: dict[str, Any] = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
            },
            "AppSpecification": {
                "ImageUri": "local",
                "ContainerEntrypoint": [
                    "python3",
                    f"/opt/ml/processing/input/code/{script_uri.rsplit('/', 1)[1]}",
                ],
                "ContainerArguments": arguments or [],
            },
            "RoleArn": "arn:aws:iam::000000000000:role/test",
            "ProcessingInputs": processing_inputs,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": output_name,
                        "S3Output": {
                            "S3Uri": uri,
                            "LocalPath": f"/opt/ml/processing/output/{output_name}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for output_name, uri in (outputs or {}).items()
                ]
            },
            "Environment": environment or {},
        },
    }
    if cache:
        step["CacheConfig"] = {"Enabled": True, "ExpireAfter": "P30D"}
    if property_files:
        step["PropertyFiles"] = property_files
    if depends_on:
        step["DependsOn"] = depends_on
    return step


def training_request(
    sourcedir_uri: str,
    program: str,
    hyperparameters: dict[str, Any],
    *,
    channels: dict[str, Any],
    instance_count: int = 1,
    metrics: dict[str, str] | None = None,
    debug_hook: bool = False,
) -> dict[str, Any]:
    """A CreateTrainingJob request in script mode (hyperparameters JSON-encoded as the SDK does)."""
    import json

    request: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": "local",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": key, "Regex": regex} for key, regex in (metrics or {}).items()],
        },
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "ResourceConfig": {
            "VolumeSizeInGB": 30,
            "InstanceCount": instance_count,
            "InstanceType": "ml.m5.xlarge",
        },
        "RoleArn": "arn:aws:iam::000000000000:role/test",
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in channels.items()
        ],
        "HyperParameters": {
            "sagemaker_program": json.dumps(program),
            "sagemaker_submit_directory": json.dumps(sourcedir_uri),
            # The SDK JSON-encodes each value: 0.01 → "0.01", "adam" → "\"adam\"", True → "true".
            **{key: json.dumps(value) for key, value in hyperparameters.items()},
        },
    }
    if debug_hook:
        request["DebugHookConfig"] = {
            "S3OutputPath": f"{BUCKET}/debug",
            "HookParameters": {"save_interval": "5"},
            "CollectionConfigurations": [
                {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}}
            ],
        }
    return request


def definition(*steps: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": parameters or [], "Steps": list(steps)}


def write_local(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path
