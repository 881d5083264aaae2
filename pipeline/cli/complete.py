"""Shell completion of the names a command takes: execution ids, model versions, endpoint names.

Each completer reads the config the command would read (``--config`` typed so far, else the one rule's
``DOGPIPE_CONFIG`` / ``config/local.yaml``) and asks that engine (``pipeline.engines``). Completion
must never break the shell: any failure (no config, no credentials, no network) completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from pipeline.config import load_config

if TYPE_CHECKING:
    from pipeline.engines import Engine

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _engine(ctx: click.Context) -> Engine:
    from pipeline.cli.options import CONFIG_ENV, DEFAULT_CONFIG_PATH
    from pipeline.engines import engine_for

    path = ctx.params.get("config_path") or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    return engine_for(load_config(Path(path)))


def _completer(names: Callable[[Engine], list[tuple[str, str]]]) -> Completer:
    """A click ``shell_complete`` callback offering ``names(engine)`` (value, help) that start as typed."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            found = names(_engine(ctx))
        except Exception:  # a completion that fails must not print a traceback into the shell
            return []
        return [CompletionItem(value, help=text) for value, text in found if value.startswith(incomplete)]

    return complete


complete_execution = _completer(lambda engine: engine.execution_choices())
complete_version = _completer(lambda engine: engine.version_choices())
complete_endpoint = _completer(lambda engine: engine.endpoint_choices())
