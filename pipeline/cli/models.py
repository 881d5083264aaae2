"""The model commands: ``models list|approve|reject`` (the registry) and ``deploy`` (an approved version
to an endpoint), on SageMaker or on the local registry and endpoints, as the config's engine says.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.complete import complete_version
from pipeline.cli.options import (
    aws_options,
    checked,
    config_option,
    examples,
    local_option,
    open_engine,
    role_option,
)
from pipeline.cli.output import Output, Page, output_option, paging_options
from pipeline.names import VERSION

if TYPE_CHECKING:
    from pipeline.engines import Engine
    from pipeline.registry import ModelPackage


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
    from pipeline.engines import served_packages

    engine = open_engine(config_path, region, bucket)
    group = engine.cfg.registry.model_package_group
    packages = engine.registry().list_packages(group)
    serving = served_packages(engine)
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
    test images, the weakest breeds, the comparison with production on the same images (-o json: the
    whole comparison.json under "comparison"), its lineage (execution, data, code, training job, best
    trial and hyperparameters) and the Debugger rules' verdicts."""
    from pipeline.engines import served_packages
    from pipeline.lineage import RULE_COLUMNS, show
    from pipeline.registry import parse_version

    engine = open_engine(config_path, region, bucket)
    package = engine.registry().get(engine.cfg.registry.model_package_group, parse_version(version))
    record = show(package, served_packages(engine).get(package.arn, []), engine.read_json)
    click.echo(output.record(record, "rules", RULE_COLUMNS, json_only=("comparison",)))


@models.command(
    "compare", epilog=examples("dogpipe models compare 1 2", "dogpipe models compare 1 2 -o json")
)
@click.argument("first", metavar="VERSION", shell_complete=complete_version, callback=checked(VERSION))
@click.argument("second", metavar="OTHER", shell_complete=complete_version, callback=checked(VERSION))
@config_option
@aws_options
@local_option
@output_option
@click.option("--no-score", is_flag=True, help="Only the registered metrics: do not score both models again.")
def models_compare(
    first: str,
    second: str,
    config_path: Path | None,
    region: str | None,
    bucket: str | None,
    output: Output,
    no_score: bool,
) -> None:
    """OTHER against VERSION: accuracy and weighted precision/recall/F1 with their difference, then each
    breed's F1, the ones that got worse first (from each version's registered evaluation). Where both
    models and the test split the newer one was compared on can be read (the local store, or S3), both
    are scored again on those same images: accuracy, weighted F1, size, single-image latency, the
    images only one got right with McNemar's p, each breed's accuracy (rows "same images: ...")."""
    import tempfile

    from pipeline.lineage import COMPARE_COLUMNS, compare, score_on_same_images, scored_rows
    from pipeline.registry import parse_version

    engine = open_engine(config_path, region, bucket)
    group = engine.cfg.registry.model_package_group
    registry = engine.registry()
    a, b = (registry.get(group, parse_version(item)) for item in (first, second))
    found = compare(a, b)
    if not no_score:
        with tempfile.TemporaryDirectory(prefix="dogpipe-compare-") as scratch:
            scored, why_not = score_on_same_images(a, b, engine.fetch, Path(scratch))
        if scored is None:
            click.echo(f"not scored on the same images: {why_not}", err=True)
        else:
            found += scored_rows(scored)
    columns = ("metric", f"v{a.version}", f"v{b.version}", "delta")
    rows = [dict(zip(columns, (row[key] for key in COMPARE_COLUMNS), strict=True)) for row in found]
    click.echo(output.rows(rows, columns, "nothing to compare"))


def _set_status(
    engine: Engine, version: str, status: str, note: str | None, force: bool = False, yes: bool = False
) -> ModelPackage:
    """Set the status; approving a Rejected version needs ``force`` and a note, and says so in the
    stored ApprovalDescription (what `models list` and Studio show). An approval first prints how the
    version compares with production and, when it is worse, needs ``yes``."""
    from pipeline.registry import parse_version, version_not_found

    group = engine.cfg.registry.model_package_group
    wanted = parse_version(version)
    registry = engine.registry()
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
        _weigh_against_production(engine, packages, current, yes)
    package = registry.set_approval(group, current.version, status, note)
    click.echo(f"{package.group} version {package.version}: {package.approval_status}")
    return package


def _weigh_against_production(
    engine: Engine, packages: list[ModelPackage], candidate: ModelPackage, yes: bool
) -> None:
    """The approver's summary (``pipeline/approver.py``: quality, gates, the comparison with production
    on the same images, lineage), then the decision: a candidate worse than production on accuracy or
    weighted F1 is approved only with --yes (an approval could otherwise replace a better model). The
    Compare step's comparison decides where there is one; else the registered metrics of both."""
    from pipeline.approver import comparison_of, summary, summary_lines
    from pipeline.engines import production_package, served_packages
    from pipeline.lineage import show
    from pipeline.tracking import RUN_ID_KEY

    record = show(candidate, served_packages(engine).get(candidate.arn, []), engine.read_json)
    comparison = comparison_of(candidate, engine.read_json)
    found = summary(record, comparison, run_id=candidate.metrics.get(RUN_ID_KEY))
    for line in summary_lines(found):
        click.echo(line)
    if comparison is not None and comparison.compared:
        if comparison.worse and not yes:
            raise click.ClickException(
                f"version {candidate.version} is worse than production version "
                f"{comparison.production_version} on the same test images ({found['comparison']}): "
                "approve with --yes to replace it anyway"
            )
        return
    production = production_package(engine, packages)
    if production is None or production.arn == candidate.arn:
        return
    _weigh_registered_metrics(candidate, production, yes)


def _weigh_registered_metrics(candidate: ModelPackage, production: ModelPackage, yes: bool) -> None:
    """Without a comparison on the same images: the two versions' registered metrics, one line."""
    from pipeline.lineage import quality

    mine, theirs = quality(candidate.metrics), quality(production.metrics)
    parts, worse = [], []
    for name in ("accuracy", "weighted_f1"):
        ours, production_value = mine[name], theirs[name]
        if ours is None or production_value is None:
            continue
        delta = ours - production_value
        parts.append(f"{name} {ours:.4f} vs {production_value:.4f} ({delta:+.4f})")
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

    engine = open_engine(config_path, region, bucket)
    deploy_after_approval(engine, _set_status(engine, version, "Approved", note, force, yes))


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
    _set_status(open_engine(config_path, region, bucket), version, "Rejected", note)


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
    from pipeline.registry import approved_package

    engine = open_engine(config_path, region, bucket, role_arn)
    package = approved_package(engine.registry(), engine.cfg.registry.model_package_group)
    if engine.cfg.deploy.on_approval == stage:  # production is reached only through an approval
        click.echo(engine.run_deploy_pipeline(package, click.echo))
        return
    click.echo(engine.deploy(stage, package, wait))


MODEL_COMMANDS: tuple[click.Command, ...] = (models, deploy)
