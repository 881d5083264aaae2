"""Shell completion of the names a command takes: execution ids, model versions, endpoint names.

Each completer reads the config the command would read (``--config`` typed so far, else the one rule's
``DOGPIPE_CONFIG`` / ``config/local.yaml``) and asks that engine. Completion must never break the shell:
any failure (no config, no credentials, no network) completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from pipeline.config import PipelineConfig, load_config

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _config(ctx: click.Context) -> PipelineConfig:
    from pipeline.cli.options import CONFIG_ENV, DEFAULT_CONFIG_PATH

    path = ctx.params.get("config_path") or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    return load_config(Path(path))


def _sagemaker(cfg: PipelineConfig) -> Any:
    import boto3
    from botocore.config import Config

    quick = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    return boto3.Session(region_name=cfg.project.region).client("sagemaker", config=quick)


def _completer(names: Callable[[PipelineConfig], list[tuple[str, str]]]) -> Completer:
    """A click ``shell_complete`` callback offering ``names(cfg)`` (value, help) that start as typed."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            found = names(_config(ctx))
        except Exception:  # a completion that fails must not print a traceback into the shell
            return []
        return [CompletionItem(value, help=text) for value, text in found if value.startswith(incomplete)]

    return complete


def _executions(cfg: PipelineConfig) -> list[tuple[str, str]]:
    if cfg.engine == "local":
        from pipeline.local.executions import ExecutionStore

        executions = reversed(ExecutionStore(cfg.local.root).list())
        return [(item.id, f"{item.record['status']} {item.record['started_at']}") for item in executions]
    summaries = _sagemaker(cfg).list_pipeline_executions(
        PipelineName=cfg.project.name, SortBy="CreationTime", SortOrder="Descending", MaxResults=50
    )["PipelineExecutionSummaries"]
    return [(item["PipelineExecutionArn"], item.get("PipelineExecutionStatus", "")) for item in summaries]


def _versions(cfg: PipelineConfig) -> list[tuple[str, str]]:
    from pipeline.registry import LocalRegistry, SageMakerRegistry

    if cfg.engine == "local":
        registry: Any = LocalRegistry(cfg.local.root)
    else:
        registry = SageMakerRegistry(_sagemaker(cfg), None)
    packages = registry.list_packages(cfg.registry.model_package_group)
    return [(str(package.version), package.approval_status) for package in packages]


def _endpoints(cfg: PipelineConfig) -> list[tuple[str, str]]:
    if cfg.engine == "local":
        from pipeline.local.endpoint_servers import known_endpoints

        return [(name, "local") for name in known_endpoints(cfg.local.root)]
    endpoints = _sagemaker(cfg).list_endpoints(MaxResults=100)["Endpoints"]
    return [(item["EndpointName"], item.get("EndpointStatus", "")) for item in endpoints]


complete_execution = _completer(_executions)
complete_version = _completer(_versions)
complete_endpoint = _completer(_endpoints)
