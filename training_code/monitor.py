"""Monitoring job: judge a window of an endpoint's captured traffic against its version's drift baseline.

    python3 monitor.py [--model-dir DIR] [--batch-size 32]

Written to Model Monitor's bring-your-own-container contract, so a monitoring schedule runs it as it is
(our framework image, ``ContainerEntrypoint: python3 <code>/monitor.py``) and ``dogpipe monitor run``
runs the same file here with the same environment:

- ``dataset_source``: the captured records, ``<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`` (SageMaker's
  data-capture JSON Lines); only records whose ``inferenceTime`` lies in [``start_time``, ``end_time``)
  are read (Model Monitor may hand over more hours than the window).
- ``baseline_statistics``: the version's ``baseline.json`` (``baseline_embeddings.npy`` beside it) and
  ``baseline_constraints``: ``constraints.json``, the thresholds of the YAML's ``monitor.checks``.
  Without a baseline the job asks SageMaker which model package ``sagemaker_endpoint_name`` serves and
  downloads that version's baseline and model (``drift_baseline`` in its metadata; boto3, as in every
  framework image).
- ``output_path``: where the reports go: ``constraint_violations.json`` (Model Monitor's form:
  ``{"violations": [{"feature_name", "constraint_check_type", "description"}]}``), ``statistics.json``
  (every check's test, statistic and p-value, the window's counts, the images that drifted most) and
  ``summary.txt`` for people.
- ``publish_cloudwatch_metrics: Enabled``: the metrics file under ``/opt/ml/output/metrics/cloudwatch``
  (``drift_violations``, each check's p-value; dimensions ``Endpoint`` and ``MonitoringSchedule``), which
  the alarm ``dogpipe upsert`` creates watches. ``metric_time`` (else ``end_time``) is its timestamp.

The captured images are decoded and run through the served model (``--model-dir``: its
``model.tar.gz`` or unpacked folder) to get the class, confidence and embedding the baseline has for the
test split (``drift.py``). A window with fewer than ``min_records`` images is not judged: no violation,
and ``statistics.json`` (``needed``) and the summary say how many more images it needs. Exit status 0
when judged or skipped, 2 when an input is unusable.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

if __package__:  # imported as training_code.monitor (tests)
    from . import contract, drift, drift_checks, payloads
    from .evaluate import unpack_model
else:  # run as a script inside the processing container
    import contract  # type: ignore[no-redef]
    import drift  # type: ignore[no-redef]
    import drift_checks  # type: ignore[no-redef]
    import payloads  # type: ignore[no-redef]
    from evaluate import unpack_model  # type: ignore[no-redef]

VIOLATIONS_FILE = "constraint_violations.json"
STATISTICS_FILE = "statistics.json"
SUMMARY_FILE = "summary.txt"
METRICS_DIR = f"{contract.OPT_ML}/output/metrics/cloudwatch"
METRICS_FILE = "dogpipe-drift.jsonl"
#: Model Monitor's namespace of a custom container's metrics on a real-time endpoint (BYOC CloudWatch
#: page); the alarm `dogpipe upsert` creates reads it.
METRICS_NAMESPACE = "/aws/sagemaker/Endpoint/data-metrics"
VIOLATIONS_METRIC = "drift_violations"
CHECK_TYPE = "baseline_drift_check"  # Model Monitor's name for a distribution check

log = logging.getLogger("monitor")


class MonitorInputError(ValueError):
    """A required input (baseline, model, window) is missing or unusable; the message names it."""


def parse_time(value: str, name: str) -> datetime:
    """ISO 8601 as the schedule sets it (``2019-12-01T15:20:00Z``)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "").replace("Z", "+00:00"))
    except ValueError:
        raise MonitorInputError(f"{name}={value!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _decoded(entry: dict[str, Any]) -> bytes:
    data = entry.get("data") or ""
    if entry.get("encoding") == "BASE64":
        return base64.b64decode(data)
    return data.encode()


def read_window(folder: Path, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], int]:
    """The capture records under ``folder`` with ``start <= inferenceTime < end``, oldest first, and the
    count of lines that are not records (a last line still being written, a foreign file)."""
    records: list[tuple[datetime, dict[str, Any]]] = []
    malformed = 0
    files = [
        Path(where) / name
        for where, _, names in os.walk(folder, followlinks=True)  # rglob does not follow links
        for name in names
        if name.endswith(".jsonl")
    ]
    for path in sorted(files):
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                moment = parse_time(record["eventMetadata"]["inferenceTime"], "inferenceTime")
            except (ValueError, KeyError, TypeError, MonitorInputError):
                malformed += 1
                continue
            if start <= moment < end:
                records.append((moment, record))
    records.sort(key=lambda item: item[0])
    return [record for _, record in records], malformed


