"""``dogpipe serve MODEL``: the SageMaker inference protocol on this machine (``pipeline.serving``),
with the limits of the config's ``deploy`` section and, with ``--capture-dir``, data capture in
SageMaker's format (what ``dogpipe monitor`` reads). The local engine's endpoints run this command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import config_option, examples, read_config
from pipeline.config import PipelineConfig
from pipeline.names import ENDPOINT

if TYPE_CHECKING:
    from pipeline.serving.capture_format import CaptureSettings


@click.command(
    "serve",
    epilog=examples("dogpipe serve /tmp/m --port 8080", "dogpipe serve dogpipe-dog-breeds/2 --workers 1"),
)
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads for requests running side by side (a request alone runs on one more, with every core); "
    "1: one request at a time.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    help="Torch threads of a request running beside others (default: cores/workers; alone: all cores); "
    "with --workers 1, of every request.",
)
@click.option(
    "--optimize",
    type=click.Choice(["onednn", "compile", "trace", "eager"]),  # training_code/model_optimize.py
    default="onednn",
    show_default=True,
    help="How the model is prepared for serving (compile: +6-90 s at start, slower here than onednn).",
)
@click.option("--model-version", help="Version in replies (default: registry version or weights hash).")
@click.option("--body-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a client has to send its request body (then 408).")  # fmt: skip
@click.option(
    "--url-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the URL here once serving."
)
@click.option(
    "--capture-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Record requests and replies (SageMaker's capture records) in DIR/<endpoint>/AllTraffic/yyyy/...",
)
@click.option("--capture-endpoint", default="local", show_default=True, help="The endpoint folder under DIR.")
@click.option("--capture-percent", type=click.FloatRange(0, 100), help="Share of requests recorded "
              "(default: deploy.data_capture.sampling_percentage).")  # fmt: skip
@click.option("--capture-modes", type=click.Choice(["Input", "Output", "Input,Output"]),
              default="Input,Output", show_default=True, help="What a request leaves.")  # fmt: skip
@click.option("--capture-max-file-bytes", type=click.IntRange(1024), help="Rotate capture files at this size "
              "(default: deploy.data_capture.max_file_bytes).")  # fmt: skip
@click.option("--capture-max-total-bytes", type=click.IntRange(1024), help="Delete the oldest capture files "
              "beyond this (default: deploy.data_capture.max_total_bytes).")  # fmt: skip
@config_option
def serve(
    model: str,
    host: str,
    port: int,
    workers: int,
    threads: int | None,
    optimize: str,
    model_version: str | None,
    body_timeout: float,
    url_file: Path | None,
    capture_dir: Path | None,
    capture_endpoint: str,
    capture_percent: float | None,
    capture_modes: str,
    capture_max_file_bytes: int | None,
    capture_max_total_bytes: int | None,
    config_path: Path | None,
) -> None:
    """Serve MODEL (a model.tar.gz, a model dir, or a registry group/version) over the SageMaker
    inference protocol: GET /ping, POST /invocations. Limits come from the config's `deploy` section;
    --capture-dir records the traffic as SageMaker's data capture does (what `dogpipe monitor` reads)."""
    from pipeline.serving.model_source import ModelSourceError
    from pipeline.serving.server import ServeOptions, serve_model

    cfg = read_config(config_path)
    capture = None
    if capture_dir is not None:
        capture = _capture_settings(
            cfg, capture_dir, capture_endpoint, capture_percent, capture_modes,
            capture_max_file_bytes, capture_max_total_bytes,
        )  # fmt: skip
    options = ServeOptions(
        host=host,
        port=port,
        top_k=cfg.deploy.top_k,
        max_payload_bytes=cfg.deploy.max_payload_bytes,
        max_batch=cfg.deploy.max_batch,
        workers=workers,
        threads=threads,
        optimize=optimize,
        model_version=model_version,
        body_timeout_s=body_timeout,
        url_file=url_file,
        capture=capture,
    )
    try:
        serve_model(model, cfg.local.root, options)
    except (ModelSourceError, FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from None


def _capture_settings(
    cfg: PipelineConfig,
    folder: Path,
    endpoint: str,
    percent: float | None,
    modes: str,
    max_file_bytes: int | None,
    max_total_bytes: int | None,
) -> CaptureSettings:
    """--capture-*, with the config's ``deploy.data_capture`` for what they leave out."""
    from pipeline.serving.capture_format import CaptureSettings

    defaults = cfg.deploy.data_capture
    return CaptureSettings(
        folder=folder,
        endpoint=ENDPOINT.check(endpoint),
        sampling_percentage=defaults.sampling_percentage if percent is None else percent,
        capture_input="Input" in modes,
        capture_output="Output" in modes,
        max_file_bytes=max_file_bytes or defaults.max_file_bytes,
        max_total_bytes=max_total_bytes or defaults.max_total_bytes,
        queue_size=defaults.queue_size,
    )
