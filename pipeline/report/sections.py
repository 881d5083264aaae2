"""Each section of the report: read its inputs, return what its template shows (or a :class:`Note` when
the input is missing). Reading files and drawing figures live in their own modules; this one only
decides what a reader sees, in which order."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report import confusion, model_archive, plots, trace
from pipeline.report.inputs import ReportInputs

Context = dict[str, Any]


@dataclass(frozen=True)
class Note:
    """Why a section has nothing to show."""

    text: str


def _load(path: Path | None) -> Any:
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def steps(inputs: ReportInputs) -> Context | Note:
    """The steps as ``dogpipe status`` lists them, a step retried named with each attempt's outcome, so a
    reader of the evidence below sees which steps ran, failed, came from the cache or were retried."""
    if not inputs.steps:
        return Note("no step listing for this execution")
    retried = [row["step"] for row in inputs.steps if row.get("attempts")]
    return {"rows": inputs.steps, "retried": retried}


def tuning(inputs: ReportInputs) -> Context | Note:
    trials = inputs.tuning_trials
    if not trials:
        return Note("no tuning trials (tuning off, or no trial finished)")
    metric = inputs.objective_metric
    rows = [
        {
            "#": i,
            "trial": t.get("name", i),
            "status": t.get("status"),
            metric: t.get("objective"),
            **t.get("hyperparameters", {}),
        }
        for i, t in enumerate(trials, start=1)
    ]
    scored = [(i, t) for i, t in enumerate(trials, start=1) if isinstance(t.get("objective"), (int, float))]
    if not scored:
        return {"trials": rows, "best": None, "plot": None}
    best_at = max(range(len(scored)), key=lambda k: scored[k][1]["objective"])
    best = scored[best_at][1]
    plot = plots.objective_bars(
        [f"#{i}" for i, _ in scored], [t["objective"] for _, t in scored], best_at, metric
    )
    best_row = {"trial": best.get("name"), metric: best["objective"], **best.get("hyperparameters", {})}
    return {"trials": rows, "best": best_row, "plot": plot}


def training(inputs: ReportInputs) -> Context | Note:
    history = _load(inputs.history)
    epochs = (history or {}).get("epochs") or []
    if not epochs:
        return Note("no history.json")
    keys = ("best_epoch", "best_valid_loss", "best_valid_accuracy", "stopped_early", "total_seconds")
    loss_steps = None
    trace_dir = inputs.trace_dir
    if trace_dir is not None and trace.has_trace(trace_dir) and (series := trace.loss_series(trace_dir)):
        loss_steps = plots.series_lines(
            series, title="loss per saved step (Debugger losses collection)", ylabel="loss"
        )
    return {
        "curves": plots.epoch_curves(epochs),
        "loss_steps": loss_steps,
        "summary": {k: history[k] for k in keys if k in history},
        "epochs": epochs,
    }


def gradients(inputs: ReportInputs) -> Context | Note:
    if inputs.trace_dir is None or not trace.has_trace(inputs.trace_dir):
        return Note("no smdebug trace (Debugger hook off)")
    series = trace.gradient_series(inputs.trace_dir)
    if not series:
        return Note("the trace holds no gradients")
    plot = plots.series_lines(
        series,
        title="gradient norms per layer",
        ylabel="L2 norm of the gradient",
        log_y=True,
        legend_outside=True,
    )
    return {"plot": plot}


def _evidence_digest(evidence: dict[str, Any]) -> Any:
    """The figures behind the verdict, not the whole history: of a list of checks, the ones that fired
    (the last one when none did); of any other list, its last entry."""
    digest = {}
    for key, value in evidence.items():
        if isinstance(value, list) and value:
            fired = [item for item in value if isinstance(item, dict) and item.get("fires")]
            digest[key] = fired or value[-1]
        else:
            digest[key] = value
    return digest


def rules(inputs: ReportInputs) -> Context | Note:
    found = _load(inputs.rules)
    if not found:
        return Note("no rules.json (DebugRules step did not run)")
    rows = [
        {
            "rule": r["rule"],
            "status": r["status"],
            "first_step": r.get("first_step"),
            "fail_pipeline": r.get("fail_pipeline"),
            "evidence": _evidence_digest(r.get("evidence", {})),
            "parameters": r.get("parameters"),
        }
        for r in found["rules"]
    ]
    return {"rows": rows, "blocking_issues": found.get("blocking_issues"), "errors": found.get("errors", 0)}


def _step_breakdown(profiler_dir: Path | None) -> str | None:
    steps_file = Path(profiler_dir) / "steps.jsonl" if profiler_dir else None
    if not steps_file or not steps_file.is_file():
        return None
    steps = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()]
    train = [s for s in steps if s["mode"] == "train"]
    if not train:
        return None
    phases: dict[str, Sequence[float]] = {
        phase: [float(s["phases"].get(phase, 0.0)) for s in train]
        for phase in ("data", "forward_backward", "optimizer")
    }
    return plots.step_breakdown(phases, [s["wall"] for s in train])


def profiler(inputs: ReportInputs) -> Context | Note:
    summary = _load(inputs.profiler_summary) or {}
    rows = [
        {
            "rule": r["rule"],
            "status": r["status"],
            "recommendation": r.get("recommendation"),
            "evidence": r.get("evidence"),
        }
        for r in summary.get("rules") or []
    ]
    overview = {k: v for k, v in (summary.get("overview") or {}).items() if k != "phase_seconds"}
    return {
        "rules": rows,
        "overview": overview,
        "missing": summary.get("error", "no profiler_summary.json"),
        "plot": _step_breakdown(inputs.profiler_dir),
    }


def model(inputs: ReportInputs) -> Context | Note:
    if not inputs.model_archive or not Path(inputs.model_archive).is_file():
        return Note("no model.tar.gz")
    try:
        head, layers = model_archive.summarize(Path(inputs.model_archive))
    except model_archive.ArchiveError as error:
        return Note(str(error))
    return {"head": head, "layers": layers}


def evaluation(inputs: ReportInputs) -> Context | Note:
    found = _load(inputs.evaluation)
    if not found:
        return Note("no evaluation.json")
    metrics = found.get("multiclass_classification_metrics", found)
    mapping = metrics.get("confusion_matrix") or found.get("confusion_matrix") or {}
    matrix = confusion.Confusion.from_mapping(mapping) if mapping else None
    headline = {k: v.get("value") for k, v in metrics.items() if isinstance(v, dict) and "value" in v}
    per_class = found.get("per_class") or metrics.get("per_class")
    rows = confusion.per_class_rows(per_class, matrix) if isinstance(per_class, dict) else []
    if not (headline or matrix or rows):
        return Note("evaluation.json has no metrics dogpipe knows")
    class_count = len(matrix.labels) if matrix else len(rows)
    return {
        "headline": headline,
        "class_count": class_count,
        "worst": rows[: confusion.TOP] if class_count > confusion.TOP else [],
        "pairs": matrix.pairs() if matrix else [],
        "matrix": _matrix_figures(matrix) if matrix else None,
        "per_class": rows,
    }


def _matrix_figures(matrix: confusion.Confusion) -> Context:
    """The matrix drawn with its counts when readable, else the breeds of the top pairs with counts and
    the full matrix as a heatmap; always the CSV."""
    subset = matrix.readable_subset()
    whole = len(subset) == len(matrix.labels)
    labels = [matrix.labels[i] for i in subset]
    counts = matrix.counts[np.ix_(subset, subset)] if not whole else matrix.counts
    title = "confusion matrix (test)" if whole else "confusion among the most-confused breeds (test)"
    return {
        "plot": plots.annotated_matrix(counts, labels, title),
        "subset": [] if whole else labels,
        "full_plot": None
        if whole
        else plots.heatmap(matrix.counts, matrix.labels, "confusion matrix (test)"),
        "csv": matrix.csv_data_uri(),
    }


def prediction(inputs: ReportInputs) -> Context | Note:
    if not inputs.prediction:
        return Note("no sample prediction (no endpoint was invoked)")
    thumbnail = _thumbnail(Path(inputs.prediction_image)) if inputs.prediction_image else None
    predictions = inputs.prediction.get("predictions", inputs.prediction)
    tables = []
    for item in predictions if isinstance(predictions, list) else [predictions]:
        ranked = item.get("top_k") if isinstance(item, dict) else None
        tables.append(ranked if isinstance(ranked, list) else [item])
    served_by = {k: inputs.prediction[k] for k in ("model_version", "latency_ms") if k in inputs.prediction}
    return {
        "thumbnail": thumbnail,
        "caption": inputs.prediction_source or str(inputs.prediction_image),
        "tables": tables,
        "served_by": served_by,
    }


def _thumbnail(path: Path, size: int = 224) -> str:
    """The image sent to the endpoint, shrunk and re-encoded: a phone photo would otherwise weigh
    megabytes in the report, and a PNG sent as-is would be mislabelled as JPEG."""
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _gates(inputs: ReportInputs) -> dict[str, str]:
    """Each Fail step (a gate) as the execution left it: blocked (with the reason), passed, not reached."""
    gates = {}
    for row in inputs.steps:
        if row.get("type") != "Fail":
            continue
        if row.get("status") == "Failed":
            gates[row["step"]] = f"blocked: {row.get('note') or 'stopped the run'}"
        elif inputs.status == "Succeeded" or inputs.model_version is not None:
            gates[row["step"]] = "passed"
        else:
            gates[row["step"]] = "not reached"
    return gates


def _candidate_record(inputs: ReportInputs) -> dict[str, Any]:
    """The registered version as ``models show`` reads it; without one (a gate stopped the run), the
    same fields from this execution's own evaluation and rules files."""
    if inputs.package:
        return dict(inputs.package)
    from pipeline.lineage import quality

    evaluation = _load(inputs.evaluation) or {}
    rules = _load(inputs.rules) or {}
    return {
        "version": None,
        "status": "not registered",
        **quality(evaluation),
        "test_images": evaluation.get("num_samples"),
        "rules": rules.get("rules") or [],
        "rules_blocking": rules.get("blocking_issues"),
    }


