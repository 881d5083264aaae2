"""Timing and reporting shared by every benchmark: warm-up, repeats, median/min/max, ratios."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Timing:
    """Seconds per repeat of one measured callable."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def measure(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 3) -> Timing:
    """Run ``fn`` ``warmup`` times unmeasured, then ``repeats`` times measured with a monotonic clock."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(samples)


def measure_interleaved(
    cases: dict[str, Callable[[], Any]], *, warmup: int = 1, repeats: int = 3
) -> dict[str, Timing]:
    """Like :func:`measure` for several cases, taking turns (A B C A B C ...), so that a change in the
    machine's load during the run (other processes, thermal limits) hits every case alike and their
    ratios stay fair."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    return measure_in_blocks(cases, blocks=repeats, per_block=1, warmup=0, settle_s=0.0)


def measure_in_blocks(
    cases: dict[str, Callable[[], Any]],
    *,
    blocks: int,
    per_block: int,
    warmup: int = 3,
    settle_s: float = 0.05,
) -> dict[str, Timing]:
    """Like :func:`measure_interleaved`, but the cases take turns in blocks of ``per_block`` calls, the
    first ``warmup`` of each block unmeasured, after ``settle_s`` of rest.

    For cases that leave the machine busy after they return: torch's OpenMP helper threads spin for
    about 5 ms after a forward pass (measured on 2 cores), so a case that follows an in-process forward
    shares the CPU with the spinners of this very process; an HTTP request measured that way pays for
    its client's forward. The rest lets them sleep, and the unmeasured calls bring each case back to its
    own steady state (a call right after the rest pays the machine's wake-up, up to several times the
    case's own time)."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(blocks):
        for name, fn in cases.items():
            if settle_s:
                time.sleep(settle_s)
            for index in range(warmup + per_block):
                start = time.perf_counter()
                fn()
                if index >= warmup:
                    samples[name].append(time.perf_counter() - start)
    return {name: Timing(values) for name, values in samples.items()}


@dataclass
class Row:
    """One line of the results table: a measured rate or latency with its spread."""

    benchmark: str
    case: str
    unit: str
    median: float
    min: float
    max: float
    note: str = ""


@dataclass
class Ratio:
    """A ratio measured in one run, with the goal it is held against (None when only reported)."""

    benchmark: str
    name: str
    value: float
    goal: str | None = None
    met: bool | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)

    def rate(self, benchmark: str, case: str, timing: Timing, items: int, unit: str, note: str = "") -> float:
        """Record ``items`` per second (median, and min/max from the slowest/fastest repeat)."""
        self.rows.append(
            Row(benchmark, case, unit, items / timing.median, items / timing.max, items / timing.min, note)
        )
        return items / timing.median

    def latency(self, benchmark: str, case: str, samples_ms: list[float], note: str = "") -> None:
        self.rows.append(
            Row(benchmark, case, "ms", statistics.median(samples_ms), min(samples_ms), max(samples_ms), note)
        )

    def ratio(self, benchmark: str, name: str, value: float, goal: str | None = None) -> None:
        """Record a ratio; ``goal`` like ">= 4" or "<= 1.05" is checked and shown as met or not."""
        met = None
        if goal is not None:
            op, bound = goal.split()
            met = value >= float(bound) if op == ">=" else value <= float(bound)
        self.ratios.append(Ratio(benchmark, name, value, goal, met))

    def table(self) -> str:
        lines = [f"{'benchmark':<12} {'case':<44} {'median':>10} {'min':>10} {'max':>10}  unit"]
        lines += [
            f"{r.benchmark:<12} {r.case:<44} {r.median:>10.2f} {r.min:>10.2f} {r.max:>10.2f}  {r.unit}"
            + (f"  ({r.note})" if r.note else "")
            for r in self.rows
        ]
        lines.append("")
        lines.append(f"{'benchmark':<12} {'ratio':<52} {'value':>8}  goal")
        for r in self.ratios:
            verdict = "" if r.goal is None else f"{r.goal}  {'met' if r.met else 'NOT met'}"
            lines.append(f"{r.benchmark:<12} {r.name:<52} {r.value:>8.3f}  {verdict}")
        return "\n".join(lines)

    def write(self, path: Path = RESULTS, extra: dict[str, Any] | None = None) -> None:
        """Write the results; the figures of benchmarks this run did not measure (``--only``) are kept
        from the file, so it always holds the latest figures of every benchmark."""
        measured = {r.benchmark for r in self.rows} | {r.benchmark for r in self.ratios}
        previous: dict[str, Any] = {}
        if path.exists():
            try:
                previous = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                previous = {}
        kept_rows = [r for r in previous.get("rows", []) if r.get("benchmark") not in measured]
        kept_ratios = [r for r in previous.get("ratios", []) if r.get("benchmark") not in measured]
        payload = {
            "machine": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "processor": platform.processor(),
                "cpu_count": os.cpu_count(),
            },
            "rows": kept_rows + [asdict(r) for r in self.rows],
            "ratios": kept_ratios + [asdict(r) for r in self.ratios],
            **(extra or {}),
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")
