"""Two models on the same test images: the figures of ``comparison.json`` (the Compare step, and
``dogpipe models compare`` when both models can be fetched).

The scoring is paired: both models see every test image in the same order, so the test of the
difference is McNemar's exact test on the discordant pairs (images one model gets right and the other
wrong), a two-sided binomial test with p = 1/2 (``math.comb``: no scipy in the job). Accuracy and
weighted F1 are ``evaluate.classification_metrics``'s, so they equal what Evaluate reports. Per-breed
deltas are recall differences (accuracy within a breed), the breeds that got worse first.

The gate verdict lives here too, so the pipeline's condition step reads one boolean and the Fail step
one message: a candidate blocks only when the comparison was made, its accuracy is lower than
production's by more than the tolerance, and the drop is significant at ``alpha``.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

if __package__:  # imported as training_code.model_comparison (tests, dogpipe models compare)
    from . import models
    from .evaluate import classification_metrics, predict, test_loader, unpack_model
else:  # run from the job's code folder
    import models  # type: ignore[no-redef]
    from evaluate import (  # type: ignore[no-redef]
        classification_metrics,
        predict,
        test_loader,
        unpack_model,
    )

STATUSES = ("compared", "no_production", "not_comparable")
LATENCY_RUNS = 10


@dataclass(frozen=True)
class ScoredModel:
    """One model's answers on the test split, with what an approver weighs besides accuracy."""

    classes: list[str]
    labels: list[int]
    predictions: list[int]
    model_bytes: int
    latency_ms: float

    @property
    def metrics(self) -> dict[str, Any]:
        return classification_metrics(self.labels, self.predictions, self.classes)

    def summary(self) -> dict[str, Any]:
        figures = self.metrics["multiclass_classification_metrics"]
        return {
            "accuracy": figures["accuracy"]["value"],
            "weighted_f1": figures["weighted_f1"]["value"],
            "model_bytes": self.model_bytes,
            "latency_ms": round(self.latency_ms, 3),
        }


