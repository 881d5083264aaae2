"""The run report: every section present with real figures, built from artifacts crafted here."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
smd = pytest.importorskip("smdebug.pytorch")

from pipeline.report import ReportInputs, build_report  # noqa: E402
from training_code.profiler import TrainingProfiler  # noqa: E402
from training_code.profiler_rules import summarize  # noqa: E402

CLASSES = ["beagle", "boxer", "pug"]


def _artifacts(root: Path) -> ReportInputs:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    hook = smd.Hook(
        out_dir=str(root / "trace"),
        save_config=smd.SaveConfig(save_interval=1),
        include_collections=["losses", "gradients"],
    )
    hook.register_module(model)
    loss_fn = torch.nn.CrossEntropyLoss()
    hook.register_loss(loss_fn)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with TrainingProfiler(
        root / "profiler", interval_ms=100, meta={"num_workers": 0, "batch_size": 4}
    ) as prof:
        for _ in range(6):
            with prof.phase("data"):
                x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
            with prof.phase("forward_backward"):
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
            with prof.phase("optimizer"):
                optimizer.step()
            prof.end_step("train")
    hook.close()
    (root / "profiler_summary.json").write_text(json.dumps(summarize(root / "profiler")))

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        for name, data in (
            ("model.pth", buffer.getvalue()),
            ("model_info.json", json.dumps({"architecture": "mlp", "classes": CLASSES}).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    epochs = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_accuracy": 0.5 + 0.1 * e,
            "valid_loss": 1.1 / e,
            "valid_accuracy": 0.45 + 0.1 * e,
        }
        for e in (1, 2, 3)
    ]
    (root / "history.json").write_text(json.dumps({"epochs": epochs, "best_epoch": 3}))
    matrix = {a: {p: (7 if a == p else 1) for p in CLASSES} for a in CLASSES}
    evaluation = {
        "multiclass_classification_metrics": {"accuracy": {"value": 0.777}, "confusion_matrix": matrix},
        "per_class": {c: {"precision": 0.78, "recall": 0.78, "f1": 0.78, "support": 9} for c in CLASSES},
    }
    (root / "evaluation.json").write_text(json.dumps(evaluation))
    rules = {
        "rules": [
            {
                "rule": "overfit",
                "status": "IssuesFound",
                "first_step": 41,
                "fail_pipeline": False,
                "evidence": {"evaluations": [{"ratio": 0.31}]},
                "parameters": {"ratio_threshold": 0.1},
            }
        ],
        "blocking_issues": 0,
        "errors": 0,
    }
    (root / "rules.json").write_text(json.dumps(rules))
    return ReportInputs(
        title="test run",
        history=root / "history.json",
        evaluation=root / "evaluation.json",
        rules=root / "rules.json",
        profiler_summary=root / "profiler_summary.json",
        profiler_dir=root / "profiler",
        trace_dir=root / "trace",
        model_archive=root / "model.tar.gz",
        tuning_trials=[
            {"name": "t-1", "status": "Completed", "objective": 0.61, "hyperparameters": {"lr": 0.01}},
            {"name": "t-2", "status": "Completed", "objective": 0.74, "hyperparameters": {"lr": 0.003}},
        ],
        prediction={"predictions": [{"label": "pug", "probability": 0.91}]},
    )


def _section(document: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', document, re.S)
    assert match, f"section {anchor} missing"
    return match.group(1)


def test_report_has_every_section_with_real_figures(tmp_path: Path) -> None:
    out = build_report(_artifacts(tmp_path), tmp_path / "out" / "report.html")
    document = out.read_text()
    for anchor in (
        "hyperparameter-tuning",
        "training",
        "gradient-norms-per-layer",
        "debugger-rules",
        "profiler",
        "model-summary",
        "evaluation",
        "sample-prediction",
    ):
        assert "could not draw" not in _section(document, anchor), anchor
        assert 'class="note"' not in _section(document, anchor), anchor
    assert "0.003" in _section(document, "hyperparameter-tuning").split("Best hyperparameters")[1]
    for anchor in ("hyperparameter-tuning", "training", "gradient-norms-per-layer", "profiler", "evaluation"):
        assert "data:image/png;base64," in _section(document, anchor), anchor
    assert "195" in _section(document, "model-summary")  # 8*16+16 + 16*3+3 parameters
    assert "IssuesFound" in _section(document, "debugger-rules")
    assert "pug" in _section(document, "sample-prediction") and "0.91" in _section(
        document, "sample-prediction"
    )
    assert "Dataloader" in _section(document, "profiler")


def test_missing_and_corrupt_inputs_leave_notes_not_a_broken_report(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("{not json")
    out = build_report(ReportInputs(history=tmp_path / "history.json"), tmp_path / "report.html")
    document = out.read_text()
    assert "could not draw this section: JSONDecodeError" in _section(document, "training")
    assert "no evaluation.json" in _section(document, "evaluation")
