"""``dogpipe serve`` / ``python -m pipeline.serving`` and ``dogpipe predict``: the HTTP protocol, every bad
request as a 4xx, a bounded mixed load test on loopback, model sources, and the AWS invoke path."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import torch
import yaml
from botocore.stub import Stubber
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.config import LOCAL_CONFIG
from pipeline.local.endpoint_records import write_endpoint
from pipeline.object_store import ObjectStore
from pipeline.registry import LocalRegistry
from pipeline.serving import app as serving_app
from pipeline.serving.app import ServingSettings, create_app
from pipeline.serving.client import PredictError, invoke_sagemaker
from pipeline.serving.model_source import ModelSourceError, resolve_model
from pipeline.serving.model_threads import ModelThreads
from tests.serving_helpers import image_bytes, png_header_claiming, write_model_dir
from training_code import inference, payloads

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its TestClient; the installed httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent
COLORS = [(200, 30, 40), (20, 200, 40), (20, 30, 240), (128, 128, 128)]
PAYLOAD_LIMIT = 16 * 1024
MAX_BATCH = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def model(model_dir: Path) -> inference.ServedModel:
    return inference.load_model(model_dir, optimize="eager", version="test-model/1")


@pytest.fixture(scope="module")
def client(model: inference.ServedModel) -> Iterator[TestClient]:
    settings = ServingSettings(max_payload_bytes=PAYLOAD_LIMIT, max_batch=MAX_BATCH, workers=2)
    with TestClient(create_app(model, settings), raise_server_exceptions=False) as test_client:
        yield test_client


def expected_reply(model: inference.ServedModel, payload: bytes) -> list[dict]:
    return inference.predict(model, payloads.ImagePayloads((payload,)))["predictions"]


def assert_same_predictions(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for got_one, expected_one in zip(got, expected, strict=True):
        assert [item["breed"] for item in got_one["top_k"]] == [
            item["breed"] for item in expected_one["top_k"]
        ]
        assert [item["probability"] for item in got_one["top_k"]] == pytest.approx(
            [item["probability"] for item in expected_one["top_k"]], abs=1e-4
        )


def b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode()


def test_ping_and_a_good_image(client: TestClient, model: inference.ServedModel) -> None:
    ping = client.get("/ping")
    assert ping.status_code == 200 and ping.json()["model_version"] == "test-model/1"
    payload = image_bytes(COLORS[1])
    reply = client.post("/invocations", content=payload, headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert_same_predictions(body["predictions"], expected_reply(model, payload))
    assert body["model_version"] == "test-model/1" and body["latency_ms"] > 0
    phases = dict(part.strip().split(";dur=") for part in reply.headers["server-timing"].split(","))
    assert list(phases) == ["body", "queue", "predict", "resume"] and float(phases["predict"]) > 0


class _Recording(torch.nn.Module):
    """Wraps a classifier: records each call, and can hold it until ``release`` is set."""

    def __init__(self, inner: torch.nn.Module, hold: threading.Event | None = None) -> None:
        super().__init__()
        self.inner, self.hold, self.calls = inner, hold, 0
        self.threads: list[tuple[str, int]] = []  # (thread name, its torch intra-op threads) per call

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.threads.append((threading.current_thread().name, torch.get_num_threads()))
        if self.hold is not None:
            assert self.hold.wait(timeout=20), "the second request never reached the shared build"
        return self.inner(images)


def test_a_request_beside_another_runs_the_shared_build(
    model: inference.ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request (alone) runs the all-cores build on the solo thread; one arriving while it runs
    gets the build for a share of the cores, on a shared thread limited to that share (model_threads).
    The first is held until the second has run, so the overlap is certain. Right after, a request alone
    still counts as under load; once ``LOAD_MEMORY_S`` has passed without overlap, it is solo again."""
    monkeypatch.setattr(serving_app, "LOAD_MEMORY_S", 0.5)
    second_ran = threading.Event()
    alone = _Recording(model.classifier, hold=second_ran)
    shared = _Recording(model.classifier)
    original_forward = shared.forward

    def shared_forward(images: torch.Tensor) -> torch.Tensor:
        result = original_forward(images)
        second_ran.set()
        return result

    shared.forward = shared_forward  # type: ignore[method-assign]
    twin = dataclasses.replace(model, classifier=alone, shared_classifier=shared)
    payloads = [image_bytes(COLORS[0]), image_bytes(COLORS[1])]

    async def two_requests() -> list[httpx.Response]:
        threads = ModelThreads(workers=2, shared_threads=1, solo_threads=2)
        transport = httpx.ASGITransport(app=create_app(twin, ServingSettings(workers=2), threads))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            first = asyncio.create_task(
                http.post("/invocations", content=payloads[0], headers={"Content-Type": "image/jpeg"})
            )
            while alone.calls == 0:  # the first is inside the all-cores build
                await asyncio.sleep(0.01)
            second = await http.post(
                "/invocations", content=payloads[1], headers={"Content-Type": "image/jpeg"}
            )
            replies = [await first, second]
            assert (alone.calls, shared.calls) == (1, 1)
            started = time.monotonic()
            replies.append(await http.post("/invocations", content=payloads[0], headers=jpeg))
            assert (alone.calls, shared.calls, time.monotonic() - started < 0.5) == (1, 2, True)
            await asyncio.sleep(0.6)
            replies.append(await http.post("/invocations", content=payloads[1], headers=jpeg))
            assert (alone.calls, shared.calls) == (2, 2)
            return replies

    jpeg = {"Content-Type": "image/jpeg"}
    replies = asyncio.run(asyncio.wait_for(two_requests(), timeout=60))
    assert [reply.status_code for reply in replies] == [200] * 4
    (alone_thread, alone_threads), (shared_thread, shared_threads) = alone.threads[0], shared.threads[0]
    assert alone_thread.startswith("dogpipe-solo") and alone_threads == 2
    assert shared_thread.startswith("dogpipe-shared") and shared_threads == 1
    assert alone.threads[1][0].startswith("dogpipe-solo")
    for reply, payload in zip(replies, payloads * 2, strict=True):
        assert_same_predictions(reply.json()["predictions"], expected_reply(model, payload))


