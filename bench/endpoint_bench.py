"""Endpoint latency and throughput: bare eager ``predict`` vs each optimisation vs what ``dogpipe serve``
serves by default, over HTTP. The headline is the HTTP overhead: HTTP p50 minus the p50 of the optimised
``predict`` it wraps (parse + decode + forward + ranking in-process, the server's default mode), with
where that time goes inside the server (its ``Server-Timing`` header: body read, wait for a worker
thread, predict on that thread, back to the event loop) and outside it (uvicorn, loopback, client).

For each default model (squeezenet1_1 at 224 px, SageMaker; mobilenet_v2 at 96 px, the local demo), with
random weights, 10 breeds and one 500x375 JPEG, the cases taking turns in blocks (``measure_in_blocks``)
so load from other processes hits them alike, while no case shares the CPU with the OpenMP threads
still spinning after the one before it (an HTTP request right after an in-process forward would):
- eager predict: ``inference.load_model(optimize="eager")`` in-process with torch's default threads
  and with one; the faster is the baseline of issue 6 (a plain handler, no server);
- trace / onednn / compile predict with torch's default threads (what the server runs for a request
  that is alone), and onednn's one-thread build (what it runs for requests side by side on 2 cores);
  compile is left out of ``--quick``;
- HTTP: ``python -m pipeline.serving`` with its default ``--optimize`` on loopback, one request at a
  time over a keep-alive connection (stdlib ``http.client``, so the figure is the server's, not a client
  library's), and the same through ``httpx``;
- server start (model load + optimisation until it accepts connections) and in-process load per mode;
- req/s at 1, 4 and 16 concurrent clients (median of three turns); batch of 8 vs 8 single forwards
  in-process.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch
from PIL import Image

from bench.harness import Report, Row, Timing, measure, measure_in_blocks
from training_code import inference, model_optimize, models, payloads

REPO = Path(__file__).resolve().parent.parent
#: (architecture, image size, what uses it)
MODELS = (("squeezenet1_1", 224, "SageMaker default"), ("mobilenet_v2", 96, "local demo"))
CONCURRENCY = (1, 4, 16)


def write_model(
    directory: Path, image_size: int, classes: int = 10, architecture: str = "squeezenet1_1"
) -> Path:
    torch.manual_seed(0)
    torch.save(models.build_model(architecture, classes).state_dict(), directory / models.MODEL_WEIGHTS_FILE)
    info = {
        "architecture": architecture,
        "num_classes": classes,
        "classes": [f"{i:03d}.breed" for i in range(classes)],
        "image_size": image_size,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    (directory / models.MODEL_INFO_FILE).write_text(json.dumps(info))
    return directory


def photo_jpeg(width: int = 500, height: int = 375) -> bytes:
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    pixels = (x * 0.6 + y * 0.4 + rng.normal(0, 20, (height, width, 3))).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def start_server(model_dir: Path, url_file: Path, log: Path, *options: str) -> subprocess.Popen:
    """``python -m pipeline.serving MODEL --port 0`` (plus ``options``), returned once it accepts
    connections."""
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
    with log.open("wb") as stream:
        process = subprocess.Popen([*command, *options], cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not url_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return process


def keep_alive_post(
    url: str, payload: bytes, phases: dict[str, list[float]] | None = None
) -> Callable[[], None]:
    """One POST /invocations per call over one persistent connection, checked for a 200; the server's
    ``Server-Timing`` durations (ms) are appended to ``phases`` by name."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.connect()
    # http.client sends the headers and the body in two writes, so Nagle could hold the body for the
    # server's ACK of the headers; urllib3 (requests, botocore, `dogpipe predict`) sets TCP_NODELAY, and
    # so does the bench (two A/B runs on 2026-12-02, machine busy: 5.5 ms apart once, equal the next).
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Content-Type": "image/jpeg", "Accept": "application/json"}

    def post() -> None:
        connection.request("POST", "/invocations", body=payload, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        if phases is not None:
            for part in (response.getheader("Server-Timing") or "").split(","):
                name, _, duration = part.strip().partition(";dur=")
                if duration:
                    phases.setdefault(name, []).append(float(duration))

    return post


def nodelay_client(url: str):  # type: ignore[no-untyped-def]
    """An httpx client whose connections set TCP_NODELAY, as urllib3's do."""
    import httpx

    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=url, timeout=60, transport=transport)


