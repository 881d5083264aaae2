"""``dogpipe serve`` under the hostile load of issue 13 (cases 6 and 7), on a real server on 127.0.0.1.

While a normal client sends one small image after another, the server gets: two 1.7 MB JSON requests of
sixteen 9000x9000 PNGs each, 260 clients that send headers and never finish their bodies, JSON nested
200,000 deep, and clients that disconnect half-way through their bodies. Every hostile request must be
a 4xx JSON within its bound, the normal client's p99 must stay below 1 s, and the server log must hold
no traceback. Bounded: 260 sockets, a 2 s body timeout, about 10 s of load.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import torch
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.serving.client import MAX_IMAGE_BYTES
from tests.serving_helpers import image_bytes, png_header_claiming, write_model_dir

REPO = Path(__file__).resolve().parent.parent
LOCAL_YAML = REPO / "config" / "local.yaml"
BODY_TIMEOUT_S = 2.0
SLOW_CLIENTS = 260
P99_LIMIT_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``python -m pipeline.serving MODEL`` with the default limits and a 2 s body timeout."""
    folder = tmp_path_factory.mktemp("bounds")
    model_dir = write_model_dir(folder / "model")
    url_file, log = folder / "url", folder / "server.log"
    command = [
        sys.executable,
        "-m",
        "pipeline.serving",
        str(model_dir),
        "--port",
        "0",
        "--url-file",
        str(url_file),
    ]
    command += ["--body-timeout", str(BODY_TIMEOUT_S), "--optimize", "eager", "--config", str(LOCAL_YAML)]
    with log.open("wb") as stream:
        process = subprocess.Popen(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not url_file.exists():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield url_file.read_text().strip(), log
        assert process.poll() is None, "the server died under load"
    finally:
        process.terminate()
        process.wait(timeout=30)


class NormalClient(threading.Thread):
    """One client sending a small JPEG after another, recording each latency and status."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.latencies: list[float] = []
        self.statuses: list[int] = []

    def run(self) -> None:
        payload = image_bytes((200, 30, 40))
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                reply = http.post("/invocations", content=payload, headers={"Content-Type": "image/jpeg"})
                self.latencies.append(time.perf_counter() - started)
                self.statuses.append(reply.status_code)

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def open_slow_client(url: str) -> socket.socket:
    """Headers promising 100 kB, ten bytes of body, then nothing."""
    connection = socket.create_connection(_address(url), timeout=10)
    connection.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 100000\r\n\r\n" + b"\xff" * 10
    )
    return connection


def disconnect_mid_body(url: str) -> None:
    with socket.create_connection(_address(url), timeout=10) as connection:
        connection.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 50000\r\n\r\n" + b"\xff" * 1000
        )


def sixteen_huge_pngs() -> bytes:
    """Case 6: a 1.7 MB JSON of sixteen PNGs whose headers say 9000x9000 (1.3 Gpx in all)."""
    png = png_header_claiming(9000, 9000)
    padding = base64.b64encode(b"\0" * 1_250_000).decode()  # the size of the original request
    return json.dumps({"instances": [base64.b64encode(png).decode()] * 16, "padding": padding}).encode()


def timed_post(url: str, body: bytes, content_type: str) -> tuple[int, dict, float]:
    started = time.perf_counter()
    reply = httpx.post(url + "/invocations", content=body, headers={"Content-Type": content_type}, timeout=30)
    return reply.status_code, reply.json(), time.perf_counter() - started


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_hostile_clients_get_4xx_json_in_time_and_a_normal_client_keeps_its_p99(server) -> None:
    url, log = server
    normal = NormalClient(url)
    normal.start()
    time.sleep(0.5)
    slow = [open_slow_client(url) for _ in range(SLOW_CLIENTS)]
    opened = time.monotonic()
    hostile = [
        (sixteen_huge_pngs(), "application/json", 413, "request too large"),
        (sixteen_huge_pngs(), "application/json", 413, "request too large"),
        (b"[" * 200_000 + b"]" * 200_000, "application/json", 400, "nested too deeply"),
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        disconnects = [pool.submit(disconnect_mid_body, url) for _ in range(20)]
        answers = list(pool.map(lambda case: timed_post(url, case[0], case[1]), hostile))
        for future in disconnects:
            future.result()
    for (status, document, seconds), (_, _, want, words) in zip(answers, hostile, strict=True):
        assert status == want and words in document["error"] and seconds < 2.0, (status, document, seconds)

    time.sleep(max(0.0, opened + BODY_TIMEOUT_S + 1.0 - time.monotonic()))
    timed_out = 0
    for connection in slow:
        with connection:
            head = connection.recv(4096)
            timed_out += head.startswith(b"HTTP/1.1 408") and b'"error"' in head
    normal.stop.set()
    normal.join(timeout=30)

    assert timed_out == SLOW_CLIENTS
    assert len(normal.latencies) >= 20 and set(normal.statuses) == {200}, set(normal.statuses)
    assert normal.p99() < P99_LIMIT_S, f"p99 {normal.p99():.3f} s over {len(normal.latencies)} requests"
    server_log = log.read_text()
    assert "Traceback" not in server_log and "inference failed" not in server_log, server_log[-3000:]


def test_predict_reads_no_more_than_an_endpoint_takes(tmp_path: Path) -> None:
    """``dogpipe predict /dev/zero`` stops after 6 MiB + 1 byte with one line (it read until the OOM
    killer came); the endpoint is never contacted."""
    result = CliRunner().invoke(
        cli, ["predict", "/dev/zero", "--endpoint", "any", "--config", str(LOCAL_YAML)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: /dev/zero is larger than {MAX_IMAGE_BYTES:,} bytes, the most an endpoint accepts"
    ]


class _NotWeights:
    """An object ``weights_only`` loading refuses to unpickle."""


@pytest.mark.parametrize("breakage", ["pickle", "image_size"])
def test_serving_a_broken_model_is_one_line(tmp_path: Path, breakage: str) -> None:
    model_dir = write_model_dir(tmp_path / "model")
    if breakage == "pickle":
        torch.save({"weights": _NotWeights()}, model_dir / "model.pth")
        words = "model.pth is not a tensors-only state dict"
    else:
        info = json.loads((model_dir / "model_info.json").read_text())
        (model_dir / "model_info.json").write_text(json.dumps({**info, "image_size": 10**9}))
        words = "image_size 1000000000"
    result = CliRunner().invoke(cli, ["serve", str(model_dir), "--port", "0", "--config", str(LOCAL_YAML)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and words in lines[0], result.output
