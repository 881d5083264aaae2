"""TrainingProfiler: the files train.py leaves for the profiler summary, and the no-op when disabled."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import pytest

from training_code.profiler import TrainingProfiler, read_jsonl
from training_code.profiler_rules import DEFAULTS, OWN_PARAMETERS, summarize


def _run_steps(prof: TrainingProfiler, steps: int, mode: str = "train", data_s: float = 0.0) -> None:
    for _ in range(steps):
        with prof.phase("data"):
            time.sleep(data_s)
        with prof.phase("forward_backward"):
            sum(range(200))
        with prof.phase("optimizer"):
            pass
        prof.end_step(mode=mode)


def test_writes_steps_system_and_meta(tmp_path: Path) -> None:
    with TrainingProfiler(tmp_path, interval_ms=100, meta={"batch_size": 8, "num_workers": 0}) as prof:
        _run_steps(prof, 3, data_s=0.02)
        _run_steps(prof, 2, mode="eval")
        prof.update_meta(init_seconds=1.5)
        time.sleep(0.25)

    steps = read_jsonl(tmp_path / "steps.jsonl")
    assert [s["step"] for s in steps] == [0, 1, 2, 3, 4]
    assert [s["mode"] for s in steps] == ["train"] * 3 + ["eval"] * 2
    assert [s["mode_step"] for s in steps] == [0, 1, 2, 0, 1]
    for record in steps[:3]:
        assert set(record["phases"]) == {"data", "forward_backward", "optimizer"}
        assert record["phases"]["data"] >= 0.015
        assert record["wall"] >= sum(record["phases"].values()) - 1e-6
    assert steps[1]["start"] > steps[0]["start"]

    system = read_jsonl(tmp_path / "system.jsonl")
    assert len(system) >= 2
    assert all(len(s["cpu_percent"]) >= 1 and s["rss_bytes"] > 0 for s in system)
    assert 0 <= system[-1]["memory_percent"] <= 100

    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "completed"
    assert meta["batch_size"] == 8 and meta["init_seconds"] == 1.5
    assert meta["steps"] == 5 and meta["steps_by_mode"] == {"train": 3, "eval": 2}
    assert meta["cpu_count"] >= 1


def test_failed_run_is_recorded_as_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), TrainingProfiler(tmp_path, interval_ms=100) as prof:
        _run_steps(prof, 1)
        raise RuntimeError("boom")
    assert json.loads((tmp_path / "meta.json").read_text())["status"] == "failed"
    assert len(read_jsonl(tmp_path / "steps.jsonl")) == 1


def test_disabled_profiler_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "profiler"
    with TrainingProfiler(out, enabled=False) as prof:
        _run_steps(prof, 3)
    assert not out.exists()


def test_read_jsonl_drops_truncated_last_line_but_rejects_corruption(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"ste')
    assert read_jsonl(path) == [{"step": 0}, {"step": 1}]
    path.write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"steps.jsonl:2"):
        read_jsonl(path)


# -- the profiler summary --------------------------------------------------------------------------------
def _write_profile(
    folder: Path,
    *,
    num_workers: int,
    data_s: float,
    walls: list[float],
    cpu: float,
    init_seconds: float = 2.0,
    gpu: bool = False,
) -> Path:
    """A profiler folder as TrainingProfiler leaves it, with chosen figures."""
    folder.mkdir(parents=True)
    steps = [
        {
            "step": i,
            "mode": "train",
            "mode_step": i,
            "start": 1.0 + i,
            "wall": wall,
            "phases": {"data": data_s, "forward_backward": wall - data_s - 0.01, "optimizer": 0.01},
        }
        for i, wall in enumerate(walls)
    ]
    (folder / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    samples = [
        {
            "t": i * 0.5,
            "cpu_percent": [cpu, cpu],
            "process_cpu_percent": cpu,
            "rss_bytes": 2**28,
            "memory_percent": 40.0,
        }
        for i in range(20)
    ]
    if gpu:
        for sample in samples:
            sample["gpus"] = [
                {"index": 0, "utilization_percent": 20, "memory_used_bytes": 1, "memory_total_bytes": 10}
            ]
    (folder / "system.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    meta = {
        "num_workers": num_workers,
        "cpu_count": 2,
        "batch_size": 32,
        "init_seconds": init_seconds,
        "gpu_count": int(gpu),
        "device": "cpu",
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _statuses(summary: dict) -> dict[str, str]:
    return {rule["rule"]: rule["status"] for rule in summary["rules"]}


def test_profiler_summary_flags_a_starved_cpu_run(tmp_path: Path) -> None:
    walls = [0.2] * 188 + [5.0] * 12  # twelve stalls, more than n_outliers=10
    folder = _write_profile(
        tmp_path / "p", num_workers=1, data_s=0.12, walls=walls, cpu=30.0, init_seconds=1500.0
    )
    summary = summarize(folder)
    statuses = _statuses(summary)
    assert statuses["Dataloader"] == "IssuesFound"
    dataloader = next(r for r in summary["rules"] if r["rule"] == "Dataloader")
    assert "increase data loader workers" in dataloader["recommendation"]
    assert dataloader["evidence"]["num_workers"] == 1 and dataloader["evidence"]["cpu_count"] == 2
    assert statuses["BatchSize"] == "IssuesFound"  # CPU p95 30% < 70%
    assert statuses["StepOutlier"] == "IssuesFound"
    assert statuses["MaxInitializationTime"] == "IssuesFound"  # 1500 s + 1 s > 20 min
    assert statuses["LowGPUUtilization"] == "NotRun"
    assert summary["overview"]["steps"] == {"train": 200, "eval": 0}


def test_profiler_summary_quiet_on_a_busy_well_fed_run(tmp_path: Path) -> None:
    folder = _write_profile(tmp_path / "p", num_workers=2, data_s=0.01, walls=[0.2] * 30, cpu=80.0)
    statuses = _statuses(summarize(folder))
    assert statuses == {
        "Dataloader": "NoIssuesFound",
        "CPUBottleneck": "NoIssuesFound",
        "LowGPUUtilization": "NotRun",
        "BatchSize": "NoIssuesFound",
        "StepOutlier": "NoIssuesFound",
        "MaxInitializationTime": "NoIssuesFound",
    }


def test_low_gpu_utilization_runs_only_with_a_gpu(tmp_path: Path) -> None:
    folder = _write_profile(tmp_path / "p", num_workers=2, data_s=0.01, walls=[0.2] * 30, cpu=80.0, gpu=True)
    gpu = next(r for r in summarize(folder)["rules"] if r["rule"] == "LowGPUUtilization")
    assert gpu["status"] == "IssuesFound" and gpu["evidence"]["gpu_p95"] == 20


def test_profiler_overrides_change_verdicts_and_typos_fail(tmp_path: Path) -> None:
    folder = _write_profile(tmp_path / "p", num_workers=1, data_s=0.01, walls=[0.2] * 30, cpu=80.0)
    assert _statuses(summarize(folder))["Dataloader"] == "IssuesFound"
    relaxed = summarize(folder, {"Dataloader": {"min_threshold": 50}})
    assert _statuses(relaxed)["Dataloader"] == "NoIssuesFound"
    with pytest.raises(ValueError, match="min_treshold"):
        summarize(folder, {"Dataloader": {"min_treshold": 50}})


def test_profiler_rule_defaults_are_aws_defaults() -> None:
    rulesconfig = pytest.importorskip("smdebug_rulesconfig.profiler_rules.rules")
    for rule, parameters in DEFAULTS.items():
        signature = inspect.signature(getattr(rulesconfig, rule).__init__)
        for name, value in parameters.items():
            if (rule, name) in OWN_PARAMETERS:
                continue
            assert signature.parameters[name].default == value, (rule, name)
