"""The fields each listing command shows, as plain dicts: the one source of the table and ``-o json``.

Columns are named once per listing: the model packages here, executions, steps and endpoints by the
engine that lists them (``pipeline.engines.Listing``); ``pipeline.cli.output`` renders them either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.registry import ModelPackage

PACKAGE_COLUMNS = ("version", "status", "created", "accuracy", "serving", "approved_by")


def package_rows(
    packages: Iterable[ModelPackage], serving: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """One row per version: what an approver weighs (accuracy, where it came from, who decided what and
    when, with which note) and the endpoints that serve it now (``serving``: package ARN → endpoints)."""
    return [
        {
            "version": package.version,
            "status": package.approval_status,
            "created": package.created,
            "accuracy": package.accuracy,
            "serving": ",".join((serving or {}).get(package.arn, [])) or None,
            "approved_by": package.approved_by,
            "approval_time": package.approval_time,
            "note": package.approval_description,
            "source_execution": package.metrics.get("source_execution"),
            "model_data": package.model_data_url,
        }
        for package in packages
    ]
