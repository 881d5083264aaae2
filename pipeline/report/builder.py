"""``build_report(inputs, out_path)``: one self-contained ``report.html`` (PNGs embedded as base64).

Sections, in the order a reader asks the questions: tuning (which hyperparameters won), training curves
(did it learn), gradients per layer (did every layer learn), Debugger rules, profiler (was the machine
used well), model summary, evaluation (confusion matrix, per-class metrics) and a sample prediction.
A missing input leaves its section with a note, never a broken report.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pipeline.report.inputs import ReportInputs

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;font-size:.9rem;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%}.note{color:#777;font-style:italic}
.IssuesFound{background:#fde2e1}.NoIssuesFound{background:#e3f6e3}.Error{background:#fff3cd}.NotRun{background:#eee}
code{font-size:.85rem}"""


def _png(fig: plt.Figure, alt: str = "figure") -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None, row_class: str | None = None) -> str:
    if not rows:
        return '<p class="note">nothing to show</p>'
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        css = f' class="{html.escape(str(row.get(row_class, "")))}"' if row_class else ""
        cells = "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns)
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


#: Characters of a dict or list shown in one cell (rule evidence, profiler figures) before "…".
CELL_LIMIT = 600


def _rounded(value: Any) -> Any:
    """Floats at 4 significant digits, inside dicts and lists too: figures to read, not to copy."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _decimal(text: str) -> float | None:
    """``text`` as a float when it is a non-integer number (SageMaker passes hyperparameters as strings)."""
    if not any(mark in text for mark in ".eE"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and (number := _decimal(value)) is not None:
        return f'<span title="{html.escape(value)}">{number:.4g}</span>'  # the exact value on hover
    if isinstance(value, (dict, list)):
        text = json.dumps(_rounded(value))
        return f"<code>{html.escape(text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT] + ' …')}</code>"
    return html.escape("" if value is None else str(value))


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _load(path: Path | None) -> Any:
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


# -- sections -------------------------------------------------------------------------------------------
def tuning_section(inputs: ReportInputs) -> str:
    trials = inputs.tuning_trials
    if not trials:
        return _note("no tuning trials (tuning off, or no trial finished)")
    numbered = list(enumerate(trials, start=1))
    scored = [(i, t) for i, t in numbered if isinstance(t.get("objective"), (int, float))]
    best = max(scored, key=lambda item: item[1]["objective"])[1] if scored else None
    rows = [
        {
            "#": i,
            "trial": t.get("name", i),
            "status": t.get("status"),
            inputs.objective_metric: t.get("objective"),
            **t.get("hyperparameters", {}),
        }
        for i, t in numbered
    ]
    parts = ["<h3>Trials</h3>", _table(rows)]
    if best:
        parts += [
            "<h3>Best hyperparameters</h3>",
            _table(
                [
                    {
                        "trial": best.get("name"),
                        inputs.objective_metric: best["objective"],
                        **best.get("hyperparameters", {}),
                    }
                ]
            ),
        ]
        fig, ax = plt.subplots(figsize=(6, 2.6))
        ax.bar(
            [f"#{i}" for i, _ in scored],
            [t["objective"] for _, t in scored],
            color=["#dd8452" if t is best else "#4c72b0" for _, t in scored],
        )
        ax.set_ylabel(inputs.objective_metric)
        ax.set_title("objective per trial (best in orange)")
        parts.append(_png(fig))
    return "".join(parts)


def training_section(inputs: ReportInputs) -> str:
    history = _load(inputs.history)
    epochs = (history or {}).get("epochs") or []
    if not epochs:
        return _note("no history.json")
    x = [e["epoch"] for e in epochs]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.2))
    for key, style in (("train_loss", "-o"), ("valid_loss", "-s")):
        loss_ax.plot(x, [e[key] for e in epochs], style, label=key)
    for key, style in (("train_accuracy", "-o"), ("valid_accuracy", "-s")):
        acc_ax.plot(x, [e[key] for e in epochs], style, label=key)
    loss_ax.set_title("loss per epoch")
    acc_ax.set_title("accuracy per epoch")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    summary = {
        k: history.get(k)
        for k in ("best_epoch", "best_valid_loss", "best_valid_accuracy", "stopped_early", "total_seconds")
        if k in history
    }
    return _png(fig) + _loss_per_step(inputs) + _table([summary]) + _table(epochs)


def _loss_per_step(inputs: ReportInputs) -> str:
    """The losses collection of the smdebug trace: the within-epoch view the epoch curves average away."""
    if not inputs.trace_dir or not Path(inputs.trace_dir).is_dir():
        return ""
    trial = _trial(str(inputs.trace_dir))
    from smdebug.core.modes import ModeKeys

    names = trial.tensor_names(collection="losses")
    if not names:
        return ""
    fig, ax = plt.subplots(figsize=(10, 3.2))
    plotted = False
    for name in names[:2]:
        tensor = trial.tensor(name)
        for mode, style in ((ModeKeys.TRAIN, "-"), (ModeKeys.EVAL, "o--"), (ModeKeys.GLOBAL, "-")):
            steps = tensor.steps(mode=mode)
            if not steps or (mode == ModeKeys.GLOBAL and plotted):  # GLOBAL: a hook that never set modes
                continue
            values = [float(np.mean(tensor.value(step, mode=mode))) for step in steps]
            global_steps = [trial.global_step(mode, step) for step in steps]
            ax.plot(global_steps, values, style, label=f"{name} ({mode.name.lower()})", markersize=3)
            plotted = True
    if not plotted:
        plt.close(fig)
        return ""
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss per saved step (Debugger losses collection)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig, alt="loss per saved step")


@functools.lru_cache(maxsize=4)
def _trial(trace_dir: str) -> Any:
    """One smdebug trial per trace: reading the index is the slow part, and two sections use it."""
    with mock.patch.dict(os.environ, {"SMDEBUG_LOG_LEVEL": "warning"}):  # its INFO lines crowd `dogpipe run`
        from smdebug.trials import create_trial

        logging.getLogger("smdebug").setLevel(logging.WARNING)
        return create_trial(trace_dir)


def gradients_section(inputs: ReportInputs, max_layers: int = 12) -> str:
    if not inputs.trace_dir or not Path(inputs.trace_dir).is_dir():
        return _note("no smdebug trace (Debugger hook off)")
    trial = _trial(str(inputs.trace_dir))
    names = trial.tensor_names(collection="gradients")
    if not names:
        return _note("the trace holds no gradients")
    if len(names) > max_layers:  # weights say more per line than biases when space is short
        names = [n for n in names if "weight" in n][:max_layers] or names[:max_layers]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for name in names:
        tensor = trial.tensor(name)
        steps = tensor.steps()
        ax.plot(
            steps,
            [float(tensor.reduction_value(s, "l2")) for s in steps],
            label=name.replace("gradient/", ""),
        )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 norm of the gradient")
    ax.set_title("gradient norms per layer")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(fig)


def rules_section(inputs: ReportInputs) -> str:
    rules = _load(inputs.rules)
    if not rules:
        return _note("no rules.json (DebugRules step did not run)")
    rows = [
        {
            "rule": r["rule"],
            "status": r["status"],
            "first_step": r.get("first_step"),
            "fail_pipeline": r.get("fail_pipeline"),
            "evidence": _evidence_digest(r.get("evidence", {})),
            "parameters": r.get("parameters"),
        }
        for r in rules["rules"]
    ]
    return (
        f"<p>blocking issues: <b>{rules.get('blocking_issues')}</b>, "
        f"rules in error: {rules.get('errors', 0)}</p>" + _table(rows, row_class="status")
    )


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


def profiler_section(inputs: ReportInputs) -> str:
    summary = _load(inputs.profiler_summary)
    parts = []
    if summary and summary.get("rules"):
        rows = [
            {
                "rule": r["rule"],
                "status": r["status"],
                "recommendation": r.get("recommendation"),
                "evidence": r.get("evidence"),
            }
            for r in summary["rules"]
        ]
        parts.append(_table(rows, row_class="status"))
        overview = summary.get("overview") or {}
        if overview:
            parts.append(_table([{k: v for k, v in overview.items() if k != "phase_seconds"}]))
    else:
        parts.append(_note((summary or {}).get("error", "no profiler_summary.json")))
    steps_file = Path(inputs.profiler_dir) / "steps.jsonl" if inputs.profiler_dir else None
    if steps_file and steps_file.is_file():
        steps = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()]
        train = [s for s in steps if s["mode"] == "train"]
        if train:
            fig, ax = plt.subplots(figsize=(10, 3.2))
            bottom = np.zeros(len(train))
            x = np.arange(len(train))
            for phase in ("data", "forward_backward", "optimizer"):
                values = np.array([s["phases"].get(phase, 0.0) for s in train])
                ax.bar(x, values, bottom=bottom, label=phase, width=1.0)
                bottom += values
            ax.bar(
                x,
                np.maximum(np.array([s["wall"] for s in train]) - bottom, 0),
                bottom=bottom,
                label="other",
                width=1.0,
                color="#bbb",
            )
            ax.set_xlabel("training step")
            ax.set_ylabel("seconds")
            ax.set_title("step time breakdown")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
            parts.append(_png(fig))
    return "".join(parts)


def model_section(inputs: ReportInputs) -> str:
    if not inputs.model_archive or not Path(inputs.model_archive).is_file():
        return _note("no model.tar.gz")
    import torch

    size = Path(inputs.model_archive).stat().st_size
    with tarfile.open(inputs.model_archive) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers()}
        info_member = members.get("model_info.json")
        info = json.load(tar.extractfile(info_member)) if info_member else {}
        weights = members.get("model.pth")
        if weights is None:
            return _note("model.tar.gz has no model.pth")
        state = torch.load(io.BytesIO(tar.extractfile(weights).read()), map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    layers: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        if not hasattr(tensor, "shape") or not tensor.is_floating_point():
            continue
        layer, _, kind = name.rpartition(".")
        entry = layers.setdefault(layer, {"layer": layer, "parameters": 0, "shapes": []})
        entry["parameters"] += int(tensor.numel())
        entry["shapes"].append(f"{kind} {tuple(tensor.shape)}")
    total = sum(entry["parameters"] for entry in layers.values())
    head = {
        "architecture": info.get("architecture"),
        "classes": len(info.get("classes", [])) or None,
        "layers with parameters": len(layers),
        "parameters": f"{total:,}",
        "model.tar.gz": f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB",
    }
    rows = [{**e, "shapes": ", ".join(e["shapes"])} for e in layers.values()]
    return _table([head]) + "<details><summary>layers</summary>" + _table(rows) + "</details>"


def evaluation_section(inputs: ReportInputs) -> str:
    evaluation = _load(inputs.evaluation)
    if not evaluation:
        return _note("no evaluation.json")
    metrics = evaluation.get("multiclass_classification_metrics", evaluation)
    matrix = metrics.get("confusion_matrix") or evaluation.get("confusion_matrix") or {}
    parts = []
    headline = {k: v.get("value") for k, v in metrics.items() if isinstance(v, dict) and "value" in v}
    if headline:
        parts.append(_table([headline]))
    if matrix:
        labels = list(matrix)
        counts = np.array([[matrix[a].get(p, 0) for p in labels] for a in labels])
        fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(labels), 1 + 0.5 * len(labels)))
        ax.imshow(counts, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for (i, j), value in np.ndenumerate(counts):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                color="white" if value > counts.max() / 2 else "black",
                fontsize=8,
            )
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        ax.set_title("confusion matrix (test)")
        parts.append(_png(fig))
    per_class = evaluation.get("per_class") or metrics.get("per_class")
    if isinstance(per_class, dict):
        parts.append(_table([{"class": name, **values} for name, values in per_class.items()]))
    return "".join(parts) or _note("evaluation.json has no metrics dogpipe knows")


def prediction_section(inputs: ReportInputs) -> str:
    if not inputs.prediction:
        return _note("no sample prediction (no endpoint was invoked)")
    parts = []
    if inputs.prediction_image:
        caption = html.escape(inputs.prediction_source or str(inputs.prediction_image))
        parts.append(
            f"<figure>{_thumbnail(Path(inputs.prediction_image))}<figcaption>{caption}</figcaption></figure>"
        )
    predictions = inputs.prediction.get("predictions", inputs.prediction)
    for prediction in predictions if isinstance(predictions, list) else [predictions]:
        ranked = prediction.get("top_k") if isinstance(prediction, dict) else None
        parts.append(_table(ranked if isinstance(ranked, list) else [prediction]))
    served_by = {k: inputs.prediction[k] for k in ("model_version", "latency_ms") if k in inputs.prediction}
    if served_by:
        parts.append(_table([served_by]))
    return "".join(parts)


def _thumbnail(path: Path, size: int = 224) -> str:
    """The image sent to the endpoint, shrunk and re-encoded: a phone photo would otherwise weigh
    megabytes in the report, and a PNG sent as-is would be mislabelled as JPEG."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="sample sent to the endpoint" src="data:image/jpeg;base64,{data}">'


SECTIONS: list[tuple[str, Callable[[ReportInputs], str]]] = [
    ("Hyperparameter tuning", tuning_section),
    ("Training", training_section),
    ("Gradient norms per layer", gradients_section),
    ("Debugger rules", rules_section),
    ("Profiler", profiler_section),
    ("Model summary", model_section),
    ("Evaluation", evaluation_section),
    ("Sample prediction", prediction_section),
]


def build_report(inputs: ReportInputs, out_path: str | Path) -> Path:
    """Write the report; a section that cannot be drawn shows its error instead of sinking the rest."""
    body = []
    for title, section in SECTIONS:
        try:
            content = section(inputs)
        except Exception as error:
            content = _note(f"could not draw this section: {type(error).__name__}: {error}")
        anchor = title.lower().replace(" ", "-")
        body.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{content}</section>')
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(inputs.title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(inputs.title)}</h1>{''.join(body)}</body></html>"
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".html.tmp")
    tmp.write_text(document)
    tmp.replace(out_path)
    return out_path
