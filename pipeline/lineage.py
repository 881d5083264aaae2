"""What an approver reads about a version: where it came from and how it did (``dogpipe models show``),
and two versions side by side (``dogpipe models compare``).

The Register step stores the lineage as the package's customer metadata (``steps/register.py``:
execution, data URI, code digest, training job, best trial and its hyperparameters, the Debugger
rules' report, the comparison with production and its verdict) and links the evaluation as its
model-quality metrics; the registry reads both back on either engine. Files the metadata points to (the
rules report, ``comparison.json``) are read through ``read_json``, the engine's store: a folder locally,
S3 on SageMaker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
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


def production_summary(comparison: Mapping[str, Any] | None) -> str | None:
    """The Compare step's verdict in one line: against which production version, by how much, whether
    the difference is significant, and the gate's answer; or why no comparison was made."""
    if not isinstance(comparison, Mapping):
        return None
    gate = comparison.get("gate") or {}
    verdict = "gate passed" if gate.get("passed", True) else "gate blocked"
    if comparison.get("status") != "compared":
        return f"{comparison.get('status')}: {comparison.get('reason')} ({verdict})"
    production = comparison.get("production") or {}
    mine, theirs = comparison["candidate"], comparison["baseline"]
    delta, mcnemar = comparison["delta"], comparison["mcnemar"]
    significance = "significant" if mcnemar.get("significant") else "not significant"
    return (
        f"v{production.get('version')} ({production.get('source')}): accuracy {mine['accuracy']:.4f} vs "
        f"{theirs['accuracy']:.4f} ({delta['accuracy']:+.4f}), weighted_f1 {mine['weighted_f1']:.4f} vs "
        f"{theirs['weighted_f1']:.4f} ({delta['weighted_f1']:+.4f}), McNemar p={mcnemar['p_value']:.4g} "
        f"({significance}) on {comparison.get('test_images')} images; {verdict}"
    )


def breeds_worse(comparison: Mapping[str, Any] | None, worst: int = 5) -> str | None:
    """The breeds the candidate does worse on than production, worst first (``per_breed`` is sorted)."""
    rows = (comparison.get("per_breed") or []) if isinstance(comparison, Mapping) else []
    worse = [row for row in rows if isinstance(row, Mapping) and (row.get("delta") or 0) < 0][:worst]
    return ", ".join(f"{row['breed']} ({row['delta']:+.2f})" for row in worse) or None


def show(
    package: ModelPackage, serving: list[str], read_json: Callable[[str], Any], worst: int = 5
) -> dict[str, Any]:
    """Everything ``models show`` prints: decision, quality, the comparison with production (the
    Compare step's ``comparison.json``, whole under ``comparison`` in JSON), lineage, the rules'
    verdicts."""
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
    comparison_uri = metrics.get("comparison_report")
    comparison = read_json(str(comparison_uri)) if comparison_uri else None
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
        "vs_production": production_summary(comparison) or metrics.get("comparison_status"),
        "breeds_worse_than_production": breeds_worse(comparison, worst),
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
        "comparison_report": comparison_uri,
        "comparison": comparison if isinstance(comparison, Mapping) else None,
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


def recorded_test_split(*packages: ModelPackage) -> str | None:
    """The test split a version was compared on (the Compare step records it), newest version first."""
    for package in sorted(packages, key=lambda item: item.version, reverse=True):
        uri = package.metrics.get("test_data")
        if isinstance(uri, str) and uri.startswith("s3://"):
            return uri
    return None


def score_on_same_images(
    first: ModelPackage, second: ModelPackage, fetch: Callable[[str, Path], Path | None], scratch: Path
) -> tuple[dict[str, Any] | None, str | None]:
    """Both versions' models scored on one test split with the Compare job's code (``second`` as the
    candidate, ``first`` as the baseline): ``(comparison, None)``, or ``(None, why not)`` when a model or
    the split cannot be fetched."""
    from training_code import model_comparison

    test_uri = recorded_test_split(first, second)
    if test_uri is None:
        return None, "neither version recorded the test split it was compared on"
    test_dir = fetch(test_uri, scratch / "test")
    if test_dir is None:
        return None, f"the test split {test_uri} cannot be read"
    scored = []
    for package in (first, second):
        folder = (
            fetch(package.model_data_url, scratch / f"v{package.version}") if package.model_data_url else None
        )
        if folder is None:
            return None, f"version {package.version}'s model {package.model_data_url} cannot be read"
        try:
            scored.append(model_comparison.score_model(folder, test_dir, num_workers=0))
        except (OSError, ValueError, KeyError) as error:  # an unreadable archive, a split of other breeds
            return None, f"version {package.version}'s model cannot be scored: {error}"
    baseline = {"version": first.version, "package_arn": first.arn, "source": "compare"}
    comparison = model_comparison.compare(scored[1], scored[0], baseline)
    return {**comparison, "test_data": test_uri}, None


def scored_rows(comparison: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``compare``'s rows for a same-images scoring: accuracy, weighted F1, size, latency, the images
    only one of them got right with McNemar's p, then each breed's accuracy, worse first."""

    def row(metric: str, a: Any, b: Any, delta: Any = None) -> dict[str, Any]:
        return {"metric": metric, "first": a, "second": b, "delta": delta}

    baseline, candidate = comparison["baseline"], comparison["candidate"]
    if comparison["status"] != "compared":
        return [row(f"same images: {comparison['status']}", None, None, comparison["reason"])]
    rows = [
        row(f"same images: {key}", baseline[key], candidate[key], round(candidate[key] - baseline[key], 6))
        for key in ("accuracy", "weighted_f1", "model_bytes", "latency_ms")
    ]
    mcnemar = comparison["mcnemar"]
    rows.append(
        row("same images: only right", mcnemar["production_only_right"], mcnemar["candidate_only_right"])
    )
    rows.append(row("same images: mcnemar_p", None, None, mcnemar["p_value"]))
    rows.append(row("same images: test_images", comparison["test_images"], comparison["test_images"]))
    rows += [
        row(
            f"accuracy {item['breed']}",
            item["production_accuracy"],
            item["candidate_accuracy"],
            item["delta"],
        )
        for item in comparison["per_breed"]
    ]
    return rows
