"""The model archive served by AWS's PyTorch inference toolkit answers as ``dogpipe serve`` does.

``sagemaker-pytorch-inference`` 2.0.25's handler service runs ``code/inference.py`` inside TorchServe
0.12's worker (``torchserve_worker.py`` drives it in a fresh process, as the image does). Every request,
good or bad, is also sent to ``dogpipe serve``'s application; status, content type and JSON body must
match, so an error that reaches the client only as a reason phrase, or a traceback in a body, fails here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from pipeline.serving.app import ServingSettings, create_app
from tests.serving_helpers import image_bytes, png_header_claiming, write_model_dir
from training_code import inference, package_serving_code, payloads
from training_code.launch import read_requirements

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

WORKER = Path(__file__).with_name("torchserve_worker.py")
JPEG, PNG, JSON_TYPE = "image/jpeg", "image/png", "application/json"


def _b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode()


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


GOOD = image_bytes((200, 30, 40))
# name: (body, headers, status)
REQUESTS: dict[str, tuple[bytes, dict[str, str], int]] = {
    "jpeg": (GOOD, {"Content-Type": JPEG}, 200),
    "png, accept anything": (
        image_bytes((20, 200, 40), fmt="PNG"),
        {"Content-Type": PNG, "Accept": "*/*"},
        200,
    ),
    "json batch": (
        _json({"instances": [_b64(GOOD), {"image": _b64(image_bytes((9, 9, 200)))}]}),
        {"Content-Type": JSON_TYPE},
        200,
    ),
    "json with charset": (
        _json({"image": _b64(GOOD)}),
        {"Content-Type": "application/json; charset=utf-8"},
        200,
    ),
    "empty body": (b"", {"Content-Type": JPEG}, 400),
    "not an image": (b"hello, I am text", {"Content-Type": JPEG}, 400),
    "truncated jpeg": (image_bytes((1, 2, 3), size=(200, 150))[:400], {"Content-Type": JPEG}, 400),
    "decompression bomb": (png_header_claiming(12_000, 12_000), {"Content-Type": PNG}, 400),
    "sixteen 9000 px pngs": (
        _json({"instances": [_b64(png_header_claiming(9000, 9000))] * 16}),
        {"Content-Type": JSON_TYPE},
        413,
    ),
    "csv": (b"a,b\n1,2\n", {"Content-Type": "text/csv"}, 415),
    "no content type": (b"abc", {}, 415),
    "reply type csv": (GOOD, {"Content-Type": JPEG, "Accept": "text/csv"}, 406),
    "bad base64": (_json({"image": "not*base64!"}), {"Content-Type": JSON_TYPE}, 400),
    "bad json": (b'{"image": ', {"Content-Type": JSON_TYPE}, 400),
    "json not utf-8": (b'{"image": "\xff"}', {"Content-Type": JSON_TYPE}, 400),
    "json nested 200,000 deep": (b"[" * 200_000 + b"]" * 200_000, {"Content-Type": JSON_TYPE}, 400),
    "batch too large": (_json({"instances": ["aGk="] * 17}), {"Content-Type": JSON_TYPE}, 413),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory as training leaves it in ``model.tar.gz``: weights, info and ``code/``."""
    directory = write_model_dir(tmp_path_factory.mktemp("ml") / "model")
    package_serving_code.write_serving_code(directory / "code")
    return directory


# Requests outside the comparison with dogpipe serve: name -> (body, headers, endpoint settings).
SPECIAL = {
    "a bug": (GOOD, {"Content-Type": JPEG}, {"DOGPIPE_MAX_BATCH": "0"}),  # every request fails inside
}


