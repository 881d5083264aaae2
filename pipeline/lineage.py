"""What an approver reads about a version: where it came from and how it did (``dogpipe models show``),
and two versions side by side (``dogpipe models compare``).

The Register step stores the lineage as the package's customer metadata (``steps/register.py``:
execution, data URI, code digest, training job, best trial and its hyperparameters, the Debugger
rules' report) and links the evaluation as its model-quality metrics; the registry reads both back on
either engine. Files the metadata points to (the rules report) are read through ``read_json``, the
engine's store: a folder locally, S3 on SageMaker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.registry import ModelPackage

#: The evaluation metrics an approver compares (``multiclass_classification_metrics`` holds them).
QUALITY = ("accuracy", "weighted_f1", "weighted_precision", "weighted_recall")
RULE_COLUMNS = ("rule", "status", "fail_pipeline", "first_step")
COMPARE_COLUMNS = ("metric", "first", "second", "delta")
_CONTENT_DIGEST = re.compile(r"/by-content/([0-9a-f]{8,64})/")


def quality(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """accuracy and the weighted precision/recall/F1 of an evaluation report (None where absent)."""
    section = metrics.get("multiclass_classification_metrics") or {}
    found: dict[str, float | None] = {}
    for name in QUALITY:
        item = section.get(name)
        value = item.get("value") if isinstance(item, Mapping) else item
        try:
            found[name] = float(value) if value is not None else None
        except (TypeError, ValueError):
            found[name] = None
    return found


def per_class(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    table = metrics.get("per_class")
    return dict(table) if isinstance(table, Mapping) else {}


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def show(
    package: ModelPackage, serving: list[str], read_json: Callable[[str], Any], worst: int = 5
) -> dict[str, Any]:
    """Everything ``models show`` prints: decision, quality, lineage, the rules' verdicts."""
    metrics = package.metrics
    data_uri = metrics.get("data_uri")
    digest = _CONTENT_DIGEST.search(str(data_uri or ""))
    hyperparameters = {key[3:]: value for key, value in sorted(metrics.items()) if key.startswith("hp_")}
    rules_uri = metrics.get("rules_report")
    rules_report = read_json(str(rules_uri)) if rules_uri else None
    rules = [
        {column: rule.get(column) for column in RULE_COLUMNS}
        for rule in (rules_report or {}).get("rules", [])
        if isinstance(rule, Mapping)
    ]
    classes = per_class(metrics)
    weakest = sorted(classes.items(), key=lambda item: (item[1].get("f1", 0.0), item[0]))[:worst]
    return {
        "version": package.version,
        "status": package.approval_status,
        "serving": ",".join(serving) or None,
        "approved_by": package.approved_by,
        "approval_time": package.approval_time,
        "note": package.approval_description,
        **quality(metrics),
        "test_images": _number(metrics.get("num_samples")),
        "weakest_breeds": ", ".join(f"{name} (f1 {row.get('f1', 0):.2f})" for name, row in weakest) or None,
        "source_execution": metrics.get("source_execution"),
        "data_uri": data_uri,
        "data_digest": digest.group(1) if digest else None,
        "code_sha256": metrics.get("code_sha256"),
        "training_job": metrics.get("training_job"),
        "mlflow_run_id": metrics.get("mlflow_run_id"),  # the execution's run (pipeline/tracking.py)
        "best_trial": metrics.get("best_trial"),
        "hyperparameters": " ".join(f"{key}={value}" for key, value in hyperparameters.items()) or None,
        "model_data": package.model_data_url,
        "created": package.created,
        "rules_blocking": (rules_report or {}).get("blocking_issues") if rules_report else None,
        "rules": rules,
    }


def compare(first: ModelPackage, second: ModelPackage) -> list[dict[str, Any]]:
    """One row per metric, ``second - first``; then each breed's F1 both have, the ones that got worse
    first (what an approver must not miss when the overall figure improves)."""

    def row(metric: str, a: float | None, b: float | None) -> dict[str, Any]:
        delta = None if a is None or b is None else round(b - a, 6)
        return {"metric": metric, "first": a, "second": b, "delta": delta}

    one, two = quality(first.metrics), quality(second.metrics)
    rows = [row(name, one[name], two[name]) for name in QUALITY]
    images = (_number(first.metrics.get("num_samples")), _number(second.metrics.get("num_samples")))
    rows.append({"metric": "test_images", "first": images[0], "second": images[1], "delta": None})
    a_classes, b_classes = per_class(first.metrics), per_class(second.metrics)
    breeds = [
        row(f"f1 {name}", float(a_classes[name].get("f1", 0.0)), float(b_classes[name].get("f1", 0.0)))
        for name in sorted(a_classes.keys() & b_classes.keys())
    ]
    return rows + sorted(breeds, key=lambda item: (item["delta"], item["metric"]))
