"""The model commands: ``models list|approve|reject`` (the registry) and ``deploy`` (an approved version
to an endpoint), on SageMaker or on the local registry and endpoints, as the config's engine says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline.cli.complete import complete_version
from pipeline.cli.options import (
    aws_config,
    aws_options,
    checked,
    clients_for,
    config_option,
    examples,
    friendly_errors,
    local_option,
    role_option,
)
from pipeline.cli.output import Output, Page, output_option, paging_options
from pipeline.config import PipelineConfig
from pipeline.names import VERSION


def registry_for(cfg: PipelineConfig) -> Any:
    """The registry of the config's engine: the local one for engine: local, else SageMaker's."""
    from pipeline.registry import LocalRegistry, SageMakerRegistry

    if cfg.engine == "local":
        return LocalRegistry(cfg.local.root)
    clients = clients_for(cfg)
    with friendly_errors():
        caller = clients.check_credentials()
    return SageMakerRegistry(clients.sagemaker, clients.s3, caller)


@click.group("models", epilog=examples("dogpipe models list", "dogpipe models approve 3 --note ok"))
def models() -> None:
    """The model registry: list packages, approve or reject a version."""


@models.command("list", epilog=examples("dogpipe models list", "dogpipe models list -o json"))
@config_option
@aws_options
@local_option
@output_option
@paging_options
def models_list(
    config_path: Path | None, region: str | None, bucket: str | None, output: Output, page: Page
) -> None:
    """Versions of the model package group: status, accuracy, the stage serving each, who approved it
    (-o json adds the note, approval time, source execution and model artifact)."""
    from pipeline.cli.listings import PACKAGE_COLUMNS, package_rows

    cfg = aws_config(config_path, region, bucket)
    group = cfg.registry.model_package_group
    with friendly_errors():
        registry = registry_for(cfg)
        packages = registry.list_packages(group)
        serving = served_packages(cfg, registry)
    empty = f"no model packages in group {group}"
    click.echo(output.rows(package_rows(page.apply(packages), serving), PACKAGE_COLUMNS, empty))


@models.command(
    "show", epilog=examples("dogpipe models show 3", "dogpipe models show 3 -o json --query hyperparameters")
)
@click.argument("version", shell_complete=complete_version, callback=checked(VERSION))
@config_option
@aws_options
@local_option
@output_option
def models_show(
    version: str, config_path: Path | None, region: str | None, bucket: str | None, output: Output
) -> None:
    """One version as an approver weighs it: status and who decided, accuracy and weighted F1 on how many
    test images, the weakest breeds, its lineage (execution, data, code, training job, best trial and
    hyperparameters) and the Debugger rules' verdicts."""
    from pipeline.lineage import RULE_COLUMNS, show
    from pipeline.registry import parse_version

    cfg = aws_config(config_path, region, bucket)
    with friendly_errors():
        registry = registry_for(cfg)
        package = registry.get(cfg.registry.model_package_group, parse_version(version))
        record = show(package, served_packages(cfg, registry).get(package.arn, []), _json_reader(cfg))
    click.echo(output.record(record, "rules", RULE_COLUMNS))


@models.command(
    "compare", epilog=examples("dogpipe models compare 1 2", "dogpipe models compare 1 2 -o json")
)
@click.argument("first", metavar="VERSION", shell_complete=complete_version, callback=checked(VERSION))
@click.argument("second", metavar="OTHER", shell_complete=complete_version, callback=checked(VERSION))
@config_option
@aws_options
@local_option
@output_option
def models_compare(
    first: str, second: str, config_path: Path | None, region: str | None, bucket: str | None, output: Output
) -> None:
    """OTHER against VERSION: accuracy and weighted precision/recall/F1 with their difference, then each
    breed's F1, the ones that got worse first (from each version's registered evaluation)."""
    from pipeline.lineage import COMPARE_COLUMNS, compare
    from pipeline.registry import parse_version

    cfg = aws_config(config_path, region, bucket)
    group = cfg.registry.model_package_group
    with friendly_errors():
        registry = registry_for(cfg)
        a, b = (registry.get(group, parse_version(item)) for item in (first, second))
    columns = ("metric", f"v{a.version}", f"v{b.version}", "delta")
    rows = [dict(zip(columns, (row[key] for key in COMPARE_COLUMNS), strict=True)) for row in compare(a, b)]
    click.echo(output.rows(rows, columns, "nothing to compare"))


