"""The report's markup: a Jinja2 environment over ``templates/`` and the filter that formats a cell.

Templates escape everything by default; a value becomes markup only through :func:`cell`, which
escapes what it wraps.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).with_name("templates")

#: Characters of a dict or list shown in one cell (rule evidence, profiler figures) before "…".
CELL_LIMIT = 600


def rounded(value: Any) -> Any:
    """Floats at 4 significant digits, inside dicts and lists too: figures to read, not to copy."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def _decimal(text: str) -> float | None:
    """``text`` as a float when it is a non-integer number (SageMaker passes hyperparameters as strings)."""
    if not any(mark in text for mark in ".eE"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def cell(value: Any) -> Markup:
    """One table cell: floats at 4 significant digits (a decimal string keeps its exact value on hover),
    dicts and lists as compact JSON cut at :data:`CELL_LIMIT` characters."""
    if isinstance(value, float):
        return Markup(f"{value:.4g}")
    if isinstance(value, str) and (number := _decimal(value)) is not None:
        return Markup('<span title="{}">{}</span>').format(value, f"{number:.4g}")
    if isinstance(value, (dict, list)):
        text = json.dumps(rounded(value))
        return Markup("<code>{}</code>").format(text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT] + " …")
    return escape("" if value is None else str(value))


@functools.cache
def environment() -> Environment:
    """One environment per process: templates are compiled once."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,  # a section context that lacks a name is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
