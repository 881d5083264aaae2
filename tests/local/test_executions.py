"""Execution records read explicitly and once: typed, with one liveness check per read (issue 19)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import LOCAL_CONFIG, parse_config
from pipeline.engines import engine_for
from pipeline.local import executions
from pipeline.local.executions import ExecutionStore


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_record_whose_engine_is_gone_or_unidentifiable_reads_failed_with_its_running_step(
    tmp_path: Path,
) -> None:
    store = ExecutionStore(tmp_path)
    running = store.create("dogpipe", {"Steps": []}, {"InputDataUrl": "s3://b/d"})
    assert running.load().status == "Executing" and not running.load().engine_gone
    running.write_step_state("Train", {"status": "Executing", "attempts": [{"status": "Executing"}]})
    for stored in ({"pid": _dead_pid()}, {"pid_started": None}):  # gone; or no start time to tell
        running.update(**stored)
        record = running.load()
        assert record.status == "Failed" and record.engine_gone
        assert "ended without finishing" in (record.failure_reason or "")
        assert record.parameters == {"InputDataUrl": "s3://b/d"} and record.pipeline_name == "dogpipe"
        (train,) = running.step_states(record).values()
        assert train["status"] == "Failed" and train["attempts"][0]["status"] == "Failed"
        assert running.read_stored()["status"] == "Executing"  # as written


def test_listings_and_status_read_each_record_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row, or a look of `status --watch`, reads execution.json once (it used to read it per field
    and again for the step states) and the definition once per look."""
    store = ExecutionStore(tmp_path / "engine")
    for _ in range(3):
        store.create("dogpipe-local", {"Steps": []}, {}).update(status="Succeeded")
    store.latest().write_step_state("Train", {"name": "Train", "status": "Succeeded", "type": "Training"})
    reads: list[str] = []
    original = executions.read_json

    def counting(path: Path) -> object:
        reads.append(path.name)
        return original(path)

    monkeypatch.setattr(executions, "read_json", counting)
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"] = {"root": str(tmp_path / "engine")}
    engine = engine_for(parse_config(raw))
    listing = engine.executions()
    assert [row["status"] for row in listing.rows] == ["Succeeded"] * 3
    assert reads == ["execution.json"] * 3
    reads.clear()
    probe = engine.execution_status(None)
    reads.clear()  # resolving "latest" reads the records to pick it
    looked = probe.look()
    assert looked["status"] == "Succeeded" and [row["step"] for row in looked["steps"]] == ["Train"]
    assert sorted(reads) == ["definition.json", "execution.json", "state.json"]