@torch.inference_mode()
def single_image_latency_ms(model: torch.nn.Module, image: torch.Tensor, runs: int = LATENCY_RUNS) -> float:
    """Median wall time of one forward pass on one image (after two warm-up passes)."""
    batch = image.unsqueeze(0)
    for _ in range(2):
        model(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(batch)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def score_model(model_dir: Path, test_dir: Path, batch_size: int = 64, num_workers: int = 0) -> ScoredModel:
    """Predict every test image with the model in ``model_dir`` (``model.tar.gz`` or unpacked)."""
    with tempfile.TemporaryDirectory(prefix="dogpipe-compare-") as scratch:
        unpacked = unpack_model(model_dir, Path(scratch))
        model_bytes = (unpacked / models.MODEL_WEIGHTS_FILE).stat().st_size
        model, info = models.load_trained_model(unpacked)
    classes = list(info["classes"])
    loader = test_loader(test_dir, info, batch_size, num_workers)
    labels, predictions = predict(model, loader)
    first_image = next(iter(loader))[0][0]
    return ScoredModel(classes, labels, predictions, model_bytes, single_image_latency_ms(model, first_image))


def mcnemar_exact_p(candidate_only_right: int, production_only_right: int) -> float:
    """Two-sided exact McNemar p-value: P(a split at least this uneven) under Binomial(n, 1/2)."""
    n = candidate_only_right + production_only_right
    if n == 0:
        return 1.0
    smaller = min(candidate_only_right, production_only_right)
    tail = sum(math.comb(n, k) for k in range(smaller + 1)) / 2**n
    return min(1.0, 2 * tail)


def per_breed(candidate: ScoredModel, production: ScoredModel) -> list[dict[str, Any]]:
    """Each breed's accuracy (recall) under both models and the difference, worst delta first."""
    rows = []
    for index, breed in enumerate(candidate.classes):
        positions = [i for i, label in enumerate(candidate.labels) if label == index]
        if not positions:
            continue
        mine = sum(candidate.predictions[i] == index for i in positions) / len(positions)
        theirs = sum(production.predictions[i] == index for i in positions) / len(positions)
        rows.append(
            {
                "breed": breed,
                "candidate_accuracy": mine,
                "production_accuracy": theirs,
                "delta": round(mine - theirs, 6),
                "n": len(positions),
            }
        )
    return sorted(rows, key=lambda row: (row["delta"], row["breed"]))


def gate_verdict(
    comparison: dict[str, Any], *, enabled: bool, tolerance: float, alpha: float
) -> dict[str, Any]:
    """Whether the candidate may go on, and the sentence that says why (the Fail step's message)."""
    gate = {"enabled": enabled, "tolerance": tolerance, "passed": True, "message": ""}
    if comparison["status"] != "compared":
        gate["message"] = f"not compared ({comparison['reason']}): the production gate does not block"
        return gate
    mine, theirs = comparison["candidate"]["accuracy"], comparison["baseline"]["accuracy"]
    delta, p_value = comparison["delta"]["accuracy"], comparison["mcnemar"]["p_value"]
    version = comparison["production"]["version"]
    numbers = (
        f"test accuracy {mine:.4f} vs production v{version} {theirs:.4f} (delta {delta:+.4f}, "
        f"tolerance {tolerance:g}; McNemar p={p_value:.4g}, alpha {alpha:g}) on "
        f"{comparison['test_images']} images"
    )
    worse = delta < -tolerance and p_value < alpha
    gate["passed"] = not (enabled and worse)
    if worse:
        gate["message"] = f"candidate is worse than production: {numbers}"
    else:
        gate["message"] = f"candidate is not clearly worse than production: {numbers}"
    return gate


def compare(
    candidate: ScoredModel,
    production: ScoredModel | None,
    production_facts: dict[str, Any] | None,
    *,
    reason: str | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The ``comparison.json`` document without its gate (``gate_verdict`` adds it).

    ``production`` None means there is none (``reason`` says why, e.g. a first run), or, with
    ``production_facts``, that its model could not be scored; classes that differ make the two not
    comparable (the same image would be scored against other labels).
    """
    document: dict[str, Any] = {
        "status": "compared",
        "reason": None,
        "production": production_facts,
        "test_images": len(candidate.labels),
        "candidate": candidate.summary(),
        "baseline": None,
        "delta": None,
        "mcnemar": None,
        "per_breed": [],
    }
    if production is None:
        status = "no_production" if production_facts is None else "not_comparable"
        return {**document, "status": status, "reason": reason or "no production model"}
    document["baseline"] = production.summary()
    unlike = incomparable_reason(candidate, production)
    if unlike:
        return {**document, "status": "not_comparable", "reason": unlike}
    document["delta"] = {
        key: round(document["candidate"][key] - document["baseline"][key], 6)
        for key in ("accuracy", "weighted_f1")
    }
    document["mcnemar"] = mcnemar(candidate, production, alpha)
    document["per_breed"] = per_breed(candidate, production)
    return document


def incomparable_reason(candidate: ScoredModel, production: ScoredModel) -> str | None:
    """Why the two cannot be scored against each other (other classes), or None."""
    if production.classes != candidate.classes:
        only_candidate = sorted(set(candidate.classes) - set(production.classes))
        only_production = sorted(set(production.classes) - set(candidate.classes))
        detail = (
            f"candidate only: {', '.join(only_candidate) or 'none'}; "
            f"production only: {', '.join(only_production) or 'none'}"
        )
        if not only_candidate and not only_production:
            detail = "the same breeds in another order"
        return f"the classes differ ({detail})"
    if production.labels != candidate.labels:
        return "the test images were read differently"
    return None


def mcnemar(candidate: ScoredModel, production: ScoredModel, alpha: float) -> dict[str, Any]:
    """The discordant pairs and McNemar's exact p-value of two models scored on the same images."""
    mine = [p == y for p, y in zip(candidate.predictions, candidate.labels, strict=True)]
    theirs = [p == y for p, y in zip(production.predictions, production.labels, strict=True)]
    candidate_only = sum(a and not b for a, b in zip(mine, theirs, strict=True))
    production_only = sum(b and not a for a, b in zip(mine, theirs, strict=True))
    p_value = mcnemar_exact_p(candidate_only, production_only)
    return {
        "candidate_only_right": candidate_only,
        "production_only_right": production_only,
        "p_value": p_value,
        "significant": p_value < alpha,
        "alpha": alpha,
    }