def approver_summary(inputs: ReportInputs) -> Context | Note:
    """What an approver decides on, first (``pipeline/approver.py``, the lines ``models approve``
    prints): version, quality on how many images, gates and Debugger, production, lineage."""
    from pipeline.approver import comparison_from_document, summary

    comparison = comparison_from_document(_load(inputs.comparison))
    record = _candidate_record(inputs)
    found = summary(record, comparison, _gates(inputs), run_id=(inputs.package or {}).get("mlflow_run_id"))
    if comparison is None:
        tone = "none"
    else:
        tone = "worse" if comparison.worse else "better" if comparison.compared else "none"
    return {"summary": found, "tone": tone, "registered": inputs.package is not None}


def candidate_vs_production(inputs: ReportInputs) -> Context | Note:
    """Both models on the same test images: the headline figures side by side, then each breed whose
    accuracy changed, production's and the candidate's right answers beside what the candidate
    confused it with (this execution's confusion matrix), worst first."""
    from pipeline.approver import comparison_from_document

    comparison = comparison_from_document(_load(inputs.comparison))
    if comparison is None or comparison.document is None:
        return Note("no comparison with production")
    document = comparison.document
    candidate, baseline = document.get("candidate") or {}, document.get("baseline") or {}
    figures = [
        {"metric": name, "production": baseline.get(name), "candidate": candidate.get(name),
         "delta": (candidate[name] - baseline[name]) if isinstance(candidate.get(name), (int, float))
         and isinstance(baseline.get(name), (int, float)) else None}
        for name in ("accuracy", "weighted_f1", "model_bytes", "latency_ms")
    ]  # fmt: skip
    evaluation = _load(inputs.evaluation) or {}
    metrics = evaluation.get("multiclass_classification_metrics", evaluation)
    matrix = metrics.get("confusion_matrix") or {}
    rows = []
    for row in comparison.changed_breeds():
        breed, n = str(row.get("breed")), int(row.get("n") or 0)
        wrong = {k: v for k, v in (matrix.get(breed) or {}).items() if k != breed and v}
        top = sorted(wrong.items(), key=lambda item: (-item[1], item[0]))[:2]
        rows.append(
            {
                "breed": breed,
                "images": n,
                "production right": round(float(row.get("production_accuracy") or 0) * n),
                "candidate right": round(float(row.get("candidate_accuracy") or 0) * n),
                "delta": row.get("delta"),
                "candidate took it for": ", ".join(f"{name} ({count})" for name, count in top) or None,
                "tone": "worse" if float(row.get("delta") or 0) < 0 else "better",
            }
        )
    return {
        "compared": comparison.compared,
        "reason": comparison.reason,
        "status": comparison.status,
        "figures": figures if comparison.compared else [],
        "mcnemar": document.get("mcnemar"),
        "gate": document.get("gate"),
        "rows": rows,
    }
