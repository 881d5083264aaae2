"""Data capture on local endpoints: SageMaker's JSON Lines records, its folder layout, sampling, bounded
files, and a request that never waits for nor fails with the capture (``pipeline/serving/capture.py``)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.config import LOCAL_CONFIG, load_config
from pipeline.config.deploy_names import data_capture_request
from pipeline.local.endpoint_capture import LocalCapture
from pipeline.local.endpoint_records import list_endpoints, stop_endpoint
from pipeline.local.endpoint_servers import start_endpoint
from pipeline.serving.capture import CaptureSettings, CaptureWriter
from pipeline.serving.client import invoke_http
from tests.serving_helpers import image_bytes, write_model_dir

REPLY = json.dumps({"predictions": [{"top_k": [{"breed": "001.Affenpinscher", "probability": 0.9}]}]})
REPLY_BYTES = REPLY.encode()


def read_records(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line
    ]


def test_a_record_is_sagemakers_capture_record_in_sagemakers_layout(tmp_path: Path) -> None:
    settings = CaptureSettings(folder=tmp_path, endpoint="dogs-staging")
    moment = 1_796_610_941.25  # 2026-12-07T02:35:41.25Z
    writer = CaptureWriter(settings, clock=lambda: moment)
    image = image_bytes((200, 10, 10))
    assert writer.offer(image, "image/jpeg", REPLY_BYTES, "application/json")
    writer.close()

    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1
    relative = files[0].relative_to(tmp_path).parts
    assert relative[:6] == ("dogs-staging", "AllTraffic", "2026", "12", "07", "02")
    assert relative[6].startswith("35-41-250-") and relative[6].endswith(".jsonl")
    (record,) = read_records(tmp_path)
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
    assert record["eventVersion"] == "0"
    assert record["eventMetadata"]["inferenceTime"] == "2026-12-07T02:35:41Z"
    assert len(record["eventMetadata"]["eventId"]) == 36
    sent = record["captureData"]["endpointInput"]
    assert (sent["observedContentType"], sent["mode"], sent["encoding"]) == ("image/jpeg", "INPUT", "BASE64")
    assert base64.b64decode(sent["data"]) == image
    answered = record["captureData"]["endpointOutput"]
    assert (answered["mode"], answered["encoding"]) == ("OUTPUT", "JSON")
    assert json.loads(answered["data"]) == json.loads(REPLY_BYTES)
    assert writer.stats() == {"captured": 1, "dropped": 0, "written": 1, "errors": 0}


def test_sampling_modes_and_rotation_within_the_size_bounds(tmp_path: Path) -> None:
    draws = iter([0.05, 0.95] * 50)  # half the draws fall under 50 %
    settings = CaptureSettings(
        folder=tmp_path,
        endpoint="e",
        sampling_percentage=50,
        capture_input=False,
        max_file_bytes=2048,
        max_total_bytes=6000,
    )
    writer = CaptureWriter(settings, draw=lambda: next(draws))
    taken = [writer.offer(b"x" * 100, "image/png", REPLY_BYTES, "application/json") for _ in range(100)]
    writer.close()
    assert sum(taken) == 50
    records = read_records(tmp_path)
    assert records and all(set(r["captureData"]) == {"endpointOutput"} for r in records)
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) >= 2  # rotated
    assert all(path.stat().st_size <= 2048 for path in files)
    assert sum(path.stat().st_size for path in files) <= 6000 + 2048  # oldest deleted (the open one kept)
    assert len(records) < 50  # what was deleted is gone, the newest are kept


def test_a_full_queue_drops_and_counts_without_blocking_the_caller(tmp_path: Path, monkeypatch) -> None:
    release = threading.Event()
    writer = CaptureWriter(CaptureSettings(folder=tmp_path, endpoint="e", queue_size=2))
    original = writer._write
    monkeypatch.setattr(writer, "_write", lambda entry: (release.wait(10), original(entry)))
    started = time.perf_counter()
    results = [writer.offer(b"img", "image/jpeg", REPLY_BYTES, "application/json") for _ in range(20)]
    elapsed = time.perf_counter() - started
    release.set()
    writer.close()
    assert elapsed < 1.0  # twenty offers against a stuck writer returned at once
    assert writer.dropped >= 17 and writer.dropped == results.count(False)
    assert writer.written == writer.captured == results.count(True)


def test_a_failing_write_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "capture"
    blocked.write_text("a file where the capture folder should be")
    writer = CaptureWriter(CaptureSettings(folder=blocked, endpoint="e"))
    assert writer.offer(b"img", "image/jpeg", REPLY_BYTES, "application/json")
    writer.close()
    assert writer.stats()["errors"] == 1 and writer.stats()["written"] == 0


def test_the_config_request_maps_to_the_local_server_capture(tmp_path: Path) -> None:
    cfg = load_config(LOCAL_CONFIG)
    request = data_capture_request(cfg)
    assert request is not None and request["InitialSamplingPercentage"] == 100
    assert request["DestinationS3Uri"] == "s3://dogpipe-local/dogpipe/data-capture"
    capture = LocalCapture.from_request(request, lambda uri: tmp_path / uri.removeprefix("s3://"), 4096, 8192)
    assert capture is not None and capture.folder == tmp_path / "dogpipe-local/dogpipe/data-capture"
    assert "--capture-modes" in capture.arguments("x") and "Input,Output" in capture.arguments("x")
    assert LocalCapture.from_request({**request, "EnableCapture": False}, Path, 1, 1) is None
    assert LocalCapture.from_request(None, Path, 1, 1) is None


@pytest.fixture
def engine_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "engine"
    yield root
    for row in list_endpoints(root):
        stop_endpoint(root, row.name)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "pipeline.serving" in cmdline and str(root) in cmdline:
            process.kill()


def test_a_local_endpoint_records_what_it_served(engine_root: Path, tmp_path: Path) -> None:
    model = write_model_dir(tmp_path / "model")
    link = engine_root / "model-capture"
    engine_root.mkdir(parents=True)
    link.symlink_to(model)
    capture = LocalCapture(
        folder=engine_root / "capture",
        sampling_percentage=100,
        modes=("Input", "Output"),
        max_file_bytes=1 << 20,
        max_total_bytes=1 << 24,
    )
    record = start_endpoint(engine_root, "dogs", link, model_data=f"file://{model}", capture=capture)
    assert record["capture_folder"] == str(capture.folder)
    images = [image_bytes((40 * index, 90, 200)) for index in range(3)]
    replies = [invoke_http(record["url"], image, "image/jpeg") for image in images]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(read_records(capture.folder)) < 3:
        time.sleep(0.1)
    records = read_records(capture.folder)
    assert [base64.b64decode(r["captureData"]["endpointInput"]["data"]) for r in records] == images
    for found, reply in zip(records, replies, strict=True):
        captured = json.loads(found["captureData"]["endpointOutput"]["data"])
        assert captured["predictions"] == reply["predictions"]
    assert all(path.parts[-7:-5] == ("dogs", "AllTraffic") for path in capture.folder.rglob("*.jsonl"))
    import urllib.request

    with urllib.request.urlopen(record["url"] + "/ping") as response:
        ping = json.loads(response.read())
    assert ping["capture"]["written"] == 3 and ping["capture"]["dropped"] == 0