def request_images(records: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    """Each captured request's images as ``(eventId[#n], encoded image)`` (a JSON request may hold
    several); a request the endpoint would refuse is skipped, as it was answered with an error."""
    for record in records:
        entry = (record.get("captureData") or {}).get("endpointInput")
        if not entry:
            continue
        event = str((record.get("eventMetadata") or {}).get("eventId", "?"))
        try:
            images = payloads.parse_request(
                _decoded(entry), entry.get("observedContentType"), max_batch=1024
            ).images
        except (payloads.RequestError, ValueError):
            continue
        for index, image in enumerate(images):
            yield (event if len(images) == 1 else f"{event}#{index}"), image


def load_baseline(path: Path) -> tuple[dict[str, Any], np.ndarray | None]:
    try:
        baseline = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MonitorInputError(f"baseline_statistics {path}: cannot read it ({error})") from None
    if baseline.get("version") != drift.BASELINE_VERSION:
        raise MonitorInputError(f"baseline_statistics {path}: not a dogpipe drift baseline")
    embeddings_path = path.parent / baseline.get("embeddings", {}).get("file", drift.EMBEDDINGS_FILE)
    embeddings = np.load(embeddings_path).astype(np.float32) if embeddings_path.is_file() else None
    return baseline, embeddings


def load_constraints(path: str | None) -> dict[str, Any]:
    if not path:
        return dict(drift.DEFAULT_CONSTRAINTS)
    try:
        return {**drift.DEFAULT_CONSTRAINTS, **json.loads(Path(path).read_text())}
    except (OSError, ValueError) as error:
        raise MonitorInputError(f"baseline_constraints {path}: cannot read it ({error})") from None


def resolve_from_endpoint(endpoint: str, scratch: Path) -> tuple[Path, Path]:
    """(baseline.json, model.tar.gz) of the version ``endpoint`` serves now, downloaded into ``scratch``:
    endpoint → endpoint config → model → model package → its ``drift_baseline`` and model data."""
    import boto3

    sagemaker = boto3.client("sagemaker")
    s3 = boto3.client("s3")
    config_name = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    package_name = container.get("ModelPackageName")
    if not package_name:
        raise MonitorInputError(f"endpoint {endpoint} serves no model package: no baseline to compare with")
    package = sagemaker.describe_model_package(ModelPackageName=package_name)
    baseline_uri = (package.get("CustomerMetadataProperties") or {}).get(contract.DRIFT_BASELINE_KEY)
    model_uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    if not baseline_uri:
        raise MonitorInputError(f"model package {package_name} has no drift_baseline (registered before it)")

    def download(uri: str, target: Path) -> Path:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        return target

    baseline = download(baseline_uri, scratch / "baseline" / drift.BASELINE_FILE)
    embeddings_uri = baseline_uri.rsplit("/", 1)[0] + "/" + drift.EMBEDDINGS_FILE
    download(embeddings_uri, scratch / "baseline" / drift.EMBEDDINGS_FILE)
    return baseline, download(model_uri, scratch / "model" / "model.tar.gz").parent


def _violations(results: list[drift_checks.CheckResult]) -> dict[str, Any]:
    return {
        "violations": [
            {"feature_name": r.feature, "constraint_check_type": CHECK_TYPE, "description": r.description()}
            for r in results
            if r.violated
        ]
    }


def _summary(report: dict[str, Any]) -> str:
    window = report["window"]
    lines = [
        f"endpoint {report['endpoint']}: window {window['start']} to {window['end']}, "
        f"{report['records']} records, {report['images']} images; baseline of {report['baseline_images']} "
        f"test images",
    ]
    if report["status"] != "judged":
        lines.append(f"not judged: {report['reason']}")
        return "\n".join(lines) + "\n"
    lines.append(
        f"{report['violations']} violation(s)" + (": DRIFT" if report["violations"] else ": no drift")
    )
    for check in report["checks"]:
        mark = "VIOLATION" if check["violated"] else "ok"
        lines.append(
            f"  {mark:<9} {check['feature']:<22} {check['test']}: p={check['p_value']:.3g} "
            f"(threshold {check['threshold']:g}, statistic {check['statistic']:.4g})"
        )
    if report["contributors"]:
        lines.append("images that pull away from the baseline most (embedding witness):")
        lines += [
            f"  {c['id']}  {c['class']} ({c['confidence']:.2f})  witness {c['witness']:.4f}"
            for c in report["contributors"]
        ]
    return "\n".join(lines) + "\n"


def _metrics(report: dict[str, Any], env: dict[str, str], when: str) -> list[dict[str, Any]]:
    dimensions = [
        {"Name": "Endpoint", "Value": report["endpoint"]},
        {"Name": "MonitoringSchedule", "Value": env.get("sagemaker_monitoring_schedule_name", "local")},
    ]
    metrics = [
        {"MetricName": VIOLATIONS_METRIC, "Timestamp": when, "Dimensions": dimensions,
         "Value": float(report["violations"]), "Unit": "Count"},
    ]  # fmt: skip
    for check in report["checks"]:
        metrics.append(
            {"MetricName": f"drift_p_value_{check['feature'].replace('.', '_')}", "Timestamp": when,
             "Dimensions": dimensions, "Value": float(check["p_value"]), "Unit": "None"}
        )  # fmt: skip
    return metrics


def _measure_window(
    env: dict[str, str], model_dir: Path | None, start: datetime, end: datetime, batch_size: int
) -> tuple[dict[str, Any], np.ndarray | None, drift.Measurements, dict[str, int]]:
    """The baseline (given, or the served version's), and the window's images measured by its model."""
    with tempfile.TemporaryDirectory(prefix="dogpipe-monitor-") as scratch:
        baseline_path = env.get("baseline_statistics")
        if baseline_path:
            if model_dir is None or not model_dir.exists():
                raise MonitorInputError(f"--model-dir {model_dir}: no model to embed the images with")
        else:
            resolved, model_dir = resolve_from_endpoint(
                env.get("sagemaker_endpoint_name") or "", Path(scratch)
            )
            baseline_path = str(resolved)
        baseline, baseline_embeddings = load_baseline(Path(baseline_path))
        records, malformed = read_window(Path(env["dataset_source"]), start, end)
        embedder, info = drift.Embedder.from_model_dir(unpack_model(model_dir, Path(scratch) / "unpacked"))
        if [str(name) for name in info["classes"]] != baseline["classes"]:
            raise MonitorInputError("the model's classes differ from the baseline's: not the same version")
        window, refused = drift.measure(
            embedder, request_images(records), int(info["image_size"]), batch_size
        )
    counts = {"records": len(records), "malformed_lines": malformed, "undecodable": len(refused)}
    return baseline, baseline_embeddings, window, counts


def _write_reports(
    env: dict[str, str], report: dict[str, Any], results: list[drift_checks.CheckResult]
) -> None:
    output = Path(env["output_path"])
    output.mkdir(parents=True, exist_ok=True)
    (output / VIOLATIONS_FILE).write_text(json.dumps(_violations(results), indent=2) + "\n")
    (output / STATISTICS_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (output / SUMMARY_FILE).write_text(_summary(report))
    if env.get("publish_cloudwatch_metrics") == "Enabled":
        when = env.get("metric_time") or env["end_time"]
        metrics_dir = Path(METRICS_DIR)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(metric) for metric in _metrics(report, env, when)]
        (metrics_dir / METRICS_FILE).write_text("\n".join(lines) + "\n")


def run(env: dict[str, str], model_dir: Path | None, batch_size: int = 32) -> dict[str, Any]:
    """The job: read the window, measure it, compare, write the reports; returns ``statistics.json``."""
    for name in ("dataset_source", "output_path", "start_time", "end_time"):
        if not env.get(name):
            raise MonitorInputError(f"environment variable {name} is not set (Model Monitor sets it)")
    start, end = parse_time(env["start_time"], "start_time"), parse_time(env["end_time"], "end_time")
    constraints = load_constraints(env.get("baseline_constraints"))
    baseline, baseline_embeddings, window, counts = _measure_window(env, model_dir, start, end, batch_size)
    report: dict[str, Any] = {
        "endpoint": env.get("sagemaker_endpoint_name") or "endpoint",
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        **counts,
        "images": len(window),
        "baseline_images": baseline["num_images"],
        "model": baseline.get("model"),
        "checks": [],
        "contributors": [],
        "violations": 0,
    }
    results: list[drift_checks.CheckResult] = []
    minimum = int(constraints.get("min_records", 30))
    report.update(min_records=minimum, needed=max(0, minimum - len(window)))
    reason = too_few(len(window), minimum)
    if reason is not None:
        report.update(status="insufficient_data", reason=reason)
    else:
        results, contributors = drift_checks.compare(baseline, baseline_embeddings, window, constraints)
        checks = [r.to_json() for r in results]
        report.update(status="judged", checks=checks, contributors=contributors,
                      violations=sum(r.violated for r in results))  # fmt: skip
    _write_reports(env, report, results)
    return report


def too_few(images: int, minimum: int) -> str | None:
    """Why a window of ``images`` is not judged (None: it is), with how many more it needs. Below
    ``min_records`` the tests say little: the chi-square's expected class counts fall under 5, and a KS
    at p < 0.01 needs a gross shift to fire, so a verdict would read as "no drift" where nothing was
    learnt."""
    if images >= minimum:
        return None
    return (
        f"{images} image{'s' if images != 1 else ''} in the window, fewer than min_records {minimum}: "
        f"{minimum - images} more needed (more traffic, a longer window — locally `dogpipe monitor run "
        f"--since` — or a lower monitor.min_records, 5 at the least)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path(contract.processing_input("model")))
    parser.add_argument("--batch-size", type=int, default=32)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    contract.configure_logging()
    args = parse_args(argv)
    try:
        report = run(dict(os.environ), args.model_dir, args.batch_size)
    except (MonitorInputError, FileNotFoundError, ValueError) as error:
        log.error("monitoring failed: %s", error)
        return 2
    sys.stdout.write(_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
