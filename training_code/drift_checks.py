"""The drift checks of a window against a baseline (see ``drift.py`` for what each measures): one
two-sample test per check, its p-value against the constraints' threshold, and the images that pull
away from the baseline most (the MMD witness).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

if __package__:  # imported as training_code.drift_checks
    from .drift import DEFAULT_CONSTRAINTS, INPUT_FEATURES, MAX_EMBEDDINGS, Measurements
else:  # run inside a processing container: the code dir is on sys.path
    from drift import DEFAULT_CONSTRAINTS, INPUT_FEATURES, MAX_EMBEDDINGS, Measurements  # type: ignore[no-redef]


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


def _embedding_check(
    baseline: Mapping[str, Any], embeddings: np.ndarray, window: Measurements, check: Mapping[str, Any],
    seed: int,
) -> tuple[CheckResult, list[dict[str, Any]]]:  # fmt: skip
    result, witness = mmd_test(
        embeddings, window.embedding_matrix(), check["p_value"], int(check.get("permutations", 200)), seed
    )
    contributors = [
        {
            "id": window.ids[i],
            "witness": round(float(witness[i]), 6),
            "class": baseline["classes"][window.predicted[i]],
            "confidence": round(window.confidence[i], 4),
        }
        for i in np.argsort(-witness)[:5]
    ]
    return result, contributors


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
    on = {name: bool(checks[name].get("enabled", True)) for name in checks}
    results: list[CheckResult] = []
    if on["class_distribution"]:
        threshold = checks["class_distribution"]["p_value"]
        counts, classes = baseline["predicted_class_counts"], baseline["classes"]
        results.append(class_distribution_test(counts, window.predicted, classes, threshold))
    if on["confidence"]:
        threshold = checks["confidence"]["p_value"]
        results.append(
            ks_test("confidence", "confidence", baseline["confidence"], window.confidence, threshold)
        )
    if on["input_statistics"]:
        threshold = checks["input_statistics"]["p_value"]
        features = [name for name in INPUT_FEATURES if baseline["inputs"].get(name)]
        results += [
            ks_test("input_statistics", f"input.{name}", baseline["inputs"][name], window.inputs[name],
                    threshold, corrections=len(features))
            for name in features
        ]  # fmt: skip
    contributors: list[dict[str, Any]] = []
    if on["embedding"] and baseline_embeddings is not None and len(window.embeddings):
        result, contributors = _embedding_check(
            baseline, baseline_embeddings, window, checks["embedding"], seed
        )
        results.append(result)
    return results, contributors
