"""``dogpipe monitor run|status`` on this machine: the monitoring job of a local endpoint, as a
monitoring schedule would run it, and what the runs found.

A run finds what the endpoint serves (its record's model package → the registered version's
``drift_baseline`` and model data in the local store) and where its traffic was captured, lays out a
job folder the way Model Monitor lays out a container (``/opt/ml/processing/...`` remapped by
:class:`pipeline.local.container.Container`: the endpoint's capture records, the baseline, the
constraints from ``monitor.checks``, the model) and runs ``training_code/monitor.py`` with the contract's
environment. Its reports stay in ``<root>/monitoring/<endpoint>/<run>/`` with ``run.json``, which
``monitor status`` lists. With ``monitor.on_drift: retrain`` a violation starts ``dogpipe run`` (detached,
its output in the run's folder) on ``monitor.retrain_data`` or the config's data.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.config.deploy_names import capture_prefix, endpoint_name_for
from pipeline.errors import DogpipeError
from pipeline.local.container import Container
from pipeline.local.endpoint_records import EndpointError, read_endpoint
from pipeline.object_store import ObjectStore, StoreError
from pipeline.registry import LocalRegistry, RegistryError
from training_code.contract import BASELINE_FILE, CONSTRAINTS_FILE, DRIFT_BASELINE_KEY, EMBEDDINGS_FILE

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = PACKAGE_ROOT / "training_code" / "monitor.py"
RUN_FILE = "run.json"
# Where Model Monitor puts a job's inputs and outputs (the EndpointInput's LocalPath and the output).
DATASET_SOURCE = "/opt/ml/processing/input/endpoint"
BASELINE_DIR = "/opt/ml/processing/baseline"
MODEL_DIR = "/opt/ml/processing/input/model"
OUTPUT_PATH = "/opt/ml/processing/resultdata"
JOB_TIMEOUT_S = 1800


class MonitorError(DogpipeError):
    """A monitoring run that cannot start or whose job failed; the message says which and why."""


@dataclass(frozen=True)
class MonitorOutcome:
    """One monitoring run: its record (``run.json``) and the human summary the job wrote."""

    record: dict[str, Any]
    summary: str
    folder: Path
    retrain: dict[str, Any] | None = field(default=None)


def monitoring_folder(root: Path) -> Path:
    return root / "monitoring"


def _served_version(cfg: PipelineConfig, root: Path, endpoint: str) -> tuple[dict[str, Any], Any]:
    try:
        record = read_endpoint(root, endpoint)
    except EndpointError as error:
        raise MonitorError(str(error)) from None
    arn = record.get("model_package_arn")
    if not arn or "model-package/" not in str(arn):
        served = record.get("model_data")
        raise MonitorError(
            f"endpoint {endpoint} serves {served}, not a registered version: no baseline to compare with"
        )
    group, _, version = str(arn).partition("model-package/")[2].partition("/")
    try:
        package = LocalRegistry(root).get(group, int(version))
    except (RegistryError, ValueError) as error:
        raise MonitorError(f"endpoint {endpoint}: {error}") from None
    return record, package


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def _served_files(cfg: PipelineConfig, root: Path, name: str) -> tuple[Any, Path, Path, Path]:
    """(package, its baseline.json, its model data, the capture folder) of what ``name`` serves."""
    endpoint_record, package = _served_version(cfg, root, name)
    store = ObjectStore(root)
    baseline_uri = package.metrics.get(DRIFT_BASELINE_KEY)
    if not baseline_uri:
        raise MonitorError(f"{package.group} version {package.version} has no drift baseline "
                           "(registered before Evaluate wrote one): retrain to get one")  # fmt: skip
    try:
        baseline = store.path_for(str(baseline_uri))
        model = store.path_for(str(package.model_data_url))
    except StoreError as error:
        raise MonitorError(f"{package.arn}: {error}") from None
    for needed in (baseline, model):
        if not needed.exists():
            raise MonitorError(f"{package.arn}: {needed} is missing from the local store")
    captured = Path(endpoint_record.get("capture_folder") or store.path_for(capture_prefix(cfg)))
    return package, baseline, model, captured


def _lay_out_job(cfg: PipelineConfig, container: Container, name: str, captured: Path, baseline: Path,
                 model: Path) -> None:  # fmt: skip
    """The job's inputs where Model Monitor puts them: capture records, baseline, constraints, model."""
    if (captured / name).is_dir():
        _link(captured / name, container.path(f"{DATASET_SOURCE}/{name}"))
    else:
        container.path(DATASET_SOURCE).mkdir(parents=True)
    baseline_dir = container.path(BASELINE_DIR)
    baseline_dir.mkdir(parents=True)
    shutil.copy2(baseline, baseline_dir / BASELINE_FILE)
    if (baseline.parent / EMBEDDINGS_FILE).is_file():
        shutil.copy2(baseline.parent / EMBEDDINGS_FILE, baseline_dir / EMBEDDINGS_FILE)
    (baseline_dir / CONSTRAINTS_FILE).write_text(json.dumps(cfg.monitor.constraints(), indent=2) + "\n")
    _link(model, container.path(f"{MODEL_DIR}/{model.name}"))