def _json_reader(cfg: PipelineConfig) -> Callable[[str], Any]:
    """Read a JSON file a package's metadata points to from the engine's store; None when unreadable
    (a missing report must not hide the version)."""
    import json

    if cfg.engine == "local":
        from pipeline.object_store import ObjectStore, StoreError

        store = ObjectStore(cfg.local.root)

        def read_local(uri: str) -> Any:
            try:
                return json.loads(store.read_text(uri))
            except (StoreError, OSError, ValueError):
                return None

        return read_local
    from pipeline.registry import read_s3_json

    s3 = clients_for(cfg).s3
    return lambda uri: read_s3_json(s3, uri)


def served_packages(cfg: PipelineConfig, registry: Any = None) -> dict[str, list[str]]:
    """Model package ARN → the stages whose endpoint serves it now (a stopped local server serves nothing);
    on SageMaker through ``registry``'s client when given (one session per command)."""
    from pipeline.sagemaker.deploy import STAGES, endpoint_name_for

    stages = {endpoint_name_for(cfg, stage): stage for stage in reversed(STAGES)}  # staging, then prod
    served: dict[str, list[str]] = {}
    if cfg.engine == "local":
        from pipeline.local.endpoint_servers import list_endpoints

        arns = {row.name: row.model_package_arn for row in list_endpoints(cfg.local.root) if row.alive}
    else:
        from pipeline.sagemaker.endpoints import served_package_of

        sagemaker = getattr(registry, "sagemaker", None) or clients_for(cfg).sagemaker
        arns = {name: served_package_of(sagemaker, name) for name in stages}
    for name, stage in stages.items():
        if arns.get(name):
            served.setdefault(str(arns[name]), []).append(stage)
    return served


def _set_status(
    cfg: PipelineConfig, version: str, status: str, note: str | None, force: bool = False, yes: bool = False
) -> Any:
    """Set the status; approving a Rejected version needs ``force`` and a note, and says so in the
    stored ApprovalDescription (what `models list` and Studio show). An approval first prints how the
    version compares with production and, when it is worse, needs ``yes``."""
    from pipeline.registry import parse_version, version_not_found

    group = cfg.registry.model_package_group
    wanted = parse_version(version)
    with friendly_errors():
        registry = registry_for(cfg)
        packages = registry.list_packages(group)  # once: the version and production come from it
        current = next((package for package in packages if package.version == wanted), None)
        if current is None:
            raise version_not_found(group, wanted, packages)
        if status == "Approved" and current.approval_status == "Rejected":
            if not (force and note):
                raise click.ClickException(
                    f"version {current.version} was Rejected ({current.approval_description or 'no note'}): "
                    "approving it needs --force and a --note saying why"
                )
            note = f"approved over a rejection: {note}"
        if status == "Approved":
            _weigh_against_production(cfg, registry, packages, current, yes)
        package = registry.set_approval(group, current.version, status, note)
    click.echo(f"{package.group} version {package.version}: {package.approval_status}")
    return package


def production_package(cfg: PipelineConfig, registry: Any, packages: list[Any]) -> Any:
    """Of ``packages``, the version production serves (the prod endpoint's package), else the newest
    approval; None on a first approval."""
    serving = {arn for arn, stages in served_packages(cfg, registry).items() if "prod" in stages}
    served = [package for package in packages if package.arn in serving]
    if served:
        return served[0]
    from pipeline.registry import latest_approved_of

    return latest_approved_of(packages)


def _weigh_against_production(
    cfg: PipelineConfig, registry: Any, packages: list[Any], candidate: Any, yes: bool
) -> None:
    """One line comparing ``candidate`` with production; a candidate worse on accuracy or weighted F1
    is approved only with --yes (an approval could otherwise replace a better model)."""
    from pipeline.lineage import quality

    production = production_package(cfg, registry, packages)
    if production is None or production.arn == candidate.arn:
        return
    mine, theirs = quality(candidate.metrics), quality(production.metrics)
    parts, worse = [], []
    for name in ("accuracy", "weighted_f1"):
        if mine[name] is None or theirs[name] is None:
            continue
        delta = mine[name] - theirs[name]
        parts.append(f"{name} {mine[name]:.4f} vs {theirs[name]:.4f} ({delta:+.4f})")
        if delta < 0:
            worse.append(name)
    summary = "; ".join(parts) or "no comparable metrics"
    click.echo(f"version {candidate.version} against production version {production.version}: {summary}")
    if worse and not yes:
        raise click.ClickException(
            f"version {candidate.version} is worse than production version {production.version} on "
            f"{' and '.join(worse)}: approve with --yes to replace it anyway"
        )


