"""The profiler summary: SageMaker ProfilerReport's rules, evaluated on what ``profiler.py`` recorded.

Each rule returns its verdict *with the figures behind it*, so a reader can disagree with a threshold.
Parameters and defaults are AWS's (``smdebug_rulesconfig.profiler_rules.rules``; a test keeps them in
step) where a rule has one; dogpipe's own additions are marked. Adaptations to what a CPU run records:

* Dataloader — AWS compares the data loader processes with the cores (``min_threshold`` 70 %,
  ``max_threshold`` 200 %). We compare ``num_workers`` with the CPU count the same way, and also report
  the share of each training step spent waiting for data (``data_wait_threshold``, ours).
* CPUBottleneck, BatchSize — with no GPU the GPU side of AWS's condition cannot be measured, so only the
  CPU side decides, and the evidence says so. LowGPUUtilization runs only when a GPU was present.
* StepOutlier — step wall times beyond mean + ``stddev`` x std, per mode; fires past ``n_outliers``.
* MaxInitializationTime — train.py's ``init_seconds`` plus the wait until the first step started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

try:  # inside the container the scripts sit side by side, without a package
    from .profiler import META_FILE, STEPS_FILE, SYSTEM_FILE, read_jsonl
except ImportError:  # pragma: no cover - exercised in the container layout
    from profiler import META_FILE, STEPS_FILE, SYSTEM_FILE, read_jsonl  # type: ignore[no-redef]

ISSUES_FOUND, NO_ISSUES_FOUND, NOT_RUN = "IssuesFound", "NoIssuesFound", "NotRun"

DEFAULTS: dict[str, dict[str, Any]] = {
    "Dataloader": {"min_threshold": 70, "max_threshold": 200, "data_wait_threshold": 30},
    "CPUBottleneck": {"threshold": 50, "gpu_threshold": 10, "cpu_threshold": 90},
    "LowGPUUtilization": {"threshold_p95": 70, "threshold_p5": 10},
    "BatchSize": {"cpu_threshold_p95": 70, "gpu_threshold_p95": 70, "gpu_memory_threshold_p95": 70},
    "StepOutlier": {"stddev": 3, "mode": None, "n_outliers": 10},
    "MaxInitializationTime": {"threshold": 20},
}
# Parameters that are dogpipe's, not AWS's (the consistency test skips them).
OWN_PARAMETERS = {("Dataloader", "data_wait_threshold")}


class ProfilerData:
    """The three files of one run's ``profiler/`` folder, loaded once."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no profiler meta.json (was the profiler off?)")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{meta_path}: not JSON ({error.msg})") from None
        self.steps = read_jsonl(folder / STEPS_FILE) if (folder / STEPS_FILE).is_file() else []
        self.system = read_jsonl(folder / SYSTEM_FILE) if (folder / SYSTEM_FILE).is_file() else []

    def train_steps(self) -> list[dict[str, Any]]:
        return [step for step in self.steps if step.get("mode") == "train"]

    def cpu_total(self) -> np.ndarray:
        """Mean CPU % over cores per sample: 100 means every core busy."""
        return np.array([float(np.mean(s["cpu_percent"])) for s in self.system if s.get("cpu_percent")])

    def gpu_series(self, key: str) -> np.ndarray:
        values = []
        for sample in self.system:
            for gpu in sample.get("gpus", []):
                value = gpu.get(key)
                if key == "memory_percent" and gpu.get("memory_total_bytes"):
                    value = 100.0 * gpu["memory_used_bytes"] / gpu["memory_total_bytes"]
                if value is not None:
                    values.append(float(value))
        return np.array(values)

    @property
    def has_gpu(self) -> bool:
        return int(self.meta.get("gpu_count") or 0) > 0


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if len(values) else None


def _result(
    rule: str, status: str, params: dict[str, Any], evidence: dict[str, Any], advice: str = ""
) -> dict:
    return {
        "rule": rule,
        "status": status,
        "parameters": params,
        "evidence": evidence,
        "recommendation": advice,
    }


