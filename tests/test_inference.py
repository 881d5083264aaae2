"""The SageMaker serving handlers in ``training_code/inference.py``: answers, errors, container contract."""

from __future__ import annotations

import ast
import base64
import functools
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.serving_helpers import (
    CLASSES,
    IMAGE_SIZE,
    MEAN,
    STD,
    image_bytes,
    png_header_claiming,
    write_model_dir,
)
from training_code import dogdata, inference, models, package_serving_code, payloads
from training_code.launch import read_requirements

COLORS = [(200, 30, 40), (20, 200, 40), (20, 30, 240)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def served(model_dir: Path) -> inference.ServedModel:
    return inference.model_fn(str(model_dir))


@functools.cache
def _eager_network(model_dir: Path) -> torch.nn.Module:
    return models.load_trained_model(model_dir)[0]


def reference_top_k(model_dir: Path, payload: bytes, k: int = 3) -> list[tuple[str, float]]:
    """What the model should answer, computed without inference.py: decode, normalise, eager forward."""
    network = _eager_network(model_dir)
    pixels = dogdata.decode_image(payload, IMAGE_SIZE).float().div(255)
    pixels = (pixels - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    with torch.no_grad():
        probabilities = torch.softmax(network(pixels.unsqueeze(0)), dim=1)[0]
    values, indices = probabilities.topk(k)
    return [(CLASSES[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]


def answer(model: inference.ServedModel, body: bytes | str, content_type: str) -> dict:
    return json.loads(inference.answer(model, body, content_type, "application/json"))


def as_pairs(prediction: dict) -> list[tuple[str, float]]:
    return [(item["breed"], item["probability"]) for item in prediction["top_k"]]


def assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [breed for breed, _ in got] == [breed for breed, _ in expected]
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], abs=1e-4)


@pytest.mark.parametrize(
    "fmt, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("PNG", "application/x-image")]
)
def test_an_image_gets_the_models_top_k_breeds(
    served: inference.ServedModel, model_dir: Path, fmt: str, content_type: str
) -> None:
    payload = image_bytes(COLORS[0], fmt=fmt)
    reply = answer(served, payload, content_type)
    assert len(reply["predictions"]) == 1
    assert_same_ranking(as_pairs(reply["predictions"][0]), reference_top_k(model_dir, payload))
    assert reply["model_version"].startswith("sha256:") and reply["latency_ms"] > 0


def test_the_served_model_is_optimized_and_agrees_with_eager(
    served: inference.ServedModel, model_dir: Path
) -> None:
    traced = served
    eager = inference.load_model(model_dir, optimize="eager")
    assert (traced.optimized, eager.optimized) == (inference.DEFAULT_OPTIMIZE, "eager")
    batch = torch.stack([traced.preprocess(image_bytes(color)) for color in COLORS])
    assert torch.allclose(traced.probabilities(batch), eager.probabilities(batch), atol=1e-5)


@pytest.fixture
def two_threads() -> object:
    """torch at 2 intra-op threads for the test (a server's all-cores setting on a 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
@pytest.mark.usefixtures("two_threads")
def test_a_server_load_adds_a_one_thread_build_that_agrees(model_dir: Path) -> None:
    served = inference.load_model(model_dir, shared_threads=1)
    assert torch.get_num_threads() == 2  # the build under one thread left the setting as it was
    assert served.shared_classifier is not None and served.shared_classifier is not served.classifier
    eager = inference.load_model(model_dir, optimize="eager")
    batch = torch.stack([served.preprocess(image_bytes(color)) for color in COLORS])
    expected = eager.probabilities(batch)
    assert torch.allclose(served.probabilities(batch, shared=True), expected, atol=1e-5)
    assert torch.allclose(served.probabilities(batch), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.usefixtures("two_threads")
def test_modes_that_follow_the_callers_threads_get_one_build(model_dir: Path) -> None:
    assert inference.load_model(model_dir, optimize="trace", shared_threads=1).shared_classifier is None
    assert inference.load_model(model_dir, shared_threads=2).shared_classifier is None  # not fewer threads


def test_json_single_and_batch_give_the_per_image_answers(served: inference.ServedModel) -> None:
    payloads = [image_bytes(color) for color in COLORS]
    singles = [answer(served, payload, "image/jpeg")["predictions"][0] for payload in payloads]
    encoded = [base64.b64encode(payload).decode() for payload in payloads]
    one = answer(served, json.dumps({"image": encoded[1]}), "application/json")
    batch = answer(
        served,
        json.dumps({"instances": [encoded[0], {"image": encoded[1]}, encoded[2]]}).encode(),
        "application/json; charset=utf-8",
    )
    assert_same_ranking(as_pairs(one["predictions"][0]), as_pairs(singles[1]))
    assert len(batch["predictions"]) == len(singles)
    for got, single in zip(batch["predictions"], singles, strict=True):
        assert_same_ranking(as_pairs(got), as_pairs(single))
    assert len({as_pairs(single)[0] for single in singles}) > 1, "images should not all look alike"


def _truncated_jpeg() -> bytes:
    return image_bytes(COLORS[0], size=(200, 150))[:400]


BAD_REQUESTS = {
    "empty body": (b"", "image/jpeg", 400, "empty"),
    "not an image": (b"hello, I am text", "image/jpeg", 400, "not a usable image"),
    "truncated jpeg": (_truncated_jpeg(), "image/jpeg", 400, "not a usable image"),
    "bomb over the limit": (png_header_claiming(10_000, 10_000), "image/png", 400, "too large"),
    "bomb over twice the limit": (png_header_claiming(30_000, 30_000), "image/png", 400, "too large"),
    "wrong content type": (b"a,b\n1,2\n", "text/csv", 415, "unsupported content type"),
    "bad base64": (json.dumps({"image": "not*base64!"}), "application/json", 400, "base64"),
    "bad json": (b'{"image": ', "application/json", 400, "not valid JSON"),
    "json of the wrong shape": (b'{"picture": "x"}', "application/json", 400, "instances"),
    "empty batch": (b'{"instances": []}', "application/json", 400, "non-empty"),
    "batch item not a string": (b'{"instances": [3]}', "application/json", 400, "instances[0]"),
    "batch too large": (
        json.dumps({"instances": ["aGk="] * (payloads.DEFAULT_MAX_BATCH + 1)}),
        "application/json",
        413,
        "batch too large",
    ),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_raise_a_request_error_naming_the_problem(
    served: inference.ServedModel, case: str
) -> None:
    body, content_type, status, words = BAD_REQUESTS[case]
    with pytest.raises(payloads.RequestError) as raised:
        answer(served, body, content_type)
    assert raised.value.status_code == status
    assert words in raised.value.message


class RecordingContext:
    """What ``transform_fn`` uses of TorchServe's context (tests/toolkit drives the real one)."""

    def __init__(self) -> None:
        self.status: tuple[int, str] | None = None

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status = (code, phrase)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_transform_fn_answers_a_bad_request_with_its_status_and_json(
    served: inference.ServedModel, case: str
) -> None:
    body, content_type, status, words = BAD_REQUESTS[case]
    context = RecordingContext()
    reply, media_type = inference.transform_fn(served, body, content_type, "application/json", context)
    assert media_type == "application/json" and context.status is not None
    assert context.status[0] == status and words in json.loads(reply)["error"]


def test_transform_fn_answers_a_bug_with_a_json_500_and_logs_it(
    served: inference.ServedModel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(inference, "predict", broken)
    context = RecordingContext()
    reply, _ = inference.transform_fn(served, image_bytes(COLORS[0]), "image/jpeg", "*/*", context)
    assert context.status == (500, "Internal Server Error")
    assert json.loads(reply) == {"error": payloads.INTERNAL_ERROR} and "secret" not in reply
    assert "secret internals" in caplog.text


def test_a_reply_type_other_than_json_is_406(served: inference.ServedModel) -> None:
    payload = image_bytes(COLORS[0])
    with pytest.raises(payloads.NotAcceptable):
        inference.answer(served, payload, "image/jpeg", "text/csv")
    assert json.loads(inference.answer(served, payload, "image/jpeg", "text/csv, application/json;q=0.5"))


def test_limits_come_from_the_container_environment(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOGPIPE_TOP_K", "2")
    monkeypatch.setenv("DOGPIPE_MAX_BATCH", "1")
    monkeypatch.setenv("DOGPIPE_MODEL_VERSION", "dogpipe-dog-breeds/7")
    monkeypatch.setenv("DOGPIPE_OPTIMIZE", "eager")
    model = inference.model_fn(str(model_dir))
    reply = answer(model, image_bytes(COLORS[0]), "image/jpeg")
    assert len(reply["predictions"][0]["top_k"]) == 2
    assert reply["model_version"] == "dogpipe-dog-breeds/7" and model.optimized == "eager"
    two = json.dumps({"instances": [base64.b64encode(image_bytes(c)).decode() for c in COLORS[:2]]})
    with pytest.raises(payloads.PayloadTooLarge):
        answer(model, two, "application/json")
    monkeypatch.setenv("DOGPIPE_TOP_K", "three")
    with pytest.raises(ValueError, match="DOGPIPE_TOP_K"):
        inference.model_fn(str(model_dir))


def test_handler_signatures_fit_the_sagemaker_toolkit() -> None:
    """The toolkit passes its context to a handler with one parameter more than the standard, and
    refuses a module that has ``transform_fn`` beside ``input_fn``/``predict_fn``/``output_fn``."""
    counts = {
        name: len(inspect.signature(getattr(inference, name)).parameters)
        for name in ("model_fn", "transform_fn")
    }
    assert counts == {"model_fn": 1, "transform_fn": 5}
    assert not {"input_fn", "predict_fn", "output_fn"} & set(dir(inference))


def test_a_model_dir_without_preprocessing_numbers_is_refused(tmp_path: Path, model_dir: Path) -> None:
    broken = Path(shutil.copytree(model_dir, tmp_path / "model"))
    info = json.loads((broken / models.MODEL_INFO_FILE).read_text())
    del info["mean"]
    (broken / models.MODEL_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(inference.ModelLoadError, match="missing mean"):
        inference.model_fn(str(broken))


class _Payload:
    """Anything but a state dict: ``weights_only`` loading refuses to unpickle it."""


@pytest.mark.parametrize(
    "breakage, words",
    [
        ("pickle", "cannot load the model: model.pth is not a tensors-only state dict"),
        ("image_size", "image_size 1000000000 is not a whole number of pixels in 16..1024"),
        ("info", "model_info.json: cannot read"),
    ],
)
def test_a_broken_model_dir_is_one_line_naming_the_problem(
    tmp_path: Path, model_dir: Path, breakage: str, words: str
) -> None:
    broken = Path(shutil.copytree(model_dir, tmp_path / "model"))
    info_path = broken / models.MODEL_INFO_FILE
    if breakage == "pickle":
        torch.save({"weights": _Payload()}, broken / models.MODEL_WEIGHTS_FILE)
    elif breakage == "image_size":
        info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "image_size": 10**9}))
    else:
        info_path.write_text("{not json")
    with pytest.raises(inference.ModelLoadError) as raised:
        inference.load_model(broken, optimize="eager")
    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_inference_runs_from_model_tar_code_dir_like_the_container(tmp_path: Path, model_dir: Path) -> None:
    """In the container ``code/`` is on sys.path and inference.py is a top-level module."""
    code = tmp_path / "code"
    package_serving_code.write_serving_code(code)
    payload = tmp_path / "dog.jpg"
    payload.write_bytes(image_bytes(COLORS[2]))
    script = (
        "import sys, inference\n"
        "assert 'training_code' not in sys.modules\n"
        "model = inference.model_fn(sys.argv[1])\n"
        "print(inference.answer(model, open(sys.argv[2], 'rb').read(), 'image/jpeg', '*/*'))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["DOGPIPE_OPTIMIZE"] = "eager"  # tracing is tested above; here only the imports matter
    result = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), str(payload)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    reply = json.loads(result.stdout.strip().splitlines()[-1])
    assert_same_ranking(as_pairs(reply["predictions"][0]), reference_top_k(model_dir, payload.read_bytes()))


# What the SageMaker PyTorch inference images (2.5) ship, by import name: code/ may import these freely.
IMAGE_PACKAGES = {"torch", "torchvision", "numpy", "PIL", "sagemaker_inference"}
TRAINING_ONLY = ("smdebug", "protobuf", "pandas", "psutil", "setuptools")


def _third_party_imports(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


def test_the_model_archive_installs_only_what_serving_imports(tmp_path: Path) -> None:
    """``code/requirements.txt`` is the serving file: every third-party import of the copied modules
    is in the image or in it, and no training-only pin (smdebug, protobuf<=3.20.3, ...) is."""
    copied = package_serving_code.write_serving_code(tmp_path / "code")
    requirements = read_requirements(tmp_path / "code" / "requirements.txt")
    names = {re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0] for line in requirements}
    assert names == {"torchdata"}
    siblings = {name.removesuffix(".py") for name in copied}
    imported = set().union(
        *(_third_party_imports(tmp_path / "code" / name) for name in copied if name.endswith(".py"))
    )
    assert imported - siblings - IMAGE_PACKAGES <= names, "serving imports a package the endpoint lacks"
    assert not any(name in names for name in TRAINING_ONLY)