def _approval_arguments(command: Callable[..., None]) -> Callable[..., None]:
    """VERSION, --note and the config/AWS options that approve and reject both take."""
    for decorate in reversed(
        (
            click.argument("version", shell_complete=complete_version, callback=checked(VERSION)),
            click.option("--note", default=None, help="Why (stored as the ApprovalDescription)."),
            config_option,
            aws_options,
            local_option,
        )
    ):
        command = decorate(command)
    return command


@models.command("approve", epilog=examples('dogpipe models approve 3 --note "checked the report"'))
@_approval_arguments
@click.option("--force", is_flag=True, help="Approve a Rejected version (needs --note).")
@click.option("--yes", is_flag=True, help="Approve even when it is worse than the production version.")
def models_approve(
    version: str,
    note: str | None,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    force: bool,
    yes: bool,
) -> None:
    """Mark VERSION Approved; with deploy.on_approval set, the deploy pipeline puts it on that stage."""
    from pipeline.cli.approval import deploy_after_approval

    cfg = aws_config(config_path, region, bucket)
    deploy_after_approval(cfg, _set_status(cfg, version, "Approved", note, force, yes))


@models.command("reject", epilog=examples('dogpipe models reject 2 --note "overfits"'))
@_approval_arguments
def models_reject(
    version: str,
    note: str | None,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
) -> None:
    """Mark VERSION Rejected."""
    _set_status(aws_config(config_path, region, bucket), version, "Rejected", note)


@click.command(
    "deploy", epilog=examples("dogpipe deploy --stage prod", "dogpipe deploy --stage staging --wait")
)
@click.option(
    "--stage",
    type=click.Choice(["prod", "staging"]),
    default="prod",
    show_default=True,
    help="Which endpoint: deploy.production_endpoint or deploy.staging_endpoint.",
)
@config_option
@aws_options
@role_option
@local_option
@click.option("--wait", is_flag=True, help="Wait until the endpoint is InService.")
def deploy(
    stage: str,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    role_arn: str | None,
    wait: bool,
) -> None:
    """Deploy the latest Approved model package to the stage's endpoint; refuses when none is approved.
    The stage ``deploy.on_approval`` names is served only through the deploy pipeline (a listed deploy
    execution, with its re-check of the approval); others are deployed directly."""
    from pipeline.sagemaker.aws import require_role
    from pipeline.sagemaker.deploy import SageMakerDeployer, approved_package, deploy_locally

    cfg = aws_config(config_path, region, bucket, role_arn)
    if cfg.deploy.on_approval == stage:  # production is reached only through an approval
        from pipeline.cli.approval import run_deploy_pipeline

        with friendly_errors():
            package = approved_package(registry_for(cfg), cfg.registry.model_package_group)
        run_deploy_pipeline(cfg, package)
        return
    if cfg.engine == "local":
        with friendly_errors():
            record = deploy_locally(cfg, stage, registry_for(cfg))
        click.echo(f"endpoint {record['name']} serving {record['model_package_arn']} at {record['url']}")
        return
    with friendly_errors():
        role = require_role(cfg)
        package = approved_package(registry_for(cfg), cfg.registry.model_package_group)
        clients = clients_for(cfg)
        result = SageMakerDeployer(clients.sagemaker, clients.autoscaling).deploy(
            cfg, stage, package, role, wait=wait
        )
    click.echo(
        f"endpoint {result.endpoint_name} {result.action}: version {package.version} ({package.arn}) "
        f"via {result.endpoint_config_name}" + (", autoscaling on" if result.autoscaling else "")
    )


MODEL_COMMANDS: tuple[click.Command, ...] = (models, deploy)