def run_worker(model_dir: Path, requests: list[dict[str, Any]]) -> tuple[list, str]:
    """Replies of a TorchServe worker process serving ``model_dir`` with the SageMaker handler service,
    and its log (pip's output included)."""
    requests_file = model_dir.parent / "requests.json"
    requests_file.write_text(json.dumps([{**request, "body": _b64(request["body"])} for request in requests]))
    environment = {
        **os.environ,
        "PYTHONPATH": str(model_dir / "code"),  # what the toolkit's torchserve.py sets
        "SAGEMAKER_BASE_DIR": str(model_dir.parent),
        "DOGPIPE_OPTIMIZE": "eager",
    }
    result = subprocess.run(
        [sys.executable, str(WORKER), str(model_dir), str(requests_file)],
        env=environment,
        cwd=model_dir.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    *log, replies = result.stdout.strip().splitlines()
    return json.loads(replies), "\n".join(log) + result.stderr


@pytest.fixture(scope="module")
def toolkit_run(model_dir: Path) -> tuple[dict[str, dict], str]:
    """One worker answers every request (one model load, one start-up install)."""
    requests = [{"body": body, "headers": headers} for body, headers, _ in REQUESTS.values()]
    requests += [{"body": body, "headers": headers, "env": env} for body, headers, env in SPECIAL.values()]
    replies, log = run_worker(model_dir, requests)
    return dict(zip([*REQUESTS, *SPECIAL], replies, strict=True)), log


@pytest.fixture(scope="module")
def toolkit_replies(toolkit_run: tuple[dict[str, dict], str]) -> dict[str, dict]:
    return toolkit_run[0]


def test_the_endpoint_installs_the_serving_requirements_only(model_dir: Path, toolkit_run: tuple) -> None:
    """The toolkit's start-up pip install ran on ``code/requirements.txt`` and succeeded (the worker
    would have stopped otherwise); the file names no training-only package."""
    assert read_requirements(model_dir / "code" / "requirements.txt") == ["torchdata==0.11.0"]
    assert "torchdata==0.11.0" in toolkit_run[1]  # pip's own account of the requirement


@pytest.fixture(scope="module")
def local_client(model_dir: Path):
    model = inference.load_model(model_dir, optimize="eager")
    with TestClient(create_app(model, ServingSettings()), raise_server_exceptions=False) as client:
        yield client


def _ranking(document: dict) -> list[list[tuple[str, float]]]:
    return [
        [(item["breed"], item["probability"]) for item in one["top_k"]] for one in document["predictions"]
    ]


@pytest.mark.parametrize("case", REQUESTS, ids=list(REQUESTS))
def test_the_toolkit_answers_as_dogpipe_serve(
    case: str, toolkit_replies: dict, local_client: TestClient
) -> None:
    body, headers, status = REQUESTS[case]
    toolkit = toolkit_replies[case]
    local = local_client.post("/invocations", content=body, headers=headers)
    assert (toolkit["status"], local.status_code) == (status, status), toolkit["body"][:2000]
    assert toolkit["content_type"] == local.headers["content-type"] == JSON_TYPE
    reply = json.loads(toolkit["body"])  # a traceback is not JSON
    if status == 200:
        expected = local.json()
        assert reply["model_version"] == expected["model_version"] and reply["latency_ms"] > 0
        for got, want in zip(_ranking(reply), _ranking(expected), strict=True):
            assert [breed for breed, _ in got] == [breed for breed, _ in want]
            assert [p for _, p in got] == pytest.approx([p for _, p in want], abs=1e-5)
    else:
        assert reply == local.json() and set(reply) == {"error"}
        assert "Traceback" not in toolkit["body"] and toolkit["phrase"]


def test_a_bug_is_a_json_500_with_the_traceback_only_in_the_log(toolkit_run: tuple) -> None:
    replies, log = toolkit_run
    assert replies["a bug"]["status"] == 500 and replies["a bug"]["content_type"] == JSON_TYPE
    assert json.loads(replies["a bug"]["body"]) == {"error": payloads.INTERNAL_ERROR}
    assert "Traceback" in log and "DOGPIPE_MAX_BATCH" in log
