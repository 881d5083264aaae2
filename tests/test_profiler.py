"""TrainingProfiler: the files train.py leaves for the profiler summary, and the no-op when disabled."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from training_code.profiler import TrainingProfiler, read_jsonl


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
