"""Answer requests as a SageMaker PyTorch endpoint's TorchServe worker does, without the Java frontend.

Run as a script in a fresh process whose ``PYTHONPATH`` holds the model's ``code/`` folder and whose
``SAGEMAKER_BASE_DIR`` holds ``model/`` (what ``sagemaker_pytorch_serving_container.torchserve`` sets
before it starts TorchServe):

    python torchserve_worker.py MODEL_DIR REQUESTS.json

It first pip-installs ``code/requirements.txt`` with the toolkit's own start-up step (a pip failure
fails the endpoint there), then loads the model through TorchServe 0.12's own ``TsModelLoader`` with
the toolkit's handler service (``sagemaker_pytorch_serving_container.handler_service``, the image's
``default_service_handler``), so
``HandlerService.initialize`` and the toolkit's ``Transformer`` find ``inference.py`` exactly as in the
container. Each request then goes through ``ts.service.Service.predict`` — the worker's code from the
decoded frontend message to the response bytes, with ``decode_input_request=false`` as the image's
``default-ts.properties`` sets it — and the response bytes are decoded as the frontend reads them.
Prints one JSON list: ``{"status", "phrase", "content_type", "body"}`` per request. A request may carry
``env``: endpoint settings in force while it is answered (the handlers read them per request).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any


def _metrics_cache() -> Any:
    import ts
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    cache = MetricsCacheYamlImpl(str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    cache.initialize_cache()
    return cache


def load_service(model_dir: str) -> Any:
    """The TorchServe service for ``model_dir`` with the SageMaker handler service, initialised."""
    from sagemaker_pytorch_serving_container import handler_service
    from ts.model_loader import TsModelLoader

    handler = f"{handler_service.__name__}:handle"  # no module-level handle: TorchServe uses the class
    service = TsModelLoader().load(
        "model", model_dir, handler=handler, gpu_id=None, batch_size=1, metrics_cache=_metrics_cache()
    )
    service.set_cl_socket(None)
    return service


def frontend_message(request_id: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """One request as ``otf_message_handler`` hands it to ``Service.predict`` (the body undecoded)."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return {
        "requestId": request_id.encode(),
        "headers": [{"name": name.encode(), "value": value.encode()} for name, value in headers.items()],
        "parameters": [{"name": "body", "contentType": content_type, "value": body}],
    }


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def integer(self) -> int:
        (value,) = struct.unpack_from("!i", self.data, self.at)
        self.at += 4
        return value

    def chunk(self) -> bytes:
        length = self.integer()
        value = self.data[self.at : self.at + length]
        self.at += length
        return value


def decode_response(data: bytes) -> dict[str, Any]:
    """The first response in ``create_predict_response``'s bytes, as the frontend reads them: the
    per-request status and reason phrase, the content type and the body."""
    reader = _Reader(data)
    batch_code, batch_message = reader.integer(), reader.chunk().decode()
    reader.chunk()  # request id
    content_type = reader.chunk().decode()
    status, phrase = reader.integer(), reader.chunk().decode()
    for _ in range(reader.integer()):  # response headers
        reader.chunk(), reader.chunk()
    body = reader.chunk()
    if batch_code != 200:  # the whole batch failed in the worker: the frontend answers with it
        status, phrase = batch_code, batch_message
    return {"status": status, "phrase": phrase, "content_type": content_type, "body": body.decode()}


def install_requirements() -> None:
    """The toolkit's start-up install of ``code/requirements.txt``, as ``start_torchserve`` runs it."""
    from sagemaker_pytorch_serving_container import torchserve

    if os.path.exists(torchserve.model_server.REQUIREMENTS_PATH):
        torchserve.model_server._install_requirements()


def main(model_dir: str, requests_file: str) -> None:
    install_requirements()
    service = load_service(model_dir)
    replies = []
    for index, request in enumerate(json.loads(Path(requests_file).read_text())):
        message = frontend_message(str(index), base64.b64decode(request["body"]), request["headers"])
        saved = dict(os.environ)
        os.environ.update(request.get("env", {}))  # an endpoint setting for this request only
        try:
            replies.append(decode_response(bytes(service.predict([message]))))
        finally:
            os.environ.clear()
            os.environ.update(saved)
    print(json.dumps(replies))


if __name__ == "__main__":
    main(*sys.argv[1:3])
