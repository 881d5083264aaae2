"""SageMaker PyTorch serving handlers: ``model_fn`` and ``transform_fn``.

The SageMaker PyTorch inference container imports this file from ``model.tar.gz/code/`` (training
copies it there with the modules it imports), and ``dogpipe serve`` (``pipeline/serving``) calls the
very same functions, so an endpoint answers the same on SageMaker and on this machine.

Requests: one image (``image/jpeg``, ``image/png``, ``application/x-image``) or JSON
(``{"image": "<base64>"}`` or ``{"instances": ["<base64>", {"image": "<base64>"}, ...]}``).
Response (``application/json``)::

    {"predictions": [{"top_k": [{"breed": "...", "probability": 0.93}, ...]}, ...],
     "model_version": "...", "latency_ms": 12.5}

Every bad request is a 4xx with the body ``{"error": "..."}`` (``payloads`` checks them). The toolkit's
own error path would send ``"{message}\n{traceback}"`` with no content type, so the handlers are one
``transform_fn`` that takes the toolkit's ``context`` and sets the status itself (see its docstring).

The toolkit calls each handler with exactly the standard arguments, so tunables come from the
container environment (set by the Deploy step): ``DOGPIPE_TOP_K``, ``DOGPIPE_MAX_BATCH``,
``DOGPIPE_MAX_PIXELS``, ``DOGPIPE_MODEL_VERSION``, ``DOGPIPE_OPTIMIZE`` (``onednn``, ``compile``,
``trace`` or ``eager``; see ``model_optimize``). ``dogpipe serve`` passes the same settings as
arguments to :func:`load_model` and :func:`payloads.parse_request`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import torch
from torch import nn

if __package__:  # imported as training_code.inference (tests, dogpipe serve)
    from . import dogdata, model_optimize, models, payloads
else:  # inside the serving container: code/ is on sys.path
    import dogdata  # type: ignore[no-redef]
    import model_optimize  # type: ignore[no-redef]
    import models  # type: ignore[no-redef]
    import payloads  # type: ignore[no-redef]

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 3
# model_info.json's image_size must lie in this range (the training sizes are 64-299 px).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
OPTIMIZE_MODES = model_optimize.OPTIMIZE_MODES
DEFAULT_OPTIMIZE = model_optimize.DEFAULT_OPTIMIZE


class NormalizedClassifier(nn.Module):
    """uint8 ``N×3×S×S`` images in, class probabilities out.

    Normalisation (the training set's mean/std, the same ``x / 255 - mean) / std`` the training loader
    applies) and the softmax live inside the module so that tracing and freezing fuse them with the
    network, and a request's tensor never needs a second pass in Python.
    """

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = dogdata.normalize(images, self.mean, self.std)
        logits = self.network(pixels.contiguous(memory_format=torch.channels_last))
        return torch.softmax(logits.float(), dim=1)


@dataclass
class ServedModel:
    """The loaded classifier with everything a prediction needs: the network (optimised by
    ``model_optimize`` when that was exact), the class names, the image size, and the reply settings.

    ``shared_classifier``, when present, is the same network built for fewer threads, for requests that
    run side by side with others (``model_optimize.THREAD_BOUND_MODES`` keep their build's threads, so a
    server needs one build for a request alone, using every core, and one for requests sharing them)."""

    classifier: nn.Module
    classes: list[str]
    image_size: int
    version: str
    top_k: int = DEFAULT_TOP_K
    optimized: str = "eager"
    info: dict[str, Any] = field(default_factory=dict)
    shared_classifier: nn.Module | None = None

    def preprocess(self, payload: bytes) -> torch.Tensor:
        """One encoded image → a uint8 ``3×S×S`` tensor, decoded exactly as evaluation decodes."""
        return decode_payload(payload, self.image_size)

    def probabilities(self, images: torch.Tensor, *, shared: bool = False) -> torch.Tensor:
        """Class probabilities for a uint8 ``N×3×S×S`` batch; ``shared``: other requests are running,
        so use the build for fewer threads when there is one."""
        classifier = (
            self.shared_classifier if shared and self.shared_classifier is not None else self.classifier
        )
        with torch.inference_mode():
            return classifier(images)

    def top_k_of(self, probabilities: torch.Tensor) -> list[dict[str, Any]]:
        """Per image, the ``top_k`` breeds with their probabilities, most likely first."""
        k = min(self.top_k, probabilities.shape[1])
        values, indices = probabilities.topk(k, dim=1)
        return [
            {
                "top_k": [
                    {"breed": self.classes[index], "probability": round(value, 6)}
                    for value, index in zip(row_values, row_indices, strict=True)
                ]
            }
            for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"environment variable {name}={raw!r} must be at least 1")
    return value


def decode_payload(payload: bytes, image_size: int) -> torch.Tensor:
    """Decode through ``dogdata.decode_image`` (the one implementation evaluation also uses), mapping
    its errors to a 400 that names the problem. ``payloads.parse_request`` has already held the image's
    header to the pixel budgets."""
    try:
        return dogdata.decode_image(payload, image_size)
    except dogdata.ImageDecodeError as error:
        raise payloads.RequestError(f"not a usable image: {error}") from None


def _weights_version(model_dir: Path) -> str:
    """A stable version when none is given: the first 12 hex digits of ``model.pth``'s sha256."""
    return "sha256:" + models.sha256_of(model_dir / models.MODEL_WEIGHTS_FILE)[:12]


