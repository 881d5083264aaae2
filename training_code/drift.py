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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats
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


# -- the tests ----------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """One check of one window: its test, statistic, p-value, threshold and verdict."""

    check: str
    feature: str
    test: str
    statistic: float
    p_value: float
    threshold: float
    violated: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def description(self) -> str:
        verdict = "below" if self.violated else "not below"
        return (
            f"{self.test} p-value {self.p_value:.3g} {verdict} threshold {self.threshold:g} "
            f"(statistic {self.statistic:.4g})"
        )


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = 1e-4) -> float:
    """Population stability index of two count vectors (0: same; > 0.25 is usually called a shift)."""
    p = np.maximum(expected / max(expected.sum(), 1), epsilon)
    q = np.maximum(actual / max(actual.sum(), 1), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def class_distribution_test(baseline: Sequence[int], window: Sequence[int], classes: Sequence[str],
                            threshold: float) -> CheckResult:  # fmt: skip
    expected = np.asarray(baseline, dtype=np.float64)
    actual = np.bincount(np.asarray(window, dtype=np.int64), minlength=len(classes)).astype(np.float64)
    used = (expected + actual) > 0
    if used.sum() < 2:
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value, _, _ = stats.chi2_contingency(np.stack([expected[used], actual[used]]))
    share = actual / max(actual.sum(), 1)
    base_share = expected / max(expected.sum(), 1)
    shifted = sorted(range(len(classes)), key=lambda i: -abs(share[i] - base_share[i]))[:3]
    return CheckResult(
        "class_distribution",
        "predicted_class",
        "chi-square",
        float(statistic),
        float(p_value),
        threshold,
        bool(p_value < threshold),
        {
            "psi": psi(expected, actual),
            "most_shifted": [
                {
                    "class": classes[i],
                    "baseline_share": round(float(base_share[i]), 4),
                    "window_share": round(float(share[i]), 4),
                }
                for i in shifted
            ],
        },
    )


def ks_test(check: str, feature: str, baseline: Sequence[float], window: Sequence[float], threshold: float,
            corrections: int = 1) -> CheckResult:  # fmt: skip
    result = stats.ks_2samp(np.asarray(baseline), np.asarray(window))
    p_value = min(1.0, float(result.pvalue) * corrections)
    return CheckResult(
        check,
        feature,
        "Kolmogorov-Smirnov" + (f" (Bonferroni x{corrections})" if corrections > 1 else ""),
        float(result.statistic),
        p_value,
        threshold,
        bool(p_value < threshold),
        {"baseline_median": float(np.median(baseline)), "window_median": float(np.median(window))},
    )


def _rbf(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    distances = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.exp(-gamma * np.maximum(distances, 0))


def _mmd2(kernel: np.ndarray, first: np.ndarray) -> float:
    """Biased MMD^2 of the split ``first`` (boolean mask) of the pooled kernel matrix."""
    second = ~first
    return float(
        kernel[np.ix_(first, first)].mean()
        + kernel[np.ix_(second, second)].mean()
        - 2 * kernel[np.ix_(first, second)].mean()
    )


def mmd_test(baseline: np.ndarray, window: np.ndarray, threshold: float, permutations: int,
             seed: int = 0) -> tuple[CheckResult, np.ndarray]:  # fmt: skip
    """MMD^2 with its permutation p-value, and each window row's witness value (how much closer it is
    to the window than to the baseline: the rows that drifted most score highest)."""
    rng = np.random.default_rng(seed)
    x = baseline.astype(np.float64)
    y = window.astype(np.float64)
    if len(y) > MAX_EMBEDDINGS:
        y = y[rng.choice(len(y), MAX_EMBEDDINGS, replace=False)]
    pooled = np.concatenate([x, y])
    sample = pooled[rng.choice(len(pooled), min(len(pooled), 300), replace=False)]
    pairwise = np.sqrt(np.maximum(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1), 0))
    median = float(np.median(pairwise[pairwise > 0])) if (pairwise > 0).any() else 1.0
    gamma = 1.0 / (2 * median**2)
    kernel = _rbf(pooled, pooled, gamma)
    first = np.zeros(len(pooled), dtype=bool)
    first[: len(x)] = True
    observed = _mmd2(kernel, first)
    exceed = 0
    for _ in range(permutations):
        shuffled = rng.permutation(first)
        if _mmd2(kernel, shuffled) >= observed:
            exceed += 1
    p_value = (exceed + 1) / (permutations + 1)
    witness = _rbf(window.astype(np.float64), y, gamma).mean(1) - _rbf(
        window.astype(np.float64), x, gamma
    ).mean(1)
    result = CheckResult(
        "embedding",
        "embedding",
        f"MMD permutation ({permutations})",
        observed,
        p_value,
        threshold,
        bool(p_value < threshold),
        {"bandwidth": median, "baseline_n": len(x), "window_n": len(y)},
    )
    return result, witness


def compare(
    baseline: Mapping[str, Any],
    baseline_embeddings: np.ndarray | None,
    window: Measurements,
    constraints: Mapping[str, Any],
    seed: int = 0,
) -> tuple[list[CheckResult], list[dict[str, Any]]]:
    """Every enabled check of ``window`` against ``baseline``; returns the results and the window
    images that contributed most to the embedding drift (id and witness value, highest first)."""
    checks = {**DEFAULT_CONSTRAINTS["checks"], **(constraints.get("checks") or {})}
    results: list[CheckResult] = []
    contributors: list[dict[str, Any]] = []
    classes = baseline["classes"]
    if checks["class_distribution"].get("enabled", True):
        results.append(
            class_distribution_test(
                baseline["predicted_class_counts"],
                window.predicted,
                classes,
                checks["class_distribution"]["p_value"],
            )
        )
    if checks["confidence"].get("enabled", True):
        results.append(
            ks_test(
                "confidence",
                "confidence",
                baseline["confidence"],
                window.confidence,
                checks["confidence"]["p_value"],
            )
        )
    if checks["input_statistics"].get("enabled", True):
        features = [name for name in INPUT_FEATURES if baseline["inputs"].get(name)]
        for name in features:
            results.append(
                ks_test(
                    "input_statistics",
                    f"input.{name}",
                    baseline["inputs"][name],
                    window.inputs[name],
                    checks["input_statistics"]["p_value"],
                    corrections=len(features),
                )
            )
    embedding = checks["embedding"]
    if embedding.get("enabled", True) and baseline_embeddings is not None and len(window.embeddings):
        result, witness = mmd_test(
            baseline_embeddings, window.embedding_matrix(), embedding["p_value"],
            int(embedding.get("permutations", 200)), seed,
        )  # fmt: skip
        results.append(result)
        order = np.argsort(-witness)[:5]
        contributors = [
            {
                "id": window.ids[i],
                "witness": round(float(witness[i]), 6),
                "class": classes[window.predicted[i]],
                "confidence": round(window.confidence[i], 4),
            }
            for i in order
        ]  # fmt: skip
    return results, contributors


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
