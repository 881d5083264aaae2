"""Drift of an image classifier's traffic: what a baseline records and how a window is judged against it.

Evaluate writes the baseline from the test split (``baseline.json`` + ``baseline_embeddings.npy``); the
monitoring job (``monitor.py``) measures a window of captured requests the same way and runs one
two-sample test per check, each against the p-value threshold the constraints give:

- ``class_distribution``: chi-square on the 2 x K table of predicted-class counts (baseline, window);
  the population stability index (PSI) is reported beside it.
- ``confidence``: Kolmogorov-Smirnov on the max class probability.
- ``input_statistics``: KS on each image statistic (per-channel brightness, contrast, sharpness, width,
  height), Bonferroni-corrected over them, so the check keeps its own false-alarm rate.
- ``embedding``: maximum mean discrepancy (RBF kernel, median-distance bandwidth) between the
  penultimate-layer embeddings, its p-value from a permutation test; each window image's witness value
  says how much it pulls away from the baseline (the images that contributed most to the drift).

Images are measured as the endpoint sees them: decoded by ``dogdata.decode_image`` and cropped to the
model's size; the embedding is the input of the classification head (``models.find_head``), pooled for
a convolutional head. numpy, scipy and torch only, as the SageMaker framework images have them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

if __package__:  # imported as training_code.drift (evaluate, the CLI, tests)
    from . import contract, dogdata, models
else:  # run inside a processing container: the code dir is on sys.path
    import contract  # type: ignore[no-redef]
    import dogdata  # type: ignore[no-redef]
    import models  # type: ignore[no-redef]

BASELINE_FILE = contract.BASELINE_FILE
EMBEDDINGS_FILE = contract.EMBEDDINGS_FILE
CONSTRAINTS_FILE = contract.CONSTRAINTS_FILE
BASELINE_VERSION = 1
#: Per-image statistics of the input check, in [0, 1] except the sizes (pixels).
INPUT_FEATURES: tuple[str, ...] = (
    "brightness_r",
    "brightness_g",
    "brightness_b",
    "contrast",
    "sharpness",
    "width",
    "height",
)
CHECKS: tuple[str, ...] = ("class_distribution", "confidence", "input_statistics", "embedding")
#: Most embeddings kept in a baseline and used from a window (the MMD's cost grows with the square).
MAX_EMBEDDINGS = 500
#: Constraints when none are given: every check at p < 0.01, 200 permutations, 30 images at least.
DEFAULT_CONSTRAINTS: dict[str, Any] = {
    "version": BASELINE_VERSION,
    "min_records": 30,
    "checks": {
        "class_distribution": {"enabled": True, "p_value": 0.01},
        "confidence": {"enabled": True, "p_value": 0.01},
        "input_statistics": {"enabled": True, "p_value": 0.01},
        "embedding": {"enabled": True, "p_value": 0.01, "permutations": 200},
    },
}


# -- measuring images ---------------------------------------------------------------------------------


def image_statistics(full: torch.Tensor, crop: torch.Tensor) -> dict[str, float]:
    """The input check's statistics of one image: ``full`` as decoded (its size), ``crop`` the uint8
    ``3 x S x S`` the model sees (brightness per channel, contrast, sharpness: mean absolute gradient,
    which blur lowers)."""
    pixels = crop.to(torch.float32) / 255.0
    gray = pixels.mean(dim=0)
    gradient = (gray[:, 1:] - gray[:, :-1]).abs().mean() + (gray[1:, :] - gray[:-1, :]).abs().mean()
    means = pixels.mean(dim=(1, 2)).tolist()
    return {
        "brightness_r": means[0],
        "brightness_g": means[1],
        "brightness_b": means[2],
        "contrast": float(gray.std()),
        "sharpness": float(gradient) / 2,
        "width": float(full.shape[-1]),
        "height": float(full.shape[-2]),
    }


class Embedder:
    """The trained network, returning class probabilities and the head's input for a uint8 batch."""

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        self.network = network.eval()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        _, head = models.find_head(network)
        self._captured: list[torch.Tensor] = []
        head.register_forward_pre_hook(lambda module, inputs: self._captured.append(inputs[0].detach()))

    @classmethod
    def from_model_dir(cls, model_dir: Any) -> tuple[Embedder, dict[str, Any]]:
        network, info = models.load_trained_model(model_dir)
        return cls(network, info["mean"], info["std"]), info

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities N x K, embeddings N x D) as float32 arrays."""
        self._captured.clear()
        logits = self.network(dogdata.normalize(images, self.mean, self.std))
        features = self._captured[-1]
        if features.dim() == 4:  # a convolutional head (squeezenet): pool as the network does
            features = features.mean(dim=(2, 3))
        return (
            torch.softmax(logits.float(), dim=1).numpy(),
            features.flatten(1).float().numpy(),
        )


@dataclass
class Measurements:
    """What the checks compare, for one set of images (the baseline's or a window's)."""

    predicted: list[int] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    inputs: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in INPUT_FEATURES})
    embeddings: list[np.ndarray] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.predicted)

    def add(self, probabilities: np.ndarray, embeddings: np.ndarray, statistics: list[dict[str, float]],
            ids: Sequence[str]) -> None:  # fmt: skip
        self.predicted += probabilities.argmax(axis=1).tolist()
        self.confidence += probabilities.max(axis=1).astype(float).tolist()
        for row in statistics:
            for name in INPUT_FEATURES:
                self.inputs[name].append(row[name])
        self.embeddings += list(embeddings)
        self.ids += list(ids)

    def embedding_matrix(self) -> np.ndarray:
        return np.stack(self.embeddings).astype(np.float32) if self.embeddings else np.zeros((0, 0))


def measure(
    embedder: Embedder,
    images: Iterable[tuple[str, bytes]],
    image_size: int,
    batch_size: int = 32,
) -> tuple[Measurements, list[tuple[str, str]]]:
    """Decode, measure and embed ``(id, encoded image)`` pairs; returns the measurements and the
    ``(id, reason)`` of images that could not be decoded (an endpoint would have refused them too)."""
    found = Measurements()
    refused: list[tuple[str, str]] = []
    batch: list[torch.Tensor] = []
    rows: list[dict[str, float]] = []
    ids: list[str] = []

    def flush() -> None:
        if batch:
            probabilities, embeddings = embedder(torch.stack(batch))
            found.add(probabilities, embeddings, rows, ids)
            batch.clear()
            rows.clear()
            ids.clear()

    for image_id, data in images:
        try:
            full = dogdata.decode_image(data)
        except dogdata.ImageDecodeError as error:
            refused.append((image_id, str(error)))
            continue
        crop = dogdata.resize_center_crop(full, image_size)
        batch.append(crop)
        rows.append(image_statistics(full, crop))
        ids.append(image_id)
        if len(batch) >= batch_size:
            flush()
    flush()
    return found, refused


# -- the baseline -------------------------------------------------------------------------------------


def _summary(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    quantiles = np.quantile(array, [0.05, 0.5, 0.95])
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "p05": float(quantiles[0]),
        "p50": float(quantiles[1]),
        "p95": float(quantiles[2]),
    }


def baseline_document(found: Measurements, info: Mapping[str, Any], seed: int = 0) -> tuple[dict, np.ndarray]:
    """``baseline.json``'s content and the embeddings kept (at most ``MAX_EMBEDDINGS``, a seeded
    sample): per-image values for the two-sample tests, and their summaries (mean, spread, quantiles)
    for people."""
    if not len(found):
        raise ValueError("no images to make a baseline of")
    classes = [str(name) for name in info["classes"]]
    counts = np.bincount(np.asarray(found.predicted), minlength=len(classes)).tolist()
    embeddings = found.embedding_matrix()
    if len(embeddings) > MAX_EMBEDDINGS:
        keep = np.sort(np.random.default_rng(seed).choice(len(embeddings), MAX_EMBEDDINGS, replace=False))
        embeddings = embeddings[keep]
    document = {
        "version": BASELINE_VERSION,
        "model": {key: info.get(key) for key in ("architecture", "image_size", "version")},
        "classes": classes,
        "num_images": len(found),
        "predicted_class_counts": counts,
        "confidence": [round(value, 6) for value in found.confidence],
        "inputs": {name: [round(value, 6) for value in found.inputs[name]] for name in INPUT_FEATURES},
        "summary": {
            "confidence": _summary(found.confidence),
            **{name: _summary(found.inputs[name]) for name in INPUT_FEATURES},
        },
        "embeddings": {
            "file": EMBEDDINGS_FILE,
            "count": len(embeddings),
            "dim": int(embeddings.shape[1]),
        },
    }
    return document, embeddings.astype(np.float16)
