"""Processing job: score the trained model on the test split and write ``evaluation.json``.

    python evaluate.py [--model-dir DIR] [--test-dir DIR] [--output-dir DIR] [--batch-size 64]

``--model-dir`` holds ``model.tar.gz`` (what a training job uploads) or the unpacked model directory.
The images go through the same decoding, geometry and normalisation as in training (``model_info.json``
carries image size, mean/std and the class order).

``evaluation.json`` follows SageMaker's model-quality metrics form, so a ``ConditionStep`` can read
``multiclass_classification_metrics.accuracy.value`` with ``JsonGet`` and the model registry can show it:
each metric is ``{"value": v, "standard_deviation": "NaN"}`` (one test pass gives no spread), the
confusion matrix is ``{actual: {predicted: count}}``. ``per_class`` adds precision, recall, F1 and
support per breed. A class never predicted has precision 0 (scikit-learn's ``zero_division=0``).

Beside it, the version's drift baseline (``drift.py``): ``baseline.json`` (the test split's per-image
input statistics, predicted classes and confidences, with their summaries) and
``baseline_embeddings.npy`` (penultimate-layer embeddings of up to 500 test images), which the
monitoring job compares captured traffic with. Register points the model package at them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__:  # imported as training_code.evaluate (tests)
    from . import contract, dogdata, drift, models
else:  # run as a script inside the processing container
    import contract  # type: ignore[no-redef]
    import dogdata  # type: ignore[no-redef]
    import drift  # type: ignore[no-redef]
    import models  # type: ignore[no-redef]

MODEL_ARCHIVE = "model.tar.gz"
EVALUATION_FILE = "evaluation.json"
NO_SPREAD = "NaN"

log = logging.getLogger("evaluate")


def _metric(value: float) -> dict[str, Any]:
    return {"value": value, "standard_deviation": NO_SPREAD}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, support-weighted precision/recall/F1, per-class scores and the confusion matrix."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if not y_true:
        raise ValueError("no test samples to evaluate")
    size = len(classes)
    matrix = torch.zeros(size, size, dtype=torch.int64)
    for actual, predicted in zip(y_true, y_pred, strict=True):
        if not (0 <= actual < size and 0 <= predicted < size):
            raise ValueError(f"label {actual} or prediction {predicted} outside the {size} classes")
        matrix[actual, predicted] += 1
    total = int(matrix.sum())
    per_class: dict[str, dict[str, float | int]] = {}
    for index, name in enumerate(classes):
        hits = int(matrix[index, index])
        support = int(matrix[index].sum())
        precision = _ratio(hits, int(matrix[:, index].sum()))
        recall = _ratio(hits, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}

    def weighted(key: str) -> float:
        return sum(scores[key] * scores["support"] for scores in per_class.values()) / total

    majority = max(int(row.sum()) for row in matrix)
    return {
        "multiclass_classification_metrics": {
            "accuracy": _metric(int(matrix.diagonal().sum()) / total),
            "weighted_precision": _metric(weighted("precision")),
            "weighted_recall": _metric(weighted("recall")),
            "weighted_f1": _metric(weighted("f1")),
            "accuracy_best_constant_classifier": _metric(majority / total),
            "confusion_matrix": {
                actual: {predicted: int(matrix[i, j]) for j, predicted in enumerate(classes)}
                for i, actual in enumerate(classes)
            },
        },
        "per_class": per_class,
        "num_samples": total,
    }


def unpack_model(model_dir: Path, scratch: Path) -> Path:
    """The model directory: ``model_dir`` itself, or ``model.tar.gz`` inside it unpacked into ``scratch``."""
    archive = model_dir / MODEL_ARCHIVE
    if not archive.is_file():
        if (model_dir / models.MODEL_INFO_FILE).is_file():
            return model_dir
        raise FileNotFoundError(f"{model_dir}: neither {MODEL_ARCHIVE} nor {models.MODEL_INFO_FILE} found")
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")  # refuses absolute paths, '..' and device files
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"{archive}: not a readable model archive ({error})") from None
    return scratch


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: dogdata.ImageFolderLoader) -> tuple[list[int], list[int]]:
    """Labels and arg-max predictions for every sample of ``loader``, in order."""
    labels: list[int] = []
    predictions: list[int] = []
    for images, batch_labels in loader:
        predictions += model(images).argmax(dim=1).tolist()
        labels += batch_labels.tolist()
    return labels, predictions


def write_baseline(model: torch.nn.Module, info: dict[str, Any], test_dir: Path, output_dir: Path) -> Path:
    """The drift baseline of the test split, measured as the monitoring job measures captured images."""
    _, samples = dogdata.scan_split(test_dir)
    embedder = drift.Embedder(model, info["mean"], info["std"])
    found, refused = drift.measure(
        embedder, ((path, Path(path).read_bytes()) for path, _ in samples), int(info["image_size"])
    )
    for path, reason in refused:
        log.warning("baseline: skipped %s: %s", path, reason)
    document, embeddings = drift.baseline_document(found, info)
    output_dir.mkdir(parents=True, exist_ok=True)
    np.save(output_dir / drift.EMBEDDINGS_FILE, embeddings)
    target = output_dir / drift.BASELINE_FILE
    target.with_suffix(".tmp").write_text(json.dumps(document) + "\n")
    target.with_suffix(".tmp").replace(target)
    log.info("wrote %s (%d images, %d embeddings)", target, document["num_images"], len(embeddings))
    return target


def test_loader(test_dir: Path, info: dict[str, Any], batch_size: int, num_workers: int) -> Any:
    """The test split in a fixed order, as the model in ``info`` (``model_info.json``) was trained to
    see it: its classes, image size and normalisation (Evaluate and Compare score the same way)."""
    return dogdata.make_loader(
        test_dir,
        list(info["classes"]),
        int(info["image_size"]),
        info["mean"],
        info["std"],
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
    )


def evaluate(
    model_dir: Path, test_dir: Path, batch_size: int, num_workers: int, baseline_dir: Path | None = None
) -> dict[str, Any]:
    """Load the model, run the test split, and return the ``evaluation.json`` content; with
    ``baseline_dir``, write the drift baseline there too."""
    with tempfile.TemporaryDirectory(prefix="dogpipe-model-") as scratch:
        model, info = models.load_trained_model(unpack_model(model_dir, Path(scratch)))
    classes = list(info["classes"])
    loader = test_loader(test_dir, info, batch_size, num_workers)
    log.info(
        "evaluating %s on %d test images in %d classes",
        info["architecture"],
        loader.num_samples,
        len(classes),
    )
    labels, predictions = predict(model, loader)
    if baseline_dir is not None:
        write_baseline(model, info, test_dir, baseline_dir)
    return classification_metrics(labels, predictions, classes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path(contract.processing_input("model")))
    parser.add_argument("--test-dir", type=Path, default=Path(contract.processing_input("test")))
    parser.add_argument("--output-dir", type=Path, default=Path(contract.processing_output("evaluation")))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=os.cpu_count() or 1, help="Decoding threads.")
    parser.add_argument("--no-baseline", action="store_true", help="Skip the drift baseline.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    contract.configure_logging()
    args = parse_args(argv)
    try:
        baseline_dir = None if args.no_baseline else args.output_dir
        report = evaluate(args.model_dir, args.test_dir, args.batch_size, args.num_workers, baseline_dir)
    except KeyError as error:
        log.error("evaluation failed: %s lacks the key %s", models.MODEL_INFO_FILE, error)
        return 2
    except (FileNotFoundError, ValueError) as error:
        log.error("evaluation failed: %s", error)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    target = args.output_dir / EVALUATION_FILE
    target.with_suffix(".tmp").write_text(json.dumps(report, indent=2) + "\n")
    target.with_suffix(".tmp").replace(target)
    metrics = report["multiclass_classification_metrics"]
    print(
        f"test_accuracy={metrics['accuracy']['value']:.4f} weighted_f1={metrics['weighted_f1']['value']:.4f} "
        f"num_samples={report['num_samples']}",
        flush=True,
    )
    log.info("wrote %s", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
