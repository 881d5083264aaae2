"""Data capture on local endpoints: SageMaker's JSON Lines records, its folder layout, sampling, bounded
files, and a request that never waits for nor fails with the capture (``pipeline/serving/capture.py``)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
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
from pipeline.serving.capture import CaptureWriter
from pipeline.serving.capture_format import CaptureSettings, Exchange, capture_record
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


# -- the writer child: a process of its own ---------------------------------------------------------------


def test_records_written_through_the_child_are_the_records_of_capture_record(tmp_path: Path) -> None:
    """Byte for byte what the server's own thread wrote before the child (the same ``capture_record``
    and compact JSON), image and JSON bodies, odd content types and no content type included."""
    settings = CaptureSettings(folder=tmp_path / "relative-or-not", endpoint="dogs", variant="AllTraffic")
    moment = 1_796_610_941.25
    writer = CaptureWriter(settings, clock=lambda: moment)
    assert writer.child_pid is not None
    sent = [
        (image_bytes((10, 200, 30)), "image/jpeg"),
        (b'{"instances": [1, 2]}', "application/json; charset=utf-8"),
        (b"\x00\xff raw", None),
        ("caf\u00e9".encode(), "text/plain; name=caf\u00e9"),
    ]
    for body, content_type in sent:
        assert writer.offer(body, content_type, REPLY_BYTES, "application/json")
    writer.close()
    assert writer.stats() == {"captured": 4, "dropped": 0, "written": 4, "errors": 0}

    (path,) = tmp_path.rglob("*.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4
    for line, (body, content_type) in zip(lines, sent, strict=True):
        event_id = json.loads(line)["eventMetadata"]["eventId"]
        exchange = Exchange(moment, body, content_type, REPLY_BYTES, "application/json")
        expected = capture_record(settings, exchange, event_id=event_id)
        assert line == (json.dumps(expected, separators=(",", ":")) + "\n").encode()


def test_the_feeder_waits_for_a_lull_but_not_past_a_half_full_queue_or_close(tmp_path: Path) -> None:
    settings = CaptureSettings(folder=tmp_path, endpoint="e", queue_size=4)
    writer = CaptureWriter(settings, quiet_s=60, hold_s=120)  # no lull comes within the test
    assert writer.offer(b"one", "image/jpeg", REPLY_BYTES, "application/json")
    time.sleep(0.3)
    assert writer.written == 0  # held: the server might be in a burst
    for body in (b"two", b"three"):  # 2 waiting = half the queue: handed over now
        assert writer.offer(body, "image/jpeg", REPLY_BYTES, "application/json")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and writer.written < 3:
        time.sleep(0.02)
    assert writer.written == 3
    assert writer.offer(b"four", "image/jpeg", REPLY_BYTES, "application/json")
    started = time.monotonic()
    writer.close()  # does not wait for the lull
    assert time.monotonic() - started < 10
    assert writer.stats() == {"captured": 4, "dropped": 0, "written": 4, "errors": 0}


def test_the_child_imports_neither_torch_nor_the_server() -> None:
    found = subprocess.run(
        [sys.executable, "-c", "import sys, pipeline.serving.capture_child; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    modules = set(found.strip().strip("[]").replace("'", "").split(", "))
    assert not {"torch", "numpy", "starlette", "uvicorn", "pipeline.serving.app"} & modules
    assert {name for name in modules if name.startswith("pipeline")} == {
        "pipeline",
        "pipeline.serving",
        "pipeline.serving.capture_format",
        "pipeline.serving.capture_child",
    }


def test_a_writer_child_that_cannot_start_costs_the_records_only(tmp_path: Path) -> None:
    writer = CaptureWriter(CaptureSettings(folder=tmp_path, endpoint="e"), python=str(tmp_path / "no-python"))
    assert writer.child_pid is None
    assert all(writer.offer(b"img", "image/jpeg", REPLY_BYTES, "application/json") for _ in range(3))
    writer.close()
    assert writer.stats() == {"captured": 3, "dropped": 0, "written": 0, "errors": 3}


def _capturing_endpoint(engine_root: Path, tmp_path: Path, name: str) -> tuple[dict, Path, psutil.Process]:
    """A real local endpoint server capturing at 100 %, and its writer child."""
    model = write_model_dir(tmp_path / "model")
    engine_root.mkdir(parents=True, exist_ok=True)
    link = engine_root / f"model-{name}"
    link.symlink_to(model)
    capture = LocalCapture(
        folder=engine_root / "capture",
        sampling_percentage=100,
        modes=("Input", "Output"),
        max_file_bytes=1 << 20,
        max_total_bytes=1 << 24,
    )
    record = start_endpoint(engine_root, name, link, model_data=f"file://{model}", capture=capture)
    server = psutil.Process(record["pid"])
    (child,) = [
        process
        for process in server.children()
        if "pipeline.serving.capture_child" in " ".join(process.cmdline())
    ]
    assert child.nice() == 19
    return record, capture.folder, child


def _ping(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url + "/ping") as response:
        return json.loads(response.read())


def _wait_for_capture(url: str, key: str, count: int, within_s: float = 10) -> None:
    """Until the server's ``/ping`` counts ``count`` capture ``key`` (written, errors) or ``within_s``
    pass; the assertions that follow say which."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and _ping(url)["capture"][key] < count:
        time.sleep(0.05)


def _gone(process: psutil.Process, within_s: float) -> bool:
    """Exited (a zombie counts: whoever adopted it may not reap it at once) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_the_writer_child_ends_when_the_server_is_sigkilled(engine_root: Path, tmp_path: Path) -> None:
    record, folder, child = _capturing_endpoint(engine_root, tmp_path, "dogs")
    images = [image_bytes((60 * index, 30, 90)) for index in range(2)]
    for image in images:
        invoke_http(record["url"], image, "image/jpeg")
    _wait_for_capture(record["url"], "written", len(images))  # (one still queued dies with the server)
    os.kill(record["pid"], signal.SIGKILL)
    assert _gone(child, within_s=10), "the writer child outlived its SIGKILLed server"
    records = read_records(folder)  # what was written stays, whole lines
    assert [base64.b64decode(r["captureData"]["endpointInput"]["data"]) for r in records] == images


def test_a_killed_writer_child_costs_records_not_the_server(engine_root: Path, tmp_path: Path) -> None:
    record, folder, child = _capturing_endpoint(engine_root, tmp_path, "dogs")
    invoke_http(record["url"], image_bytes((200, 30, 30)), "image/jpeg")
    _wait_for_capture(record["url"], "written", 1)
    child.kill()
    assert _gone(child, within_s=10)

    replies = [invoke_http(record["url"], image_bytes((30, 30, 200)), "image/jpeg") for _ in range(3)]
    assert all(reply["predictions"] for reply in replies)  # answered, as if nothing had happened
    _wait_for_capture(record["url"], "errors", 3)
    ping = _ping(record["url"])
    assert ping["status"] == "ok"
    assert ping["capture"] == {"captured": 4, "dropped": 0, "written": 1, "errors": 3}
    assert len(read_records(folder)) == 1
    assert psutil.Process(record["pid"]).is_running()
