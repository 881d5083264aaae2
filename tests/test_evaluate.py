"""evaluate.py: metric math against hand-worked examples, and a whole run on a model archive."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from training_code import dogdata, evaluate, models


def test_metrics_match_a_hand_worked_example() -> None:
    classes = ["a", "b", "c"]
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    report = evaluate.classification_metrics(y_true, y_pred, classes)
    metrics = report["multiclass_classification_metrics"]
    assert metrics["accuracy"] == {"value": pytest.approx(4 / 6), "standard_deviation": "NaN"}
    assert metrics["confusion_matrix"] == {
        "a": {"a": 2, "b": 1, "c": 0},
        "b": {"a": 0, "b": 1, "c": 1},
        "c": {"a": 0, "b": 0, "c": 1},
    }
    # a: P 2/2 R 2/3; b: P 1/2 R 1/2; c: P 1/2 R 1/1
    per_class = report["per_class"]
    assert per_class["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert per_class["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics["weighted_precision"]["value"] == pytest.approx((3 * 1.0 + 2 * 0.5 + 1 * 0.5) / 6)
    assert metrics["weighted_recall"]["value"] == pytest.approx(4 / 6)  # weighted recall is accuracy
    assert metrics["weighted_f1"]["value"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert metrics["accuracy_best_constant_classifier"]["value"] == pytest.approx(3 / 6)
    assert report["num_samples"] == 6


def test_a_never_predicted_class_has_zero_precision_not_an_error() -> None:
    report = evaluate.classification_metrics([0, 1], [0, 0], ["a", "b"])
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_class"]["a"]["precision"] == 0.5


@pytest.mark.parametrize(
    ("y_true", "y_pred", "words"), [([0], [0, 1], "predictions"), ([], [], "no test"), ([0], [5], "outside")]
)
def test_bad_inputs_are_named(y_true, y_pred, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        evaluate.classification_metrics(y_true, y_pred, ["a", "b"])


@pytest.fixture(scope="module")
def model_archive(preprocessed_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised squeezenet saved the way train.py saves it, packed as a training job does."""
    torch.manual_seed(0)
    classes = dogdata.read_classes(preprocessed_dataset / "stats")
    mean, std = dogdata.read_stats(preprocessed_dataset / "stats")
    model_dir = tmp_path_factory.mktemp("model")
    model = models.build_model("squeezenet1_1", len(classes))
    torch.save(model.state_dict(), model_dir / models.MODEL_WEIGHTS_FILE)
    info = {
        "architecture": "squeezenet1_1",
        "num_classes": len(classes),
        "classes": classes,
        "image_size": 32,
        "mean": mean,
        "std": std,
        "hyperparameters": {},
    }
    (model_dir / models.MODEL_INFO_FILE).write_text(json.dumps(info))
    packed = tmp_path_factory.mktemp("packed")
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for name in (models.MODEL_WEIGHTS_FILE, models.MODEL_INFO_FILE):
            tar.add(model_dir / name, arcname=name)
    return packed


def test_run_on_a_model_archive_scores_every_test_image(
    model_archive: Path, preprocessed_dataset: Path, tmp_path: Path, capsys
) -> None:
    test_dir = preprocessed_dataset / "data" / "test"
    argv = [
        "--model-dir",
        str(model_archive),
        "--test-dir",
        str(test_dir),
        "--output-dir",
        str(tmp_path),
        "--batch-size",
        "5",
        "--num-workers",
        "1",
    ]
    assert evaluate.main(argv) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    metrics = report["multiclass_classification_metrics"]

    # an independent pass over the same images gives the same accuracy
    model, info = models.load_trained_model(evaluate.unpack_model(model_archive, tmp_path / "unpacked"))
    mean, std = torch.tensor(info["mean"]).view(3, 1, 1), torch.tensor(info["std"]).view(3, 1, 1)
    _, samples = dogdata.scan_split(test_dir)
    hits = 0
    with torch.inference_mode():
        for path, label in samples:
            image = (dogdata.decode_image(path, 32).float() / 255 - mean) / std
            hits += int(model(image.unsqueeze(0)).argmax()) == label
    assert report["num_samples"] == len(samples) == 16
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == 16
    assert metrics["accuracy"]["value"] == pytest.approx(hits / 16)
    assert f"test_accuracy={hits / 16:.4f}" in capsys.readouterr().out


def test_missing_model_fails_with_a_clear_message(preprocessed_dataset: Path, tmp_path: Path, caplog) -> None:
    argv = [
        "--model-dir",
        str(tmp_path / "empty"),
        "--test-dir",
        str(preprocessed_dataset / "data" / "test"),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    (tmp_path / "empty").mkdir()
    assert evaluate.main(argv) == 2
    assert "model.tar.gz" in caplog.text
    assert not (tmp_path / "out").exists()


def test_evaluate_writes_the_versions_drift_baseline(
    model_archive: Path, preprocessed_dataset: Path, tmp_path: Path
) -> None:
    from training_code import drift

    test_dir = preprocessed_dataset / "data" / "test"
    argv = ["--model-dir", str(model_archive), "--test-dir", str(test_dir), "--output-dir", str(tmp_path),
            "--num-workers", "1"]  # fmt: skip
    assert evaluate.main(argv) == 0
    baseline = json.loads((tmp_path / drift.BASELINE_FILE).read_text())
    embeddings = np.load(tmp_path / drift.EMBEDDINGS_FILE)
    assert baseline["num_images"] == 16 and sum(baseline["predicted_class_counts"]) == 16
    assert len(baseline["confidence"]) == 16 and all(0 < c <= 1 for c in baseline["confidence"])
    assert embeddings.shape == (16, 512)  # squeezenet's head input, pooled
    assert baseline["embeddings"] == {"file": drift.EMBEDDINGS_FILE, "count": 16, "dim": 512}
    # the per-image sizes are the files' own (48-96 px), not the model's 32 px
    widths = baseline["inputs"]["width"]
    assert min(widths) >= 48 and max(widths) <= 96 and len(set(widths)) > 1
    assert 0 < baseline["summary"]["brightness_r"]["mean"] < 1
    assert not (tmp_path / "no-baseline").exists()
    assert evaluate.main([*argv[:5], str(tmp_path / "no-baseline"), "--no-baseline"]) == 0
    assert not (tmp_path / "no-baseline" / drift.BASELINE_FILE).exists()
