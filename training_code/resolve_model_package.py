"""The deploy pipeline's first job: describe the model package it was asked to deploy.

    python3 resolve_model_package.py --model-package-arn ARN|latest --group GROUP --output-dir DIR

Writes ``DIR/package.json`` = ``{"ModelPackageArn", "ModelPackageGroupName", "ModelPackageVersion",
"ModelApprovalStatus", "ModelDataUrl", "Reason"}``; the pipeline's condition step reads it (a property
file) and deploys only an ``Approved`` package of the configured group. The job itself succeeds for any
package, deployable or not, so the execution fails at the named Fail step with the facts, not here with
a traceback. ``latest`` means the group's highest Approved version (what an approval event deploys:
EventBridge rule targets cannot pass event fields as pipeline parameters).

Pipeline Steps cannot read a registry themselves, hence a job. On SageMaker it calls
DescribeModelPackage / ListModelPackages with boto3 (in every framework image). The local engine
stands in for that API with its registry folder, named by ``DOGPIPE_LOCAL_REGISTRY``
(``<group>/<version>.json``, the files ``pipeline.registry.LocalRegistry`` writes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

LATEST = "latest"
_PACKAGE_ARN = re.compile(r"model-package/([^/]+)/(\d+)$")


def _facts(arn: str, group: str, version: int, status: str, data_url: str, reason: str) -> dict[str, Any]:
    return {
        "ModelPackageArn": arn,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelApprovalStatus": status,
        "ModelDataUrl": data_url,
        "Reason": reason,
    }


def _not_found(arn: str, reason: str) -> dict[str, Any]:
    return _facts(arn, "", 0, "NotFound", "", reason)


def describe_local(registry: Path, arn: str, group: str) -> dict[str, Any]:
    """The local engine's registry: one JSON file per version."""
    if arn == LATEST:
        approved = []
        for path in sorted((registry / group).glob("*.json")):
            record = json.loads(path.read_text())
            if record.get("approval_status") == "Approved":
                approved.append(record)
        if not approved:
            return _not_found(arn, f"no Approved model package in group {group}")
        record = max(approved, key=lambda item: int(item["version"]))
    else:
        match = _PACKAGE_ARN.search(arn)
        path = registry / match.group(1) / f"{match.group(2)}.json" if match else None
        if path is None or not path.is_file():
            return _not_found(arn, f"no model package {arn}")
        record = json.loads(path.read_text())
    return _facts(
        record["arn"],
        record["group"],
        int(record["version"]),
        record["approval_status"],
        record.get("model_data_url") or "",
        "",
    )


def describe_sagemaker(arn: str, group: str) -> dict[str, Any]:
    """DescribeModelPackage (after ListModelPackages for ``latest``)."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("sagemaker")
    if arn == LATEST:
        summaries = client.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        ).get("ModelPackageSummaryList", [])
        if not summaries:
            return _not_found(arn, f"no Approved model package in group {group}")
        arn = summaries[0]["ModelPackageArn"]
    try:
        described = client.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        return _not_found(arn, str(error.response.get("Error", {}).get("Message", error)))
    containers = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
    return _facts(
        described["ModelPackageArn"],
        described.get("ModelPackageGroupName", ""),
        int(described.get("ModelPackageVersion", 0)),
        described.get("ModelApprovalStatus", ""),
        containers[0].get("ModelDataUrl", ""),
        "",
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-package-arn", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    arn = args.model_package_arn.strip() or LATEST
    local = os.environ.get("DOGPIPE_LOCAL_REGISTRY")
    facts = describe_local(Path(local), arn, args.group) if local else describe_sagemaker(arn, args.group)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "package.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    print(f"model package: {json.dumps(facts, sort_keys=True)}", flush=True)
    return facts


if __name__ == "__main__":
    main()