def with_threads(threads: int, fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` under ``threads`` intra-op threads (setting the count costs microseconds)."""

    def call() -> None:
        with model_optimize.intra_op_threads(threads):
            fn()

    return call


def load_modes(
    model_dir: Path, modes: tuple[str, ...], report: Report, tag: str
) -> dict[str, inference.ServedModel]:
    """Each mode loaded in-process, its load time recorded. ``trace`` is loaded (and warmed, which fixes
    its plan) before ``onednn`` switches TorchScript's process-wide fusion on, so it stays plain."""
    served = {}
    for mode in modes:
        started = time.perf_counter()
        # Two builds for thread-bound modes, as the server makes them: all threads and one.
        served[mode] = inference.load_model(model_dir, optimize=mode, shared_threads=1)
        seconds = time.perf_counter() - started
        if served[mode].optimized != mode:
            raise RuntimeError(f"{tag}: optimize={mode} fell back to {served[mode].optimized}; see the log")
        report.rows.append(Row("endpoint", f"{tag} load, optimize={mode}", "s", seconds, seconds, seconds))
    return served


def throughput(url: str, payload: bytes, requests: int, rounds: int = 3) -> dict[int, float]:
    """Requests per second with ``CONCURRENCY`` clients sharing one connection pool: the median of
    ``rounds`` turns through the client counts (one turn of 160 requests lasts about half a second at
    4 clients, short enough for one hiccup of the machine to move it by a fifth)."""

    samples: dict[int, list[float]] = {clients: [] for clients in CONCURRENCY}
    headers = {"Content-Type": "image/jpeg"}
    with nodelay_client(url) as client:

        def post(_: int) -> int:
            return client.post("/invocations", content=payload, headers=headers).status_code

        for _ in range(rounds):
            for clients in CONCURRENCY:
                with ThreadPoolExecutor(max_workers=clients) as pool:
                    started = time.perf_counter()
                    statuses = set(pool.map(post, range(requests)))
                    samples[clients].append(requests / (time.perf_counter() - started))
                if statuses != {200}:
                    raise RuntimeError(f"non-200 replies under {clients} clients: {statuses}")
    return {clients: float(np.median(rates)) for clients, rates in samples.items()}


def bench_model(report: Report, architecture: str, image_size: int, *, quick: bool) -> None:

    tag = f"{architecture} {image_size}px"
    blocks, concurrent_requests = (2, 16) if quick else (6, 160)
    modes = ("eager", "trace", "onednn") + (() if quick else ("compile",))
    payload = photo_jpeg()
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_model(Path(tmp), image_size, architecture=architecture)
        started = time.perf_counter()
        process = start_server(model_dir, Path(tmp) / "url", Path(tmp) / "server.log")
        start_s = time.perf_counter() - started
        report.rows.append(
            Row("endpoint", f"{tag} server start (default mode)", "s", start_s, start_s, start_s)
        )
        try:
            url = (Path(tmp) / "url").read_text().strip()
            served = load_modes(model_dir, modes, report, tag)

            def predict_fn(model: inference.ServedModel) -> Callable[[], object]:
                """What the server's worker thread runs for a request alone (``classify``)."""
                return lambda: inference.predict(model, payloads.parse_request(payload, "image/jpeg"))

            def shared_predict(model: inference.ServedModel) -> Callable[[], object]:
                request = lambda: payloads.parse_request(payload, "image/jpeg")  # noqa: E731
                return with_threads(1, lambda: inference.predict(model, request(), shared=True))

            phases: dict[str, list[float]] = {}
            cases: dict[str, Callable[[], object]] = {
                f"eager predict, {default_threads} threads": predict_fn(served["eager"]),
                "eager predict, 1 thread": with_threads(1, predict_fn(served["eager"])),
                **{
                    f"{mode} predict, {default_threads} threads": predict_fn(served[mode])
                    for mode in modes[1:]
                },
                "onednn predict, 1-thread build (requests side by side)": shared_predict(served["onednn"]),
                "HTTP, default mode (http.client keep-alive)": keep_alive_post(url, payload, phases),
            }
            with nodelay_client(url) as client:
                headers = {"Content-Type": "image/jpeg"}
                cases["HTTP, default mode (httpx)"] = lambda: client.post(
                    "/invocations", content=payload, headers=headers
                )
                timings = measure_in_blocks(cases, blocks=blocks, per_block=5 if quick else 12)
            rates = throughput(url, payload, concurrent_requests, rounds=1 if quick else 3)
            default = served[model_optimize.DEFAULT_OPTIMIZE]
            batch = torch.stack([default.preprocess(payload)] * 8)
            batched = measure(lambda: default.probabilities(batch), warmup=3, repeats=3)
            singles = measure(lambda: [default.probabilities(batch[:1]) for _ in range(8)], repeats=3)
        finally:
            process.terminate()
            process.wait(timeout=30)
    record(report, tag, timings, default_threads, phases)
    for clients, rate in rates.items():
        report.ratio("endpoint", f"{tag}: req/s, {clients} concurrent client(s)", rate)
    report.ratio(
        "endpoint", f"{tag}: batch-of-8 forward speed-up over 8 singles", singles.median / batched.median
    )


def record(
    report: Report, tag: str, timings: dict[str, Timing], default_threads: int, phases: dict[str, list[float]]
) -> None:
    """The headline (HTTP overhead over the optimised predict), where it goes, latency rows, and the
    ratios against the faster eager setting (so the server is not flattered by oversubscribed intra-op
    threads when another process holds a core)."""
    http_ms = timings["HTTP, default mode (http.client keep-alive)"].median * 1000
    optimised_ms = (
        timings[f"{model_optimize.DEFAULT_OPTIMIZE} predict, {default_threads} threads"].median * 1000
    )
    report.ratio(
        "endpoint", f"{tag}: HTTP overhead over optimised predict p50, ms", http_ms - optimised_ms, "<= 1.5"
    )
    inside = 0.0
    for name, samples in phases.items():
        report.latency("endpoint", f"{tag} server phase: {name}", samples)
        inside += float(np.median(samples))
    report.ratio(
        "endpoint", f"{tag}: HTTP p50 outside the app (uvicorn, loopback, client), ms", http_ms - inside
    )
    for case, timing in timings.items():
        samples = [seconds * 1000 for seconds in timing.samples]
        note = f"p95 {np.percentile(samples, 95):.1f} ms" if case.startswith("HTTP") else ""
        report.latency("endpoint", f"{tag} {case}", samples, note=note)
    eager = min(
        timings[f"eager predict, {default_threads} threads"].median,
        timings["eager predict, 1 thread"].median,
    )
    report.ratio("endpoint", f"{tag}: HTTP p50 / bare eager predict p50", http_ms / 1000 / eager, "<= 1.0")
    report.ratio(
        "endpoint", f"{tag}: same, httpx client", timings["HTTP, default mode (httpx)"].median / eager
    )
    for case, timing in timings.items():
        if not case.startswith(("eager", "HTTP")):
            report.ratio("endpoint", f"{tag}: {case} / eager p50", timing.median / eager)


def run(report: Report, *, quick: bool = False) -> None:
    for architecture, image_size, _ in MODELS:
        bench_model(report, architecture, min(image_size, 64) if quick else image_size, quick=quick)
