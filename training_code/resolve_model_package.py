"""The deploy pipeline's first job: describe the model package it was asked to deploy.

    python3 resolve_model_package.py --model-package-arn ARN|latest --group GROUP --output-dir DIR

Writes ``DIR/package.json`` = ``{"ModelPackageArn", "ModelPackageGroupName", "ModelPackageVersion",
"ModelApprovalStatus", "ModelDataUrl", "Reason"}``; the pipeline's condition step reads it (a property
file) and deploys only an ``Approved`` package of the configured group. The job itself succeeds for any
package, deployable or not, so the execution fails at the named Fail step with the facts, not here with
a traceback. ``latest`` means the group's most recently approved version (what an approval event
deploys: EventBridge rule targets cannot pass event fields as pipeline parameters); the Deploy job
applies the same rule again before it touches the endpoint (``deploy_endpoint.py``).

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LATEST = "latest"
_PACKAGE_ARN = re.compile(r"model-package/([^/]+)/(\d+)$")
#: How many of the newest Approved packages ``latest`` compares on SageMaker (one Describe call each).
APPROVED_LOOKBACK = 20


def newest_approval(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Approved record approved last (``approval_time``, else ``created``; then the version): what a
    stage should serve. Approving version 1 after version 2 puts 1 on the stage, and keeps it there."""
    approved = [record for record in records if record.get("approval_status") == "Approved"]

    def when(record: dict[str, Any]) -> tuple[str, int]:
        return (str(record.get("approval_time") or record.get("created") or ""), int(record["version"]))

    return max(approved, key=when, default=None)


def sagemaker_client() -> Any:
    """The SageMaker client of the job's region (the step sets AWS_DEFAULT_REGION; jobs outside a
    region-aware environment would otherwise stop at botocore's NoRegionError)."""
    import boto3

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.client("sagemaker", region_name=region) if region else boto3.client("sagemaker")


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
        records = [json.loads(path.read_text()) for path in sorted((registry / group).glob("*.json"))]
        record = newest_approval(records)
        if record is None:
            return _not_found(arn, f"no Approved model package in group {group}")
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
    """DescribeModelPackage (for ``latest``: the newest Approved packages, the last one approved)."""
    from botocore.exceptions import ClientError

    client = sagemaker_client()
    if arn == LATEST:
        summaries = client.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=APPROVED_LOOKBACK,
        ).get("ModelPackageSummaryList", [])
        described = [client.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]
        chosen = newest_approval(
            [
                {
                    "arn": item["ModelPackageArn"],
                    "version": item.get("ModelPackageVersion", 0),
                    "approval_status": item.get("ModelApprovalStatus"),
                    "approval_time": _iso(item.get("LastModifiedTime")),
                    "created": _iso(item.get("CreationTime")),
                }
                for item in described
            ]
        )
        if chosen is None:
            return _not_found(arn, f"no Approved model package in group {group}")
        arn = chosen["arn"]
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


def _iso(value: Any) -> str | None:
    """A timestamp as UTC ISO text, so times from different calls compare as strings."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value) if value else None


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