def test_json_batch_answers_each_image(client: TestClient, model: inference.ServedModel) -> None:
    payloads = [image_bytes(color) for color in COLORS[:3]]
    reply = client.post(
        "/invocations",
        json={"instances": [b64(p) for p in payloads]},
        headers={"Accept": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    expected = [expected_reply(model, p)[0] for p in payloads]
    assert_same_predictions(reply.json()["predictions"], expected)


def _truncated_jpeg() -> bytes:
    return image_bytes(COLORS[0], size=(200, 150))[:400]


# name: (body, headers, status, words in the error)
BAD_HTTP_REQUESTS = {
    "empty body": (b"", {"Content-Type": "image/jpeg"}, 400, "empty"),
    "not an image": (b"GIF? no, text", {"Content-Type": "image/png"}, 400, "not a usable image"),
    "truncated jpeg": (_truncated_jpeg(), {"Content-Type": "image/jpeg"}, 400, "not a usable image"),
    "decompression bomb": (
        png_header_claiming(12_000, 12_000),
        {"Content-Type": "image/png"},
        400,
        "too large",
    ),
    "too many bytes": (b"\xff" * (PAYLOAD_LIMIT + 1), {"Content-Type": "image/jpeg"}, 413, "limit"),
    "wrong content type": (b"a,b", {"Content-Type": "text/csv"}, 415, "unsupported content type"),
    "no content type": (b"abc", {}, 415, "unsupported content type"),
    "bad base64": (b'{"image": "%%%"}', {"Content-Type": "application/json"}, 400, "base64"),
    "bad json": (b'{"instances": [', {"Content-Type": "application/json"}, 400, "not valid JSON"),
    "batch too large": (
        json.dumps({"instances": ["aGk="] * (MAX_BATCH + 1)}).encode(),
        {"Content-Type": "application/json"},
        413,
        "batch too large",
    ),
    "reply type not json": (
        image_bytes(COLORS[0]),
        {"Content-Type": "image/jpeg", "Accept": "text/csv"},
        406,
        "json",
    ),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", BAD_HTTP_REQUESTS, ids=list(BAD_HTTP_REQUESTS))
def test_every_bad_request_is_a_4xx_json_error(client: TestClient, case: str) -> None:
    body, headers, status, words = BAD_HTTP_REQUESTS[case]
    reply = client.post("/invocations", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert words.lower() in reply.json()["error"].lower()
    assert client.get("/ping").status_code == 200


def test_a_chunked_upload_is_cut_off_at_the_limit(client: TestClient) -> None:
    """No Content-Length: the body is counted as it streams."""

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"\xff" * (PAYLOAD_LIMIT // 4)

    reply = client.post("/invocations", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 413 and "limit" in reply.json()["error"]


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    assert client.get("/nothing-here").json()["error"].startswith("Not Found")
    assert client.get("/invocations").status_code == 405


# ----------------------------------------------------------------------------------- model sources


def test_a_model_tar_gz_is_unpacked_and_a_hostile_one_refused(tmp_path: Path, model_dir: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in model_dir.iterdir():
            tar.add(item, arcname=item.name)
    with ExitStack() as stack:
        source = resolve_model(str(archive), tmp_path / "root", stack)
        assert (source.model_dir / "model.pth").read_bytes() == (model_dir / "model.pth").read_bytes()
        assert source.version is None
    assert not source.model_dir.exists(), "the unpacked copy is removed when the server stops"

    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with ExitStack() as stack, pytest.raises(ModelSourceError, match="cannot unpack"):
        resolve_model(str(hostile), tmp_path / "root", stack)
    assert not (tmp_path / "escaped.txt").exists()


def test_a_registry_version_resolves_to_its_model_data(tmp_path: Path, model_dir: Path) -> None:
    root = tmp_path / "root"
    uri = "s3://dogpipe-local/models/job-1/output/model.tar.gz"
    target = ObjectStore(root).path_for(uri)
    target.parent.mkdir(parents=True)
    with tarfile.open(target, "w:gz") as tar:
        tar.add(model_dir / "model_info.json", arcname="model_info.json")
    LocalRegistry(root).register("dog-breeds", model_data_url=uri, image="local")
    with ExitStack() as stack:
        source = resolve_model("dog-breeds/1", root, stack)
        assert source.version == "dog-breeds/1"
        assert json.loads((source.model_dir / "model_info.json").read_text())["num_classes"] == 5
        with pytest.raises(ModelSourceError, match="dog-breeds/2"):
            resolve_model("dog-breeds/2", root, stack)
        with pytest.raises(ModelSourceError, match="no such file"):
            resolve_model("not/a/model", root, stack)


def test_the_installed_dogpipe_finds_the_inference_handlers_from_any_folder(tmp_path: Path) -> None:
    """The ``dogpipe`` console script runs from anywhere (sys.path[0] is the venv's bin/, not the repo):
    ``dogpipe serve`` imports ``training_code.inference``, so the install must provide it."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util; print(importlib.util.find_spec('training_code.inference').origin)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == REPO / "training_code" / "inference.py"


# ------------------------------------------------------------------------ the real server, under load


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A local config (its root in a temp folder, small limits) and that root."""
    folder = tmp_path_factory.mktemp("serving")
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"]["root"] = str(folder / "root")
    raw["deploy"].update({"max_payload_bytes": PAYLOAD_LIMIT, "max_batch": MAX_BATCH, "top_k": 3})
    config = folder / "local.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config, folder / "root"


@pytest.fixture(scope="module")
def live_server(model_dir: Path, served_root: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """``python -m pipeline.serving MODEL --port 0`` as the local engine starts it; yields (url, process)."""
    config, _ = served_root
    url_file = tmp_path_factory.mktemp("url") / "url"
    log = url_file.with_name("server.log")
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.serving",
                str(model_dir),
                "--port",
                "0",
                "--config",
                str(config),
                "--url-file",
                str(url_file),
                "--model-version",
                "dog-breeds/3",
            ],
            cwd=REPO,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while not url_file.exists():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield url_file.read_text().strip(), process
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_mixed_load_gets_no_5xx_and_right_answers(live_server, model: inference.ServedModel) -> None:
    url, process = live_server
    good = {f"image {i}": image_bytes(color) for i, color in enumerate(COLORS)}
    expected = {name: expected_reply(model, payload) for name, payload in good.items()}
    bad = [
        (b"", "image/jpeg"),
        (b"not an image", "image/jpeg"),
        (_truncated_jpeg(), "image/jpeg"),
        (png_header_claiming(12_000, 12_000), "image/png"),
        (b"\xff" * (PAYLOAD_LIMIT + 10), "image/jpeg"),
        (b"x", "text/plain"),
        (b'{"image": "%"}', "application/json"),
        (b"{", "application/json"),
        (json.dumps({"instances": ["aGk="] * (MAX_BATCH + 1)}).encode(), "application/json"),
    ]
    requests_to_send = []
    for index in range(200):
        if index % 3 == 0:
            requests_to_send.append(("bad", *bad[index // 3 % len(bad)]))
        else:
            name = f"image {index % len(good)}"
            requests_to_send.append((name, good[name], "image/jpeg"))
    deadline = time.monotonic() + 30
    statuses: Counter[int] = Counter()
    wrong: list[str] = []

    with httpx.Client(base_url=url, timeout=20) as http:

        def send(request: tuple[str, bytes, str]) -> None:
            name, body, content_type = request
            if time.monotonic() > deadline:
                return
            reply = http.post("/invocations", content=body, headers={"Content-Type": content_type})
            statuses[reply.status_code] += 1
            if name != "bad":
                try:
                    assert_same_predictions(reply.json()["predictions"], expected[name])
                except (AssertionError, KeyError) as error:
                    wrong.append(f"{name}: {reply.status_code} {reply.text[:200]} {error}")
            elif not 400 <= reply.status_code < 500 or "error" not in reply.json():
                wrong.append(f"bad request answered {reply.status_code}: {reply.text[:200]}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send, requests_to_send))
        assert http.get("/ping").status_code == 200

    answered = sum(statuses.values())
    assert answered >= 50, f"only {answered} requests answered in 30 s"
    assert not [status for status in statuses if status >= 500], statuses
    assert not wrong, wrong[:5]
    assert process.poll() is None


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_predict_prints_the_top_k_of_a_local_endpoint(
    live_server, served_root, model, tmp_path: Path
) -> None:
    url, process = live_server
    config, root = served_root
    write_endpoint(root, {"name": "dogpipe-staging", "url": url, "pid": process.pid})
    image = tmp_path / "dog.png"
    image.write_bytes(image_bytes(COLORS[2], fmt="PNG"))
    result = CliRunner().invoke(
        cli, ["predict", str(image), "--endpoint", "dogpipe-staging", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    top = expected_reply(model, image.read_bytes())[0]["top_k"]
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == [item["breed"] for item in top]
    assert "model dog-breeds/3" in lines[-1]

    not_image = tmp_path / "notes.txt"
    not_image.write_text("woof")
    refused = CliRunner().invoke(
        cli, ["predict", str(not_image), "--endpoint", "dogpipe-staging", "--config", str(config)]
    )
    assert refused.exit_code == 1 and "400" in refused.output and "not a usable image" in refused.output
    unknown = CliRunner().invoke(cli, ["predict", str(image), "--endpoint", "nope", "--config", str(config)])
    assert unknown.exit_code == 1 and "dogpipe-staging" in unknown.output


# ------------------------------------------------------------------------------------- SageMaker side


def _runtime():
    import boto3

    return boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_invoke_endpoint_request_and_model_error() -> None:
    runtime = _runtime()
    payload = image_bytes(COLORS[0])
    reply = {"predictions": [{"top_k": [{"breed": "004.Akita", "probability": 0.9}]}], "model_version": "v"}
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": io.BytesIO(json.dumps(reply).encode()), "ContentType": "application/json"},
            {
                "EndpointName": "dogpipe-prod",
                "ContentType": "image/jpeg",
                "Accept": "application/json",
                "Body": payload,
            },
        )
        assert invoke_sagemaker(runtime, "dogpipe-prod", payload, "image/jpeg") == reply
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message='Received client error (400) from primary: {"error": "not a usable image"}',
            http_status_code=424,
        )
        with pytest.raises(PredictError, match=r"refused the image \(400\): not a usable image$"):
            invoke_sagemaker(runtime, "dogpipe-prod", b"junk", "application/x-image")
        stub.add_client_error(  # the container's server crashed: its HTML page, not the image, is at fault
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received server error (500) from primary with message <html>...</html>",
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": HTML_500},
        )
        with pytest.raises(PredictError) as failed:
            invoke_sagemaker(runtime, "dogpipe-prod", payload, "image/jpeg")
        assert str(failed.value) == (
            "endpoint dogpipe-prod failed (500, a server error, not the image): 500 Internal Server Error"
        )


HTML_500 = (
    "<!DOCTYPE html>\n<html>\n<head><title>500 Internal Server Error</title></head>\n"
    "<body><h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n"
    + "<p>trace</p>\n" * 50
    + "</body></html>\n"
)


def test_predict_against_an_html_500_prints_one_line_blaming_the_endpoint(tmp_path: Path) -> None:
    """Issue 25 item 7: a proxy or crashed server answering an HTML 500 is one stderr line, exit 1,
    and says the server failed (the image is not at fault)."""
    import http.server

    class Broken(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = HTML_500.encode()
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    raw["local"] = {"root": str(tmp_path / "engine")}
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(raw))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    write_endpoint(tmp_path / "engine", {"name": "dogpipe-staging", "url": url, "pid": 0})
    image = tmp_path / "dog.jpg"
    image.write_bytes(image_bytes(COLORS[0]))
    try:
        result = CliRunner().invoke(
            cli, ["predict", str(image), "--endpoint", "dogpipe-staging", "--config", str(config)]
        )
    finally:
        server.shutdown()
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {url}/invocations failed (500, a server error, not the image): 500 Internal Server Error"
    ]


def test_predict_on_sagemaker_uses_invoke_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's invoke_endpoint fails on binary bodies (it JSON-encodes the raw bytes), so the
    command's AWS branch runs against a stubbed sagemaker-runtime client instead."""
    from pipeline.sagemaker.aws import AwsClients

    runtime = _runtime()
    image = tmp_path / "dog.jpg"
    image.write_bytes(image_bytes(COLORS[1]))
    reply = {
        "predictions": [{"top_k": [{"breed": "002.Afghan_hound", "probability": 0.75}]}],
        "model_version": "4",
    }
    monkeypatch.setattr(
        AwsClients, "client", lambda self, service: runtime if service == "sagemaker-runtime" else None
    )
    with Stubber(runtime) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": io.BytesIO(json.dumps(reply).encode()), "ContentType": "application/json"},
            {
                "EndpointName": "dogpipe-prod",
                "ContentType": "image/jpeg",
                "Accept": "application/json",
                "Body": image.read_bytes(),
            },
        )
        result = CliRunner().invoke(
            cli,
            [
                "predict",
                str(image),
                "--endpoint",
                "dogpipe-prod",
                "--config",
                str(REPO / "config" / "pipeline.yaml"),
            ],
        )
        stub.assert_no_pending_responses()
    assert result.exit_code == 0, result.output
    assert "002.Afghan_hound" in result.output and "0.7500" in result.output and "model 4" in result.output