class ModelLoadError(ValueError):
    """``model_dir`` holds no servable model; the one-line message says which file and why."""


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _check_info(info: dict[str, Any], info_path: Path) -> None:
    """``model_info.json``'s serving numbers, checked before they size anything (an absurd
    ``image_size`` would otherwise be traced and allocated at load)."""
    missing = [key for key in ("classes", "num_classes", "image_size", "mean", "std") if key not in info]
    if missing:
        raise ModelLoadError(f"{info_path}: missing {', '.join(missing)}")
    size = info["image_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ModelLoadError(
            f"{info_path}: image_size {size!r} is not a whole number of pixels in "
            f"{MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}"
        )
    if not isinstance(info["classes"], list) or len(info["classes"]) != info["num_classes"]:
        raise ModelLoadError(f"{info_path}: classes must list num_classes ({info['num_classes']!r}) names")
    for key in ("mean", "std"):
        values = info[key]
        if not (
            isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)
        ):
            raise ModelLoadError(f"{info_path}: {key} must be three numbers, got {values!r}")


def _load_checked(model_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """``models.load_trained_model`` with every failure as one line naming the model directory: a
    ``model.pth`` that is a pickle (``weights_only`` refuses it), a broken ``model_info.json``, weights
    of another architecture."""
    info_path = model_dir / models.MODEL_INFO_FILE
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{info_path}: cannot read: {_first_line(error)}") from None
    if not isinstance(info, dict):
        raise ModelLoadError(f"{info_path}: expected a JSON object")
    _check_info(info, info_path)
    try:
        network, info = models.load_trained_model(model_dir)
    except Exception as error:
        if isinstance(error.__cause__, pickle.UnpicklingError):  # torch's message is 20 lines of advice
            reason = f"{models.MODEL_WEIGHTS_FILE} is not a tensors-only state dict (refused unopened)"
        else:
            reason = _first_line(error)
        raise ModelLoadError(f"{model_dir}: cannot load the model: {reason}") from None
    return network, info


def load_model(
    model_dir: str | Path,
    *,
    top_k: int = DEFAULT_TOP_K,
    version: str | None = None,
    optimize: str = DEFAULT_OPTIMIZE,
    shared_threads: int | None = None,
) -> ServedModel:
    """Load ``model.pth`` + ``model_info.json`` from ``model_dir`` (``weights_only=True``, through
    ``models.load_trained_model``) and prepare it for serving with torch's current thread count.

    ``shared_threads``: also build a ``shared_classifier`` for that many threads, when it is fewer and
    the served mode keeps its build's threads (a server running several requests at once)."""
    model_dir = Path(model_dir)
    network, info = _load_checked(model_dir)
    classes, image_size = [str(name) for name in info["classes"]], int(info["image_size"])
    normalized = NormalizedClassifier(network, info["mean"], info["std"])
    classifier, used = model_optimize.optimize_classifier(normalized, image_size, optimize)
    shared = None
    if (
        used in model_optimize.THREAD_BOUND_MODES
        and shared_threads
        and shared_threads < torch.get_num_threads()
    ):
        shared, shared_used = model_optimize.optimize_classifier(
            normalized, image_size, used, threads=shared_threads
        )
        if shared_used != used:  # it fell back: one build serves every request, as without the option
            log.warning("no %s build for %d thread(s); every request uses the %d-thread one", used,
                        shared_threads, torch.get_num_threads())  # fmt: skip
            shared = None
    return ServedModel(
        classifier=classifier,
        classes=classes,
        image_size=image_size,
        version=version or str(info.get("version") or _weights_version(model_dir)),
        top_k=top_k,
        optimized=used,
        info=info,
        shared_classifier=shared,
    )


def predict(model: ServedModel, images: payloads.ImagePayloads, *, shared: bool = False) -> dict[str, Any]:
    """Decode, classify and rank one request's images; the reply before serialisation. ``shared``: other
    requests run at the same time (see :meth:`ServedModel.probabilities`)."""
    started = time.perf_counter()
    batch = torch.stack([model.preprocess(payload) for payload in images.images])
    predictions = model.top_k_of(model.probabilities(batch, shared=shared))
    return {
        "predictions": predictions,
        "model_version": model.version,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def render(prediction: dict[str, Any], accept: str | None) -> str:
    """The reply as JSON text."""
    payloads.check_accept(accept)
    return json.dumps(prediction)


# --- the SageMaker handler contract (exact signatures: the toolkit counts parameters) ---------------


def take_json_bodies_as_bytes() -> None:
    """The SageMaker inference toolkit decodes a body sent as ``application/json`` to text before any
    handler runs, and answers a body that is not UTF-8 itself: a 500 with a traceback for a body. It has
    no setting for that, so the JSON type is taken off its list of UTF-8 types (read at every request),
    the body arrives as bytes, and ``payloads.parse_request`` refuses a bad encoding with the same 400 as
    ``dogpipe serve``. Without the toolkit (``dogpipe serve``, tests) there is nothing to change."""
    try:
        from sagemaker_inference import content_types
    except ImportError:
        return
    content_types.UTF8_TYPES = [kind for kind in content_types.UTF8_TYPES if kind != payloads.JSON_TYPE]


def model_fn(model_dir: str) -> ServedModel:
    """Load the model the container was given; tunables come from the endpoint's environment. Runs
    once, in the toolkit's worker, before any request: the place to adjust the toolkit."""
    take_json_bodies_as_bytes()
    optimize = os.environ.get("DOGPIPE_OPTIMIZE") or DEFAULT_OPTIMIZE
    return load_model(
        model_dir,
        top_k=_env_int("DOGPIPE_TOP_K", DEFAULT_TOP_K),
        version=os.environ.get("DOGPIPE_MODEL_VERSION") or None,
        optimize=optimize,
    )


def answer(model: ServedModel, body: bytes | str | None, content_type: str | None, accept: str | None) -> str:
    """One request, start to reply (the JSON text), in the order ``dogpipe serve`` checks it:
    content type (415), reply type (406), shape and pixel budget (400/413), then the model."""
    payloads.check_content_type(content_type)
    payloads.check_accept(accept)
    images = payloads.parse_request(
        body,
        content_type,
        _env_int("DOGPIPE_MAX_BATCH", payloads.DEFAULT_MAX_BATCH),
        _env_int("DOGPIPE_MAX_PIXELS", payloads.DEFAULT_MAX_PIXELS),
    )
    return render(predict(model, images), accept)


def transform_fn(
    model: ServedModel, request_body: bytes | str, content_type: str, accept: str, context: Any
) -> tuple[str, str]:
    """The whole request for the toolkit, with its TorchServe ``context`` (the toolkit passes it to a
    handler that takes one parameter more than the standard four).

    The toolkit answers an exception with ``"{message}\n{traceback}"`` and no content type, the error
    JSON only in the reason phrase; so nothing escapes here: a refusal sets its status on the context,
    as the toolkit's own error path does, and returns the same ``{"error": ...}`` JSON as
    ``dogpipe serve``; an unexpected failure is logged with its traceback and answered as a JSON 500."""
    try:
        return answer(model, request_body, content_type, accept), payloads.JSON_TYPE
    except payloads.RequestError as error:
        status, message = error.status_code, error.message
    except Exception:  # a bug, not the client's fault: the log gets the traceback, the client does not
        log.exception("inference failed")
        status, message = 500, payloads.INTERNAL_ERROR
    context.set_response_status(code=status, phrase=HTTPStatus(status).phrase)
    return payloads.error_document(message), payloads.JSON_TYPE


__all__: Sequence[str] = (
    "ModelLoadError",
    "NormalizedClassifier",
    "ServedModel",
    "answer",
    "load_model",
    "model_fn",
    "predict",
    "render",
    "transform_fn",
)
