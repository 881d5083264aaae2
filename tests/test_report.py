"""The run report: every section present with real figures, built from artifacts crafted here."""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
smd = pytest.importorskip("smdebug.pytorch")

from pipeline.report import ReportInputs, build_report  # noqa: E402
from pipeline.report.screenshot import ScreenshotError, find_browser, screenshot  # noqa: E402
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


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> ReportInputs:
    """The crafted artifacts once per module: the smdebug hook and the profiler cost a few seconds."""
    return _artifacts(tmp_path_factory.mktemp("artifacts"))


def _section(document: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', document, re.S)
    assert match, f"section {anchor} missing"
    return match.group(1)


def test_report_has_every_section_with_real_figures(tmp_path: Path, artifacts: ReportInputs) -> None:
    out = build_report(artifacts, tmp_path / "out" / "report.html")
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
    assert "loss per saved step" in _section(document, "training")  # from the trace's losses collection
    assert "195" in _section(document, "model-summary")  # 8*16+16 + 16*3+3 parameters
    assert "IssuesFound" in _section(document, "debugger-rules")
    assert "pug" in _section(document, "sample-prediction") and "0.91" in _section(
        document, "sample-prediction"
    )
    assert "Dataloader" in _section(document, "profiler")


@pytest.mark.skipif(find_browser() is None, reason="no Chromium here (.ci/run installs one)")
def test_the_report_renders_in_chromium_with_its_plots_and_status_colours(
    tmp_path: Path, artifacts: ReportInputs
) -> None:
    """What a person sees: the page as Chromium paints it, not the HTML text."""
    from PIL import Image

    png = screenshot(build_report(artifacts, tmp_path / "report.html"), tmp_path / "report.png")
    with Image.open(png) as image:
        page = image.convert("RGB")
    colours = Counter(page.get_flattened_data())
    assert page.width == 1280 and page.height > 2000  # every section laid out, the blank tail cut
    assert colours[(0xDD, 0x84, 0x52)] > 500  # the best trial's bar: embedded plots are drawn
    assert colours[(0xFD, 0xE2, 0xE1)] > 500  # the IssuesFound row: the stylesheet applies


@pytest.mark.skipif(find_browser() is None, reason="no Chromium here (.ci/run installs one)")
def test_a_screenshot_is_png_whatever_its_name_and_a_bad_path_is_a_clear_error(
    tmp_path: Path, artifacts: ReportInputs
) -> None:
    from PIL import Image

    report = build_report(artifacts, tmp_path / "report.html")
    with Image.open(screenshot(report, tmp_path / "shot")) as image:
        assert image.format == "PNG"
    (tmp_path / "a-file").write_text("kept")
    with pytest.raises(ScreenshotError, match="cannot write the screenshot"):
        screenshot(report, tmp_path / "a-file" / "shot.png")
    assert (tmp_path / "a-file").read_text() == "kept" and report.is_file()


def test_a_screenshot_without_a_browser_says_how_to_get_one(
    tmp_path: Path, artifacts: ReportInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOGPIPE_CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(ScreenshotError, match="apt-get install chromium"):
        screenshot(build_report(artifacts, tmp_path / "report.html"), tmp_path / "report.png")
    assert not (tmp_path / "report.png").exists()


def test_missing_and_corrupt_inputs_leave_notes_not_a_broken_report(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("{not json")
    out = build_report(ReportInputs(history=tmp_path / "history.json"), tmp_path / "report.html")
    document = out.read_text()
    assert "could not draw this section: JSONDecodeError" in _section(document, "training")
    assert "no evaluation.json" in _section(document, "evaluation")


def test_sample_prediction_shows_a_thumbnail_and_the_ranked_breeds(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "big.png"
    Image.new("RGB", (1600, 1200), (200, 30, 30)).save(image)
    reply = {
        "predictions": [
            {"top_k": [{"breed": "pug", "probability": 0.91}, {"breed": "boxer", "probability": 0.07}]}
        ],
        "model_version": "sha256:abc",
        "latency_ms": 12.5,
    }
    document = build_report(
        ReportInputs(prediction=reply, prediction_image=image), tmp_path / "report.html"
    ).read_text()
    section = _section(document, "sample-prediction")
    thumbnail = re.search(r'src="data:image/jpeg;base64,([^"]+)"', section)
    assert thumbnail, "the sent image is embedded as a JPEG"
    with Image.open(io.BytesIO(base64.b64decode(thumbnail.group(1)))) as shown:
        assert max(shown.size) == 224 and shown.format == "JPEG"
    assert section.index("pug") < section.index("boxer") and "0.91" in section and "sha256:abc" in section


def test_rule_evidence_shows_the_check_that_fired_not_the_last_one(tmp_path: Path) -> None:
    findings = [
        {"check": "activation_variance_ratio", "ratio": 156.6, "fires": True},
        {"check": "loss_stalled_steps", "stalled_steps": 0, "fires": False},
    ]
    rules = {
        "rules": [
            {
                "rule": "poor_weight_initialization",
                "status": "IssuesFound",
                "evidence": {"findings": findings},
            }
        ]
    }
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    section = _section(
        build_report(ReportInputs(rules=tmp_path / "rules.json"), tmp_path / "r.html").read_text(),
        "debugger-rules",
    )
    assert "activation_variance_ratio" in section and "loss_stalled_steps" not in section


def test_job_descriptions_name_the_artifacts_on_either_engine() -> None:
    from pipeline.report.collect import step_artifacts

    training = step_artifacts(
        "Train",
        "Training",
        {
            "TrainingJobName": "train-1",
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/p/train-1/output/model.tar.gz"},
            "OutputDataConfig": {"S3OutputPath": "s3://b/p/"},
            "DebugHookConfig": {"S3OutputPath": "s3://b/debug"},
        },
    )
    assert training.uris == ["s3://b/p/train-1/output/model.tar.gz", "s3://b/p/train-1/output/output.tar.gz"]
    assert training.trace_uri == "s3://b/debug/train-1/debug-output"
    processing = step_artifacts(
        "Evaluate",
        "Processing",
        {
            "ProcessingOutputConfig": {
                "Outputs": [{"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/eval"}}]
            }
        },
    )
    assert processing.uris == ["s3://b/eval"] and processing.trace_uri is None
    assert step_artifacts("Check", "Condition", {}) is None


def test_a_failed_local_execution_gets_a_report_of_what_exists(
    tmp_path: Path, artifacts: ReportInputs
) -> None:
    from pipeline.local.executions import ExecutionStore
    from pipeline.object_store import ObjectStore
    from pipeline.report.collect import write_local_report

    ObjectStore(tmp_path).put_file(artifacts.evaluation, "s3://bucket/run/evaluation/evaluation.json")
    execution = ExecutionStore(tmp_path).create("dogpipe-test", {"Steps": []}, {})
    evaluate = {
        "ProcessingOutputConfig": {"Outputs": [{"S3Output": {"S3Uri": "s3://bucket/run/evaluation"}}]}
    }
    execution.write_step_state(
        "Evaluate", {"name": "Evaluate", "type": "Processing", "status": "Succeeded", "properties": evaluate}
    )
    execution.write_step_state(
        "Train", {"name": "Train", "type": "Training", "status": "Failed", "failure_reason": "boom"}
    )
    execution.update(status="Failed", failure_reason="boom")

    out = write_local_report(tmp_path, None)
    assert out == execution.folder / "report.html"
    document = out.read_text()
    assert f"{execution.id} (Failed)" in document
    steps = _section(document, "pipeline-steps")
    assert '<tr class="Failed">' in steps and "boom" in steps and "Evaluate" in steps
    assert "data:image/png;base64," in _section(document, "evaluation")
    assert "no history.json" in _section(document, "training")
    with pytest.raises(LookupError, match="no executions under"):
        write_local_report(tmp_path / "empty", None)


def test_rewriting_a_local_report_keeps_the_sample_prediction(tmp_path: Path) -> None:
    from PIL import Image

    from pipeline.local.executions import ExecutionStore
    from pipeline.report.collect import write_local_report

    image = tmp_path / "data" / "test" / "pug" / "1.jpg"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (64, 48), (10, 200, 10)).save(image)
    execution = ExecutionStore(tmp_path / "engine").create("dogpipe-test", {"Steps": []}, {})
    reply = {"predictions": [{"top_k": [{"breed": "pug", "probability": 0.88}]}]}
    write_local_report(tmp_path / "engine", execution.id, prediction=reply, prediction_image=image)
    image.unlink()  # the data folder may move; the report must not depend on it

    rewritten = write_local_report(tmp_path / "engine", None).read_text()
    section = _section(rewritten, "sample-prediction")
    assert "0.88" in section and "data:image/jpeg;base64," in section and str(image) in section


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_reading_the_trace_prints_no_smdebug_info_lines(tmp_path: Path, artifacts: ReportInputs) -> None:
    """In a fresh interpreter, as `dogpipe run` and `dogpipe report` read it: smdebug logs INFO lines at
    import and while reading a trial; none reaches the console, and the environment is left alone."""
    import os
    import subprocess
    import sys

    script = (
        "import os, sys; from pathlib import Path; from pipeline.report import ReportInputs, build_report\n"
        "build_report(ReportInputs(trace_dir=Path(sys.argv[1])), Path(sys.argv[2]))\n"
        "assert 'SMDEBUG_LOG_LEVEL' not in os.environ\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "SMDEBUG_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(artifacts.trace_dir), str(tmp_path / "r.html")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert " INFO " not in result.stdout + result.stderr, result.stdout + result.stderr
    assert "gradient norms per layer" in _section(
        (tmp_path / "r.html").read_text(), "gradient-norms-per-layer"
    )
