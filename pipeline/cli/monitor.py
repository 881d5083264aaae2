"""``dogpipe monitor run|status``: watch what the served model is asked, against its version's baseline.

``run`` judges a window of an endpoint's captured traffic (``deploy.data_capture``) with the monitoring
job (``training_code/monitor.py``, what a SageMaker monitoring schedule runs) and prints its summary;
``status`` lists the runs. Both act on the local engine; on SageMaker the schedule ``dogpipe upsert``
creates does the same work (``pipeline.engines`` says so when asked here).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from pipeline.cli.complete import complete_endpoint
from pipeline.cli.options import DEFAULT_CONFIG_PATH, BadValue, checked, config_option, examples, open_engine
from pipeline.cli.output import Output, output_option
from pipeline.names import ENDPOINT

if TYPE_CHECKING:
    from pipeline.engines import LocalVerbs

_AGO = re.compile(r"^(?P<count>\d+(\.\d+)?)(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: a duration back from now (``90m``, ``2h``, ``1d``) or an ISO 8601 time (UTC if no
    zone); a usage error naming the value otherwise."""
    if value is None:
        return None
    now = now or datetime.now(timezone.utc)
    match = _AGO.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match["unit"]]: float(match["count"])})
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"--since {value!r}: give a duration (90m, 2h, 1d) or an ISO time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if moment >= now:
        raise BadValue(f"--since {value!r} is not in the past")
    return moment


@click.group("monitor", epilog=examples("dogpipe monitor run", "dogpipe monitor status"))
def monitor() -> None:
    """Watch the served model: judge captured traffic against the version's drift baseline."""


@monitor.command(
    "run",
    epilog=examples(
        "dogpipe monitor run",
        "dogpipe monitor run --endpoint dogpipe-prod --since 2h",
        "dogpipe monitor run --since 2026-12-07T08:00:00Z -o json",
    ),
)
@click.option("--endpoint", shell_complete=complete_endpoint, callback=checked(ENDPOINT),
              help="Endpoint to watch (default: the endpoint of monitor.stage).")  # fmt: skip
@click.option("--since", help="Window start: a duration back (90m, 2h, 1d) or an ISO time "
              "(default: monitor.window_hours).")  # fmt: skip
@config_option
@output_option
def monitor_run(endpoint: str | None, since: str | None, config_path: Path | None, output: Output) -> None:
    """Compare the endpoint's captured requests in the window with its version's baseline (class
    distribution, confidence, input statistics, embeddings); a violation starts `dogpipe run` when
    monitor.on_drift is retrain. Reports go to <local.root>/monitoring/<endpoint>/<run>/."""
    engine = cast("LocalVerbs", open_engine(config_path, verb="monitor run"))
    start = parse_since(since)
    report = engine.monitor_run(
        endpoint, start, config_path or DEFAULT_CONFIG_PATH, lambda line: click.echo(line, err=True)
    )

    def table() -> str:
        lines = [report.summary.rstrip("\n"), f"reports: {report.record['reports']}"]
        retrain = report.record.get("retrain")
        if retrain:
            lines.append(
                f"drift: retraining started (dogpipe run, pid {retrain['pid']}, log {retrain['log']})"
            )
        return "\n".join(lines)

    click.echo(output.document(report.record, table))


@monitor.command("status", epilog=examples("dogpipe monitor status", "dogpipe monitor status -o json"))
@click.option(
    "--endpoint", shell_complete=complete_endpoint, callback=checked(ENDPOINT), help="Only this endpoint."
)
@config_option
@output_option
def monitor_status(endpoint: str | None, config_path: Path | None, output: Output) -> None:
    """The monitoring runs, newest first: window, images judged, violations and what they were."""
    engine = cast("LocalVerbs", open_engine(config_path, verb="monitor status"))
    listing = engine.monitor_status(endpoint)
    click.echo(output.rows(listing.rows, listing.columns, listing.empty))
