"""Smoke runs of the cheap benchmarks at tiny sizes, so ``make bench`` does not rot between releases.

They check that each benchmark measures and records its ratios, not the figures themselves (speed
targets live in bench/, read by people from BENCHMARKS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import main


def test_quick_benchmarks_record_rows_and_ratios(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    main(["--quick", "--only", "stats", "train", "--output", str(output)])
    results = json.loads(output.read_text())
    assert results["quick"] is True
    benchmarks = {row["benchmark"] for row in results["rows"]}
    assert benchmarks == {"stats", "train"}
    assert all(row["median"] > 0 for row in results["rows"])
    ratios = {ratio["name"]: ratio for ratio in results["ratios"]}
    assert ratios["dogpipe / seed-style"]["goal"] == ">= 4"
    assert all(ratio["value"] > 0 for ratio in ratios.values())
