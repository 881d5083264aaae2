"""Smoke runs of the cheap benchmarks at tiny sizes, so ``make bench`` does not rot between releases.

They check that each benchmark measures and records its ratios, not the figures themselves (speed
targets live in bench/, read by people from BENCHMARKS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main


@pytest.mark.slow
def test_quick_benchmarks_record_rows_and_ratios(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    main(["--quick", "--only", "stats", "train", "startup", "--output", str(output)])
    results = json.loads(output.read_text())
    assert results["quick"] is True
    benchmarks = {row["benchmark"] for row in results["rows"]}
    assert benchmarks == {"stats", "train", "startup"}
    assert all(row["median"] > 0 for row in results["rows"])
    ratios = {ratio["name"]: ratio for ratio in results["ratios"]}
    assert ratios["dogpipe / seed-style"]["goal"] == ">= 4"
    assert all(ratio["value"] > 0 for ratio in ratios.values())


@pytest.mark.slow
def test_the_scale_benchmark_runs_the_whole_pipeline_at_a_tiny_size(tmp_path: Path) -> None:
    """``--only scale --quick``: 3 breeds of tiny images through ``run_local``; every step timed with its
    peak memory, the training rate held against both limits."""
    output = tmp_path / "results.json"
    main(["--quick", "--only", "scale", "--output", str(output)])
    results = json.loads(output.read_text())
    rows = {row["case"]: row for row in results["rows"] if row["benchmark"] == "scale"}
    for step in ("Preprocess", "Tune", "Train", "Evaluate", "DebugRules"):
        assert rows[f"step {step}"]["median"] > 0 and "peak RSS" in rows[f"step {step}"]["note"], step
    assert "peak RSS" in rows["dogpipe run, total"]["note"]
    for case in ("Train, steady epochs (valid pass included)", "decode+resize limit (one core x cores)",
                 "forward+backward limit (random batches)"):  # fmt: skip
        assert rows[case]["unit"] == "img/s" and rows[case]["median"] > 0, case
    ratios = {ratio["name"]: ratio["value"] for ratio in results["ratios"] if ratio["benchmark"] == "scale"}
    assert set(ratios) == {"training / decode+resize limit", "training / forward+backward limit"}
    assert all(value > 0 for value in ratios.values())


@pytest.mark.slow
def test_the_preprocess_scale_benchmark_runs_one_and_two_instances(tmp_path: Path) -> None:
    """``--only preprocess --quick``: 60 photos through the built Preprocess step on the local engine,
    on one instance and (sharded, with MergeStats) on two; seconds, CPU and peak memory per size."""
    output = tmp_path / "results.json"
    main(["--quick", "--only", "preprocess", "--output", str(output)])
    results = json.loads(output.read_text())
    rows = {row["case"]: row for row in results["rows"] if row["benchmark"] == "preprocess"}
    assert set(rows) == {"Preprocess, 60 images, 1 instance", "Preprocess, 60 images, 2 instances"}
    assert "MergeStats" in rows["Preprocess, 60 images, 2 instances"]["note"]
    assert "MergeStats" not in rows["Preprocess, 60 images, 1 instance"]["note"]
    ratios = {r["name"]: r["value"] for r in results["ratios"] if r["benchmark"] == "preprocess"}
    for instances in ("1 instance", "2 instances"):
        assert ratios[f"seconds per 1,000 images, 60 images, {instances}"] > 0
        assert ratios[f"CPU seconds per 1,000 images, 60 images, {instances}"] > 0
        assert 0 < ratios[f"peak PSS GiB (engine + jobs), 60 images, {instances}"] < 64
