"""Endpoint latency and throughput: bare eager ``predict_fn`` vs the served (traced) model over HTTP.

One squeezenet1_1 (random weights, 10 breeds, 224 px) and one 500x375 JPEG, measured in this run:
- eager predict_fn: ``inference.load_model(optimize="eager")`` called in-process, with torch's default
  threads and with one thread; the faster is the baseline of issue 6 (a plain handler, no server);
- traced predict_fn: the same call on the model ``model_fn`` serves (``jit.trace`` + ``freeze``);
- HTTP p50: ``python -m pipeline.serving`` on loopback, one request at a time (client, HTTP, JSON and
  the thread hop included);
- HTTP req/s: 8 concurrent clients;
- batch of 8 vs 8 single forwards in-process: what batching concurrent requests could gain at most.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.harness import Report, measure
from training_code import inference, models

REPO = Path(__file__).resolve().parent.parent


def write_model(directory: Path, image_size: int, classes: int = 10) -> Path:
    torch.manual_seed(0)
    torch.save(
        models.build_model("squeezenet1_1", classes).state_dict(), directory / models.MODEL_WEIGHTS_FILE
    )
    info = {
        "architecture": "squeezenet1_1",
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


def latencies_ms(fn, count: int) -> list[float]:
    fn()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def start_server(model_dir: Path, url_file: Path, log: Path) -> subprocess.Popen:
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.serving",
                str(model_dir),
                "--port",
                "0",
                "--url-file",
                str(url_file),
            ],
            cwd=REPO,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while not url_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return process


CONCURRENCY = (1, 4, 16)


def run(report: Report, *, quick: bool = False) -> None:
    import httpx

    image_size, count, concurrent_requests = (64, 10, 16) if quick else (224, 60, 160)
    payload = photo_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_model(Path(tmp), image_size)
        eager = inference.load_model(model_dir, optimize="eager")
        traced = inference.model_fn(str(model_dir))

        def call(model: inference.ServedModel):
            return lambda: inference.predict_fn(inference.input_fn(payload, "image/jpeg"), model)

        default_threads = torch.get_num_threads()
        eager_default_ms = latencies_ms(call(eager), count)
        torch.set_num_threads(1)  # what the server gives each of its 2 workers on 2 cores
        eager_one_ms = latencies_ms(call(eager), count)
        traced_ms = latencies_ms(call(traced), count)
        torch.set_num_threads(default_threads)
        report.latency("endpoint", f"eager predict_fn, {default_threads} threads", eager_default_ms)
        report.latency("endpoint", "eager predict_fn, 1 thread", eager_one_ms)
        report.latency("endpoint", f"{traced.optimized} predict_fn, 1 thread", traced_ms)
        # The baseline is the faster of the two eager settings, so the server is not flattered by
        # oversubscribed intra-op threads when another process holds a core.
        eager_ms = min(eager_default_ms, eager_one_ms, key=lambda samples: float(np.median(samples)))

        batch = torch.stack([traced.preprocess(payload)] * 8)
        single = batch[:1]
        batched = measure(lambda: traced.probabilities(batch), repeats=3)
        singles = measure(lambda: [traced.probabilities(single) for _ in range(8)], repeats=3)

        process = start_server(model_dir, Path(tmp) / "url", Path(tmp) / "server.log")
        try:
            url = (Path(tmp) / "url").read_text().strip()
            headers = {"Content-Type": "image/jpeg"}
            with httpx.Client(base_url=url, timeout=30) as http:
                http_ms = latencies_ms(
                    lambda: http.post("/invocations", content=payload, headers=headers), count
                )

                def post(_: int) -> int:
                    return http.post("/invocations", content=payload, headers=headers).status_code

                throughput: dict[int, float] = {}
                statuses: set[int] = set()
                for clients in CONCURRENCY:
                    with ThreadPoolExecutor(max_workers=clients) as pool:
                        started = time.perf_counter()
                        statuses.update(pool.map(post, range(concurrent_requests)))
                        throughput[clients] = concurrent_requests / (time.perf_counter() - started)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert statuses == {200}, statuses
    p95 = float(np.percentile(http_ms, 95))
    report.latency("endpoint", "HTTP single image (loopback)", http_ms, note=f"p95 {p95:.1f} ms")
    median = lambda samples: float(np.median(samples))  # noqa: E731
    report.ratio(
        "endpoint", "HTTP p50 / bare eager predict_fn p50", median(http_ms) / median(eager_ms), "<= 1.0"
    )
    report.ratio(
        "endpoint", "traced / eager predict_fn p50 (1 thread)", median(traced_ms) / median(eager_one_ms)
    )
    for clients, rate in throughput.items():
        report.ratio("endpoint", f"req/s, {clients} concurrent client(s)", rate)
    report.ratio("endpoint", "batch-of-8 forward speed-up over 8 singles", singles.median / batched.median)
