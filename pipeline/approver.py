"""What an approver decides on, readable in ten seconds: the version, its accuracy and F1 on how many
test images, the gates and Debugger verdicts, the comparison with production on the same images
(better or worse, by how much, significant or not, the breeds that got worse) and the lineage.

One summary, two renderings: the opening of ``report.html`` (``pipeline/report/``) and the lines
``dogpipe models approve N`` prints before it acts. The comparison is the Compare step's
``comparison.json`` (the package's ``comparison_report`` metadata points to it), else the verdict the
Register step copied into the package's metadata (``comparison_status``, ``delta_accuracy``, ...);
without either, the summary says "no comparison" and nothing is decided from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.registry import ModelPackage

#: The package metadata keys the Register step writes for the comparison (``steps/register.py``).
REPORT_KEY = "comparison_report"
STATUS_KEY = "comparison_status"


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


@dataclass(frozen=True)
class Comparison:
    """The candidate against production on the same test images, from either source."""

    status: str  # compared | no_production | not_comparable
    source: str  # "comparison.json" or "metadata"
    reason: str | None = None
    production_version: int | None = None
    test_images: int | None = None
    delta_accuracy: float | None = None
    delta_weighted_f1: float | None = None
    p_value: float | None = None
    significant: bool | None = None
    gate_enabled: bool | None = None
    gate_passed: bool | None = None
    gate_message: str | None = None
    per_breed: list[dict[str, Any]] = field(default_factory=list)  # worst delta first
    document: dict[str, Any] | None = None  # comparison.json itself, when it was read

    @property
    def compared(self) -> bool:
        return self.status == "compared"

    @property
    def worse(self) -> bool:
        """Worse than production on accuracy or weighted F1, on the same images."""
        deltas = (self.delta_accuracy, self.delta_weighted_f1)
        return self.compared and any(delta is not None and delta < 0 for delta in deltas)

    def worse_breeds(self, most: int = 5) -> list[dict[str, Any]]:
        return [row for row in self.per_breed if (_float(row.get("delta")) or 0.0) < 0][:most]

    def changed_breeds(self) -> list[dict[str, Any]]:
        return [row for row in self.per_breed if (_float(row.get("delta")) or 0.0) != 0]


def comparison_from_document(document: Any) -> Comparison | None:
    """A :class:`Comparison` from ``comparison.json``'s schema; None when it is not one."""
    if not isinstance(document, Mapping) or not document.get("status"):
        return None
    production = document.get("production") or {}
    delta = document.get("delta") or {}
    mcnemar = document.get("mcnemar") or {}
    gate = document.get("gate") or {}
    rows = [dict(row) for row in document.get("per_breed") or [] if isinstance(row, Mapping)]
    return Comparison(
        status=str(document["status"]),
        source="comparison.json",
        reason=document.get("reason"),
        production_version=_int(production.get("version")) if isinstance(production, Mapping) else None,
        test_images=_int(document.get("test_images")),
        delta_accuracy=_float(delta.get("accuracy")),
        delta_weighted_f1=_float(delta.get("weighted_f1")),
        p_value=_float(mcnemar.get("p_value")),
        significant=mcnemar.get("significant") if mcnemar else None,
        gate_enabled=gate.get("enabled"),
        gate_passed=gate.get("passed"),
        gate_message=gate.get("message"),
        per_breed=sorted(rows, key=lambda row: (_float(row.get("delta")) or 0.0, str(row.get("breed")))),
        document=dict(document),
    )


def comparison_from_metadata(metadata: Mapping[str, Any]) -> Comparison | None:
    """The verdict the Register step stored as strings (when ``comparison.json`` cannot be read)."""
    status = metadata.get(STATUS_KEY)
    if not status:
        return None
    passed = metadata.get("gate_passed")
    return Comparison(
        status=str(status),
        source="metadata",
        production_version=_int(metadata.get("production_version")),
        delta_accuracy=_float(metadata.get("delta_accuracy")),
        delta_weighted_f1=_float(metadata.get("delta_weighted_f1")),
        p_value=_float(metadata.get("mcnemar_p")),
        gate_passed=None if passed in (None, "") else str(passed).lower() == "true",
    )


def comparison_of(package: ModelPackage, read_json: Callable[[str], Any]) -> Comparison | None:
    """The version's comparison with production: its comparison.json, else its stored verdict."""
    uri = package.metrics.get(REPORT_KEY)
    found = comparison_from_document(read_json(str(uri))) if uri else None
    return found or comparison_from_metadata(package.metrics)


