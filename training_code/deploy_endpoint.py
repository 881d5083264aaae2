"""The deploy pipeline's last job: put a new endpoint config on the stage's endpoint, blue/green.

    python3 deploy_endpoint.py --endpoint-name E --endpoint-config-name C --model-package-arn ARN \\
        --group G --stage prod [--blue-green JSON --rollback-alarms A,B] [--wait-minutes N]

A job, not the pipeline's Endpoint step, because that step takes only ``EndpointConfigName``,
``EndpointName`` and ``Tags`` (the pipeline-definition schema): blue/green traffic shifting with
auto-rollback needs ``UpdateEndpoint``'s ``DeploymentConfig``.

Before it touches the endpoint the job asks the registry again which package the stage should serve
(the one approved last, :func:`resolve_model_package.newest_approval`). A deploy that was retried or
resumed after a later approval, or after its package was rejected, ends here with the reason and
changes nothing. It then creates the endpoint, or updates it with the guardrails, waits until it is
``InService`` and fails if SageMaker rolled the update back (the endpoint still names an older config).

On SageMaker it calls DescribeEndpoint / CreateEndpoint / UpdateEndpoint with boto3 (in every framework
image). The local engine runs this step itself with the same argument parser and the same freshness
rule (``pipeline/local/deploy_job.py``): its endpoints are server processes on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__:  # imported as training_code.deploy_endpoint (the local engine, tests)
    from .resolve_model_package import LATEST, describe_sagemaker, sagemaker_client
else:  # run as a script inside the processing container
    from resolve_model_package import LATEST, describe_sagemaker, sagemaker_client  # type: ignore[no-redef]

#: This script's file name: the step builder runs it, the local engine knows the step by it.
SCRIPT = Path(__file__).name
#: Where SageMaker looks for a processing job's ExitMessage (the first 1 KB is kept).
EXIT_MESSAGE = Path("/opt/ml/output/message")
POLL_SECONDS = 30


class DeployRefused(RuntimeError):
    """The deploy must not (or did not) change the endpoint; the message says why."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--endpoint-config-name", required=True)
    parser.add_argument("--model-package-arn", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--blue-green", default="", help="DeploymentConfig.BlueGreenUpdatePolicy (JSON).")
    parser.add_argument("--rollback-alarms", default="", help="CloudWatch alarms that roll back (A,B).")
    parser.add_argument("--wait-minutes", type=float, default=60.0)
    return parser.parse_args(argv)


def stale_reason(target: dict[str, Any], current: dict[str, Any], stage: str) -> str | None:
    """Why deploying ``target`` (the package this execution resolved) would undo a later decision, or
    None when it is still what ``stage`` should serve. Both are ``package.json``-shaped facts; ``current``
    is what ``latest`` resolves to now."""
    version = target.get("ModelPackageVersion")
    if target.get("ModelApprovalStatus") != "Approved":
        return (
            f"version {version} is {target.get('ModelApprovalStatus')} now (it was Approved when this deploy "
            f"started): the {stage} endpoint was left as it is"
        )
    if current.get("ModelPackageArn") != target.get("ModelPackageArn"):
        return (
            f"version {current.get('ModelPackageVersion')} was approved for {stage} after this deploy of "
            f"version {version} started: the {stage} endpoint was left as it is"
        )
    return None


def deployment_config(args: argparse.Namespace) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig from the two arguments the step passes."""
    alarms = [name for name in args.rollback_alarms.split(",") if name]
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": json.loads(args.blue_green)}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return config


def _endpoint(client: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return client.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if "Could not find endpoint" in str(error.response.get("Error", {}).get("Message", "")):
            return None
        raise


def switch_endpoint(client: Any, args: argparse.Namespace) -> str:
    """Create the endpoint or update it blue/green; returns what was done."""
    if _endpoint(client, args.endpoint_name) is None:
        client.create_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=args.endpoint_config_name)
        return "created"
    request: dict[str, Any] = {
        "EndpointName": args.endpoint_name,
        "EndpointConfigName": args.endpoint_config_name,
    }
    if args.blue_green:
        request["DeploymentConfig"] = deployment_config(args)
    client.update_endpoint(**request)
    return "updated"


def wait_in_service(client: Any, args: argparse.Namespace, sleep: Any = time.sleep) -> dict[str, Any]:
    """Poll until the endpoint settles; a failure or a rollback is a :class:`DeployRefused`."""
    deadline = time.monotonic() + args.wait_minutes * 60
    while True:
        described = client.describe_endpoint(EndpointName=args.endpoint_name)
        status = described.get("EndpointStatus")
        if status == "InService":
            serving = described.get("EndpointConfigName")
            if serving != args.endpoint_config_name:
                raise DeployRefused(
                    f"{args.endpoint_name} rolled back to {serving} (an alarm fired during the traffic shift)"
                )
            return described
        if status in ("Failed", "OutOfService"):
            raise DeployRefused(f"{args.endpoint_name} is {status}: {described.get('FailureReason', '')}")
        if time.monotonic() > deadline:
            raise DeployRefused(f"{args.endpoint_name} still {status} after {args.wait_minutes:g} minutes")
        sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client = sagemaker_client()
    try:
        target = describe_sagemaker(args.model_package_arn, args.group)
        reason = stale_reason(target, describe_sagemaker(LATEST, args.group), args.stage)
        if reason:
            raise DeployRefused(reason)
        action = switch_endpoint(client, args)
        print(
            f"{args.endpoint_name}: {action} with {args.endpoint_config_name}; waiting for InService",
            flush=True,
        )
        wait_in_service(client, args)
    except DeployRefused as refused:
        print(f"ERROR: {refused}", file=sys.stderr, flush=True)
        if EXIT_MESSAGE.parent.is_dir():
            EXIT_MESSAGE.write_text(str(refused)[:1024])
        return 1
    print(f"{args.endpoint_name}: InService with {args.endpoint_config_name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