def dataloader(data: ProfilerData, p: dict[str, Any]) -> dict[str, Any]:
    cores = int(data.meta.get("cpu_count") or 1)
    workers = data.meta.get("num_workers")
    train = data.train_steps()
    wall = sum(s["wall"] for s in train)
    wait = sum(s["phases"].get("data", 0.0) for s in train)
    share = 100.0 * wait / wall if wall > 0 else None
    evidence = {
        "num_workers": workers,
        "cpu_count": cores,
        "data_wait_percent": _round(share),
        "train_steps": len(train),
    }
    if workers is None:
        return _result("Dataloader", NOT_RUN, p, {**evidence, "reason": "num_workers not in meta.json"})
    low, high = p["min_threshold"] / 100 * cores, p["max_threshold"] / 100 * cores
    advice = []
    if workers < low:
        advice.append(f"increase data loader workers: {workers} for {cores} cores (< {p['min_threshold']}%)")
    if workers > high:
        advice.append(f"decrease data loader workers: {workers} for {cores} cores (> {p['max_threshold']}%)")
    if share is not None and share > p["data_wait_threshold"]:
        advice.append(
            f"training waits for data {share:.0f}% of each step; increase workers or pre-resize images"
        )
    return _result("Dataloader", ISSUES_FOUND if advice else NO_ISSUES_FOUND, p, evidence, "; ".join(advice))


def cpu_bottleneck(data: ProfilerData, p: dict[str, Any]) -> dict[str, Any]:
    cpu = data.cpu_total()
    if not len(cpu):
        return _result("CPUBottleneck", NOT_RUN, p, {"reason": "no system samples"})
    busy = cpu > p["cpu_threshold"]
    if data.has_gpu:
        gpu = data.gpu_series("utilization_percent")
        if len(gpu) >= len(cpu):
            busy = busy & (gpu[: len(cpu)] < p["gpu_threshold"])
    share = 100.0 * float(busy.mean())
    evidence = {
        "samples": len(cpu),
        "bottleneck_percent": round(share, 1),
        "cpu_p50": _pct(cpu, 50),
        "cpu_p95": _pct(cpu, 95),
        "gpu_present": data.has_gpu,
    }
    if not data.has_gpu:
        evidence["note"] = "no GPU: only CPU utilisation decides (the GPU side cannot be measured)"
    fired = share > p["threshold"]
    advice = (
        "the CPU is saturated; use more cores, fewer transforms per image or smaller images" if fired else ""
    )
    return _result("CPUBottleneck", ISSUES_FOUND if fired else NO_ISSUES_FOUND, p, evidence, advice)


def low_gpu_utilization(data: ProfilerData, p: dict[str, Any]) -> dict[str, Any]:
    if not data.has_gpu:
        return _result("LowGPUUtilization", NOT_RUN, p, {"reason": "no GPU was present"})
    gpu = data.gpu_series("utilization_percent")
    if not len(gpu):
        return _result("LowGPUUtilization", NOT_RUN, p, {"reason": "GPU utilisation unreadable (no pynvml)"})
    p95, p5 = _pct(gpu, 95), _pct(gpu, 5)
    evidence = {"gpu_p95": p95, "gpu_p5": p5, "samples": len(gpu)}
    if p95 < p["threshold_p95"]:
        return _result(
            "LowGPUUtilization", ISSUES_FOUND, p, evidence, "GPU underused: larger batch or smaller instance"
        )
    if p5 < p["threshold_p5"]:
        return _result(
            "LowGPUUtilization", ISSUES_FOUND, p, evidence, "GPU utilisation fluctuates: check data loading"
        )
    return _result("LowGPUUtilization", NO_ISSUES_FOUND, p, evidence)


def batch_size(data: ProfilerData, p: dict[str, Any]) -> dict[str, Any]:
    cpu = data.cpu_total()
    if not len(cpu):
        return _result("BatchSize", NOT_RUN, p, {"reason": "no system samples"})
    evidence: dict[str, Any] = {"batch_size": data.meta.get("batch_size"), "cpu_p95": _pct(cpu, 95)}
    low = evidence["cpu_p95"] < p["cpu_threshold_p95"]
    if data.has_gpu:
        evidence["gpu_p95"] = _pct(data.gpu_series("utilization_percent"), 95)
        evidence["gpu_memory_p95"] = _pct(data.gpu_series("memory_percent"), 95)
        low = low and all(
            evidence[key] is not None and evidence[key] < p[param]
            for key, param in (
                ("gpu_p95", "gpu_threshold_p95"),
                ("gpu_memory_p95", "gpu_memory_threshold_p95"),
            )
        )
    else:
        evidence["note"] = "no GPU: only CPU utilisation decides"
    advice = "the machine is underused: a larger batch size (or a smaller instance) would fit" if low else ""
    return _result("BatchSize", ISSUES_FOUND if low else NO_ISSUES_FOUND, p, evidence, advice)


