"""``dogpipe monitor``'s arguments and refusals, before any job runs (the runs themselves:
tests/local/test_monitor_run.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.cli.monitor import parse_since
from pipeline.cli.options import BadValue
from pipeline.config import LOCAL_CONFIG

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_since_takes_a_duration_or_an_iso_time() -> None:
    assert parse_since(None) is None
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("1.5d", NOW) == NOW - timedelta(days=1.5)
    assert parse_since("2026-12-07T08:00:00Z", NOW) == datetime(2026, 12, 7, 8, tzinfo=timezone.utc)
    assert parse_since("2026-12-07T08:00:00", NOW) == datetime(2026, 12, 7, 8, tzinfo=timezone.utc)
    for bad in ("yesterday", "2x", "2027-01-01T00:00:00Z"):
        with pytest.raises(BadValue):
            parse_since(bad, NOW)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"] = {"root": str(tmp_path / "engine")}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_refusals_are_one_line_with_the_usual_exit_status(config: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["monitor", "run", "--since", "yesterday", "--config", str(config)])
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.output
    unknown = runner.invoke(cli, ["monitor", "run", "--endpoint", "nowhere", "--config", str(config)])
    assert unknown.exit_code == 1 and "no local endpoint 'nowhere'" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    named = runner.invoke(cli, ["monitor", "run", "--endpoint", "../x", "--config", str(config)])
    assert named.exit_code == 2


def test_status_without_runs(config: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["monitor", "status", "--config", str(config)])
    assert empty.exit_code == 0 and "no monitoring runs under" in empty.output
    as_json = runner.invoke(cli, ["monitor", "status", "--config", str(config), "-o", "json"])
    assert as_json.output.strip() == "[]"