def _signed(value: float | None) -> str:
    return "?" if value is None else f"{value:+.4f}"


def comparison_line(comparison: Comparison | None) -> str:
    """Better or worse, by how much, significant or not; or why there is no comparison."""
    if comparison is None:
        return "no comparison with production (no Compare step ran for this version)"
    if not comparison.compared:
        why = f": {comparison.reason}" if comparison.reason else ""
        return f"no comparison with production ({comparison.status}{why})"
    verdict = "WORSE than" if comparison.worse else "not worse than"
    images = f" on the same {comparison.test_images} test images" if comparison.test_images else ""
    significance = ""
    if comparison.p_value is not None:
        word = {True: "significant", False: "not significant"}.get(comparison.significant, "")  # type: ignore[arg-type]
        significance = f", McNemar p={comparison.p_value:.3g}" + (f" ({word})" if word else "")
    return (
        f"{verdict} production v{comparison.production_version}{images}: accuracy "
        f"{_signed(comparison.delta_accuracy)}, weighted F1 {_signed(comparison.delta_weighted_f1)}"
        f"{significance}"
    )


def summary(
    record: Mapping[str, Any],
    comparison: Comparison | None,
    gates: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The approver's summary from a ``models show`` record (``pipeline.lineage.show``), the
    comparison, and the gates' outcomes where known (a report knows each Condition step's)."""
    rules = [rule for rule in record.get("rules") or [] if isinstance(rule, Mapping)]
    issues = [str(rule.get("rule")) for rule in rules if rule.get("status") == "IssuesFound"]
    blocking = record.get("rules_blocking")
    debugger = (
        "not evaluated"
        if not rules
        else f"{len(rules)} rules, "
        + (f"issues: {', '.join(issues)}" if issues else "no issues")
        + (f" ({blocking} blocking)" if blocking else "")
    )
    gate_lines = dict(gates or {})
    if comparison is not None and comparison.gate_enabled is not None:
        verdict = "passed" if comparison.gate_passed else "blocked"
        gate_lines["production gate"] = verdict if comparison.gate_enabled else f"off ({verdict} if on)"
    worse = comparison.worse_breeds() if comparison else []
    lineage = {
        "execution": record.get("source_execution"),
        "data": record.get("data_digest") or record.get("data_uri"),
        "code": str(record.get("code_sha256") or "")[:12] or None,
        "training job": record.get("training_job"),
        "best trial": record.get("best_trial"),
        "hyperparameters": record.get("hyperparameters"),
        "MLflow run": run_id or record.get("mlflow_run_id"),
    }
    return {
        "version": record.get("version"),
        "status": record.get("status"),
        "serving": record.get("serving"),
        "accuracy": record.get("accuracy"),
        "weighted_f1": record.get("weighted_f1"),
        "test_images": record.get("test_images"),
        "gates": gate_lines,
        "debugger": debugger,
        "comparison": comparison_line(comparison),
        "worse": bool(comparison and comparison.worse),
        "significant": bool(comparison and comparison.significant),
        "breeds_worse": ", ".join(f"{row.get('breed')} ({_signed(_float(row['delta']))})" for row in worse)
        or None,
        "lineage": {key: value for key, value in lineage.items() if value},
    }


def summary_lines(found: Mapping[str, Any]) -> list[str]:
    """The summary as the few lines ``models approve`` prints."""

    def number(value: Any) -> str:
        return "?" if value is None else f"{float(value):.4f}"

    serving = f", serving {found['serving']}" if found.get("serving") else ""
    lines = [
        f"version {found.get('version')} ({found.get('status')}{serving})",
        f"  quality:    accuracy {number(found.get('accuracy'))}, weighted F1 "
        f"{number(found.get('weighted_f1'))} on {found.get('test_images') or '?'} test images",
        f"  production: {found['comparison']}",
    ]
    if found.get("breeds_worse"):
        lines.append(f"  worse on:   {found['breeds_worse']}")
    gates = "; ".join(f"{name} {verdict}" for name, verdict in found.get("gates", {}).items())
    lines.append(f"  gates:      {gates + '; ' if gates else ''}Debugger {found['debugger']}")
    lineage = "; ".join(f"{key} {value}" for key, value in found.get("lineage", {}).items())
    lines.append(f"  lineage:    {lineage or 'not recorded'}")
    return lines
