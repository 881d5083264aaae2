"""The drift checks' statistics (``training_code/drift.py``): quiet on samples of one distribution,
firing on the shift each check is for, and the images that moved most named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training_code import drift, drift_checks


def _measurements(rng: np.random.Generator, n: int, brightness: float = 0.5, shift: float = 0.0,
                  classes: list[float] | None = None) -> drift.Measurements:  # fmt: skip
    found = drift.Measurements()
    k = 4
    labels = rng.choice(k, size=n, p=classes or [0.25] * k)
    probabilities = np.full((n, k), 0.05)
    probabilities[np.arange(n), labels] = rng.uniform(0.6, 0.95, size=n)
    embeddings = rng.normal(size=(n, 16)) + shift

    def value(name: str) -> float:
        return float(rng.normal(brightness, 0.05) if name.startswith("brightness") else rng.normal(0.2, 0.02))

    rows = [{name: value(name) for name in drift.INPUT_FEATURES} for _ in range(n)]
    found.add(probabilities, embeddings, rows, [f"event-{i}" for i in range(n)])
    return found


def _baseline(found: drift.Measurements) -> tuple[dict, np.ndarray]:
    info = {"classes": ["a", "b", "c", "d"], "architecture": "x", "image_size": 32}
    return drift.baseline_document(found, info)


def test_samples_of_one_distribution_raise_nothing() -> None:
    rng = np.random.default_rng(1)
    baseline, embeddings = _baseline(_measurements(rng, 300))
    results, _ = drift_checks.compare(baseline, embeddings, _measurements(rng, 80), drift.DEFAULT_CONSTRAINTS)
    assert {r.check for r in results} == set(drift.CHECKS)
    assert [r for r in results if r.violated] == []


@pytest.mark.parametrize(
    ("window", "check"),
    [
        ({"brightness": 0.3}, "input_statistics"),
        ({"shift": 0.8}, "embedding"),
        ({"classes": [0.7, 0.1, 0.1, 0.1]}, "class_distribution"),
    ],
)
def test_each_check_fires_on_its_shift(window: dict, check: str) -> None:
    rng = np.random.default_rng(2)
    baseline, embeddings = _baseline(_measurements(rng, 300))
    results, contributors = drift_checks.compare(
        baseline, embeddings, _measurements(rng, 80, **window), drift.DEFAULT_CONSTRAINTS
    )
    fired = {r.check for r in results if r.violated}
    assert check in fired, [(r.feature, r.p_value) for r in results]
    assert len(contributors) == 5 and contributors[0]["witness"] >= contributors[-1]["witness"]
    if check == "input_statistics":
        assert {r.feature for r in results if r.violated} >= {"input.brightness_r", "input.brightness_g"}


def test_a_shifted_embedding_minority_is_what_the_witness_names() -> None:
    rng = np.random.default_rng(3)
    baseline, embeddings = _baseline(_measurements(rng, 300))
    window = _measurements(rng, 60)
    window.embeddings[:10] = list(np.asarray(window.embeddings[:10]) + 3.0)
    _, contributors = drift_checks.compare(baseline, embeddings, window, drift.DEFAULT_CONSTRAINTS)
    assert {c["id"] for c in contributors} <= {f"event-{i}" for i in range(10)}


def test_psi_and_the_disabled_checks() -> None:
    assert drift_checks.psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == pytest.approx(0)
    assert drift_checks.psi(np.array([50.0, 50.0]), np.array([90.0, 10.0])) > 0.25
    rng = np.random.default_rng(4)
    baseline, embeddings = _baseline(_measurements(rng, 100))
    off = {"checks": {name: {"enabled": False, "p_value": 0.01} for name in drift.CHECKS}}
    assert drift_checks.compare(baseline, embeddings, _measurements(rng, 40), off) == ([], [])


def test_the_embedder_returns_probabilities_and_the_heads_input(tmp_path) -> None:
    from tests.serving_helpers import write_model_dir

    embedder, info = drift.Embedder.from_model_dir(write_model_dir(tmp_path / "m"))
    probabilities, embeddings = embedder(torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8))
    assert probabilities.shape == (3, len(info["classes"])) and np.allclose(
        probabilities.sum(1), 1, atol=1e-5
    )
    assert embeddings.shape == (3, 1024)  # mobilenet_v3_small's classifier[-1] input