def _contract(name: str, start: datetime, end: datetime) -> dict[str, str]:
    """The environment Model Monitor gives a custom container (paths as inside the container)."""
    capture_format = {"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}
    return {
        "dataset_format": json.dumps(capture_format),
        "dataset_source": DATASET_SOURCE,
        "output_path": OUTPUT_PATH,
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "baseline_statistics": f"{BASELINE_DIR}/{BASELINE_FILE}",
        "baseline_constraints": f"{BASELINE_DIR}/{CONSTRAINTS_FILE}",
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": name,
        "sagemaker_monitoring_schedule_name": f"{name}-local",
    }


def _run_job(container: Container, folder: Path, environment: dict[str, str]) -> Path:
    """Run monitor.py in the job folder; its reports folder, or the failure with the log's last line."""
    result = subprocess.run(
        container.command(["python3", str(SCRIPT), "--model-dir", MODEL_DIR]),
        env=container.environment(environment),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    (folder / "job.log").write_text(result.stdout + result.stderr)
    output = container.path(OUTPUT_PATH)
    if result.returncode != 0 or not (output / "statistics.json").is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MonitorError(
            f"monitoring job failed (exit {result.returncode}): {tail[0]} (log: {folder / 'job.log'})"
        )
    return output


def run_monitor(
    cfg: PipelineConfig,
    *,
    endpoint: str | None,
    since: datetime | None,
    config_path: Path | None,
    echo: Callable[[str], None] = print,
    now: datetime | None = None,
) -> MonitorOutcome:
    """Judge the window ``[since or now - monitor.window_hours, now)`` of ``endpoint``'s traffic (default:
    the endpoint of ``monitor.stage``); start the retraining when it drifted and ``on_drift`` says so."""
    root = Path(cfg.local.root)
    name = endpoint or endpoint_name_for(cfg, cfg.monitor.stage)
    package, baseline, model, captured = _served_files(cfg, root, name)
    # Capture times have whole seconds: the window ends at the next whole second, so that this
    # second's records are in it.
    end = (now or datetime.now(timezone.utc)).replace(microsecond=0) + timedelta(seconds=1)
    start = since or end - timedelta(hours=cfg.monitor.window_hours)
    run_id = f"{end:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    folder = monitoring_folder(root) / name / run_id
    container = Container(folder / "job")
    _lay_out_job(cfg, container, name, captured, baseline, model)
    environment = _contract(name, start, end)
    echo(f"monitoring {name} ({package.group} v{package.version}) from {environment['start_time']} "
         f"to {environment['end_time']} ...")  # fmt: skip
    output = _run_job(container, folder, environment)
    statistics = json.loads((output / "statistics.json").read_text())
    violations = json.loads((output / "constraint_violations.json").read_text())["violations"]
    record = {
        "run": run_id,
        "endpoint": name,
        "model_package_arn": package.arn,
        "window": statistics["window"],
        "status": statistics["status"],
        "images": statistics["images"],
        "violations": len(violations),
        "violated": [item["feature_name"] for item in violations],
        "reports": str(output),
        "started_at": end.isoformat(timespec="seconds"),
    }
    if violations and cfg.monitor.on_drift == "retrain":
        record["retrain"] = start_retraining(cfg, config_path, folder)
    (folder / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return MonitorOutcome(record, (output / "summary.txt").read_text(), folder, record.get("retrain"))


def start_retraining(cfg: PipelineConfig, config_path: Path | None, folder: Path) -> dict[str, Any]:
    """``dogpipe run`` on the retraining data, detached (it outlives this command), output in
    ``folder/retrain.log``: the local stand-in for the alarm's EventBridge rule."""
    command = [sys.executable, "-m", "pipeline", "run"]
    if config_path is not None:
        command += ["--config", str(Path(config_path).resolve())]
    if cfg.monitor.retrain_data:
        command += ["--data", str(Path(cfg.monitor.retrain_data).expanduser().resolve())]
    log = folder / "retrain.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    with log.open("ab") as stream:
        process = subprocess.Popen(
            command,
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path.cwd(),
            env=env,
            start_new_session=True,
        )
    return {"pid": process.pid, "command": command, "log": str(log)}


def monitor_runs(root: Path, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Every recorded run (``run.json``), newest first; of one endpoint when given."""
    base = monitoring_folder(root)
    pattern = f"{endpoint}/*/{RUN_FILE}" if endpoint else f"*/*/{RUN_FILE}"
    runs = []
    for path in base.glob(pattern) if base.is_dir() else []:
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(runs, key=lambda run: run.get("run", ""), reverse=True)
