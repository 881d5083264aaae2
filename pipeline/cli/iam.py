"""``dogpipe iam-policy``: print the IAM policies the SageMaker engine needs
(``pipeline.sagemaker.iam_policy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from pipeline.cli.options import (
    aws_options,
    config_option,
    deploy_definition_text,
    examples,
    open_engine,
    role_option,
)

ROLES = ("execution", "events", "operator")
if TYPE_CHECKING:
    from pipeline.engines import SageMakerVerbs

PLACEHOLDER_ROLE = "arn:aws:iam::ACCOUNT_ID:role/dogpipe-execution"


@click.command(
    "iam-policy",
    epilog=examples(
        "dogpipe iam-policy --config config/pipeline.yaml --role-arn arn:aws:iam::123456789012:role/dogpipe",
        "dogpipe iam-policy --role events",
    ),
)
@config_option
@aws_options
@role_option
@click.option("--role", "which", type=click.Choice(["all", *ROLES]), default="all", show_default=True,
              help="Which role's documents to print.")  # fmt: skip
def iam_policy(
    config_path: Path | None, region: str | None, bucket: str | None, role_arn: str | None, which: str
) -> None:
    """Least-privilege IAM policies (JSON) for the execution role, the EventBridge/Scheduler role (with
    its trust policy) and the operator who runs upsert/start/approve/deploy; derived from the definitions
    and the calls the code makes. Makes no AWS call."""
    from pipeline.cli.options import definition_text

    engine = cast("SageMakerVerbs", open_engine(config_path, region, bucket, role_arn, verb="iam-policy"))
    cfg = engine.cfg
    role = cfg.project.role_arn or PLACEHOLDER_ROLE
    definitions = [definition_text(cfg, None), deploy_definition_text(cfg)]
    documents = engine.iam_policies(definitions, role, cfg.deploy.events_role_arn or role)
    click.echo(
        json.dumps(documents if which == "all" else {which: documents[which]}, indent=2, sort_keys=True)
    )