def step_outlier(data: ProfilerData, p: dict[str, Any]) -> dict[str, Any]:
    modes = [p["mode"].lower()] if p["mode"] else ["train", "eval"]
    evidence: dict[str, Any] = {}
    total = 0
    for mode in modes:
        walls = np.array([s["wall"] for s in data.steps if s.get("mode") == mode])
        if len(walls) < 2:
            continue
        mean, std = float(walls.mean()), float(walls.std())
        limit = mean + p["stddev"] * std
        outliers = [s for s in data.steps if s.get("mode") == mode and std > 0 and s["wall"] > limit]
        total += len(outliers)
        evidence[mode] = {
            "steps": len(walls),
            "mean_s": round(mean, 4),
            "std_s": round(std, 4),
            "limit_s": round(limit, 4),
            "outliers": len(outliers),
            "worst": [
                {"step": s["step"], "wall_s": s["wall"]}
                for s in sorted(outliers, key=lambda s: -s["wall"])[:5]
            ],
        }
    if not evidence:
        return _result("StepOutlier", NOT_RUN, p, {"reason": "fewer than two recorded steps"})
    fired = total > p["n_outliers"]
    advice = "many steps take far longer than usual: look for I/O stalls or other processes" if fired else ""
    return _result("StepOutlier", ISSUES_FOUND if fired else NO_ISSUES_FOUND, p, evidence, advice)


def max_initialization_time(data: ProfilerData, p: dict[str, Any]) -> dict[str, Any]:
    init = data.meta.get("init_seconds")
    first = data.steps[0]["start"] if data.steps else None
    if init is None and first is None:
        return _result("MaxInitializationTime", NOT_RUN, p, {"reason": "no init_seconds and no steps"})
    seconds = float(init or 0.0) + float(first or 0.0)
    evidence = {
        "init_seconds": init,
        "first_step_start_seconds": first,
        "total_seconds": round(seconds, 3),
        "threshold_seconds": p["threshold"] * 60,
    }
    fired = seconds > p["threshold"] * 60
    advice = (
        "initialisation is slow: stage data closer (FastFile/Pipe) or cache the model weights"
        if fired
        else ""
    )
    return _result("MaxInitializationTime", ISSUES_FOUND if fired else NO_ISSUES_FOUND, p, evidence, advice)


RULES = {
    "Dataloader": dataloader,
    "CPUBottleneck": cpu_bottleneck,
    "LowGPUUtilization": low_gpu_utilization,
    "BatchSize": batch_size,
    "StepOutlier": step_outlier,
    "MaxInitializationTime": max_initialization_time,
}


def overview(data: ProfilerData) -> dict[str, Any]:
    """The figures every report shows: steps, time per phase, CPU and memory."""
    train = data.train_steps()
    phases: dict[str, float] = {}
    for step in train:
        for name, seconds in step["phases"].items():
            phases[name] = phases.get(name, 0.0) + seconds
    wall = sum(s["wall"] for s in train)
    other = max(wall - sum(phases.values()), 0.0)
    cpu = data.cpu_total()
    rss = [s["rss_bytes"] for s in data.system if "rss_bytes" in s]
    return {
        "steps": {mode: sum(1 for s in data.steps if s.get("mode") == mode) for mode in ("train", "eval")},
        "train_seconds": round(wall, 3),
        "mean_train_step_seconds": round(wall / len(train), 4) if train else None,
        "phase_seconds": {**{k: round(v, 3) for k, v in phases.items()}, "other": round(other, 3)},
        "cpu_p50": _pct(cpu, 50),
        "cpu_p95": _pct(cpu, 95),
        "max_rss_mb": round(max(rss) / 2**20, 1) if rss else None,
        "meta": {
            k: data.meta.get(k)
            for k in (
                "device",
                "num_workers",
                "batch_size",
                "cpu_count",
                "gpu_count",
                "init_seconds",
                "architecture",
            )
        },
    }


def summarize(folder: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Evaluate every profiler rule on ``folder``; ``overrides`` maps rule → parameter values."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(RULES))
    if unknown:
        raise ValueError(f"unknown profiler rule(s) {unknown}; known: {sorted(RULES)}")
    data = ProfilerData(folder)
    results = []
    for name, rule in RULES.items():
        bad = sorted(set(overrides.get(name, {})) - set(DEFAULTS[name]))
        if bad:
            raise ValueError(
                f"profiler rule {name}: unknown parameter(s) {bad}; known: {sorted(DEFAULTS[name])}"
            )
        results.append(rule(data, {**DEFAULTS[name], **overrides.get(name, {})}))
    return {
        "rules": results,
        "issues": sum(1 for r in results if r["status"] == ISSUES_FOUND),
        "overview": overview(data),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
